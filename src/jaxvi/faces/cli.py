"""The ``jaxvi`` command line: ``jaxvi demo``, ``jaxvi fit MODEL.py``, ``jaxvi compare MODEL.py``.

This module is only the argparse face; the commands live in :mod:`jaxvi.commands`.
"""

from __future__ import annotations

import argparse
import sys

MODEL_HELP = ("a Python file defining `model` (a jv.Model, or a function returning one), else a function "
              "`build_model()`, else exactly one jv.Model at its top level; its `if __name__ == '__main__':` "
              "block is not run")


def _int_at_least(minimum: int):
    kind = "a positive" if minimum == 1 else "a non-negative"

    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {kind} integer, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)


def _add_common(p: argparse.ArgumentParser, command: str):
    p.add_argument("model_file", metavar="MODEL.py", help=MODEL_HELP)
    p.add_argument("--n", type=_positive_int, default=20000, help="optimisation steps per VI method (default: %(default)s)")
    p.add_argument("--draws", type=_positive_int, default=1000,
                   help="posterior draws per method (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--out", default=None, help=f"output folder (default: <MODEL>-{command} in the current folder)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxvi", description="Bayesian variational inference on JAX")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the main job: the seed workflows, with summaries and plots")
    demo.add_argument("--out", default="jaxvi-demo-output", help="folder for the PNG plots (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="a tenth of the MCMC draws and posterior draws")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    fit = sub.add_parser(
        "fit", help="fit a model file; write InferenceData, a summary table and plots",
        description="Fit the model of MODEL.py with a variational method and write posterior.nc (ArviZ "
                    "InferenceData, netCDF), summary.csv (az.summary), loss.png and posterior.png into --out.")
    _add_common(fit, "fit")
    fit.add_argument("--method", default="advi", help="variational method, e.g. advi or fullrank_advi "
                                                      "(default: %(default)s)")

    compare = sub.add_parser(
        "compare", help="fit a model file with several methods; write one figure and one table",
        description="Fit the model of MODEL.py with each method (nuts runs jv.sample) and write compare.png "
                    "(overlaid posterior densities) and compare.csv (summary per method) into --out.")
    _add_common(compare, "compare")
    compare.add_argument("--methods", default="advi,fullrank_advi,nuts",
                         help="comma-separated methods (default: %(default)s)")
    compare.add_argument("--tune", type=_int_at_least(0), default=1000, help="NUTS tuning steps per chain (default: %(default)s)")
    compare.add_argument("--chains", type=_positive_int, default=2, help="NUTS chains (default: %(default)s)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progressbar = not args.no_progress
    if args.command == "demo":
        from jaxvi.faces.demo import run

        run(out_dir=args.out, quick=args.quick, progressbar=progressbar)
        return 0
    from jaxvi.faces.commands import CommandError, compare_command, fit_command

    common = dict(n=args.n, draws=args.draws, seed=args.seed, out=args.out, progressbar=progressbar)
    try:
        if args.command == "fit":
            fit_command(args.model_file, method=args.method, **common)
        else:
            compare_command(args.model_file, methods=args.methods, tune=args.tune, chains=args.chains, **common)
    except CommandError as exc:
        print(f"jaxvi {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
