"""The ``jaxvi`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxvi", description="Bayesian variational inference on JAX")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the main job: the seed workflows, with summaries and plots")
    demo.add_argument("--out", default="jaxvi-demo-output", help="folder for the PNG plots (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="a tenth of the MCMC draws and posterior draws")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        run(out_dir=args.out, quick=args.quick, progressbar=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
