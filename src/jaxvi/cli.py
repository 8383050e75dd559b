"""The ``jaxvi`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxvi", description="Bayesian variational inference on JAX")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the main job: the seed workflows, printing computed results")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
