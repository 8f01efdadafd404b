"""The ``workbench`` command line.

    workbench list
    workbench run STUDY [--preset smoke|quick|paper] [--set k=v]... [--device auto|cpu|cuda]
                        [--out DIR] [--force] [--quiet]
    workbench check [STUDY...] [--preset P]       re-verify saved records (runs what is missing)
    workbench reproduce [--preset P] [--no-book]  every study, every check, then the book
    workbench book [--clean]                      build the Jupyter Book offline
    workbench sweep STUDY --grid k=v1,v2 [--grid ...] --seeds 0-9 [--executor local|submitit]
    workbench bench [STUDY...] [--members 1,8,64,512] [--device cuda] [--loop-members K] [--reproduce]

Exit codes: 0 all good, 1 a theory check failed, 2 bad input, 3 a run failed (divergence, solver).
Each study also runs as ``python -m studies.<name>`` with the options of ``workbench run``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from types import ModuleType
from typing import Sequence

from workbench.checks import checks_table
from workbench.errors import TrainingError, WorkbenchInputError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_RUN_FAILED = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our bad-input code (2, which argparse also uses) and a hint."""

    def error(self, message):  # pragma: no cover - exercised through main()
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", help="smoke | quick | paper (default: quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's)")
    p.add_argument("--out", default=None, help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    p.add_argument("--force", action="store_true", help="rerun even if a complete record exists")
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the checks table")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description="Attention theory workbench")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the studies")
    p = sub.add_parser("run", help="run one study and print its checks")
    p.add_argument("study")
    _add_run_options(p)
    p = sub.add_parser("check", help="re-verify the checks of saved records (running what is missing)")
    p.add_argument("studies", nargs="*")
    _add_run_options(p)
    p = sub.add_parser("reproduce", help="every study at a preset, every check, then the book")
    _add_run_options(p)
    p.add_argument("--no-book", action="store_true", help="skip the book build")
    p = sub.add_parser("book", help="build the Jupyter Book offline")
    p.add_argument("--clean", action="store_true", help="drop the execution cache first")
    from workbench.sweep import add_sweep_parser
    add_sweep_parser(sub)
    p = sub.add_parser("bench", help="ensemble-vs-loop speed-ups and preset timings (prints ratios)")
    p.add_argument("studies", nargs="*", help="studies to measure (default: all)")
    p.add_argument("--members", default="1,8,64,512", help="ensemble sizes M (comma-separated)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda")
    p.add_argument("--no-presets", action="store_true", help="skip the quick-preset timings")
    p.add_argument("--reproduce", action="store_true", help="also time the whole `workbench reproduce`")
    p.add_argument("--out", default=None, help="runs directory for the preset timings (default: a temp dir)")
    p.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    p.add_argument("--loop-members", type=int, default=None, metavar="K",
                   help="run the loop over K evenly spread members only and scale its time to M (for GPUs, "
                        "where a loop of 512 launch-bound runs takes minutes); default: all M")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _exit_code(_dispatch, args)


def _exit_code(command, args: argparse.Namespace) -> int:
    """Run a command; bad input exits 2 and a failed run 3, each with its message on stderr."""
    try:
        return command(args)
    except WorkbenchInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingError as err:
        print(f"run failed: {err}", file=sys.stderr)
        return EXIT_RUN_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    from workbench import registry

    if args.command == "list":
        for module in registry.all_studies():
            print(f"{module.NAME:18s} {module.TITLE}")
        return EXIT_OK
    if args.command == "run":
        return _run_many([args.study], args)
    if args.command == "check":
        return _check(args.studies or registry.study_names(), args)
    if args.command == "reproduce":
        code = _run_many(registry.study_names(), args)
        if not args.no_book:
            from workbench.book import build_book
            book_code = build_book(quiet=args.quiet)
            code = code or (EXIT_RUN_FAILED if book_code else EXIT_OK)
        return code
    if args.command == "book":
        from workbench.book import build_book
        return EXIT_OK if build_book(clean=args.clean) == 0 else EXIT_RUN_FAILED
    if args.command == "sweep":
        from workbench.sweep import run_sweep_command
        return run_sweep_command(args)
    if args.command == "bench":
        from workbench.bench import main as bench_main
        try:
            members = [int(m) for m in args.members.split(",") if m.strip()]
        except ValueError:
            raise WorkbenchInputError(f"--members must be comma-separated integers, got {args.members!r}") from None
        if not members or min(members) < 1:
            raise WorkbenchInputError(f"--members must be positive integers, got {args.members!r}")
        if args.loop_members is not None and args.loop_members < 1:
            raise WorkbenchInputError(f"--loop-members must be a positive integer, got {args.loop_members}")
        return bench_main(members, args.device, args.studies, presets=not args.no_presets,
                          include_reproduce=args.reproduce, out=args.out, json_path=args.json,
                          loop_members=args.loop_members)
    raise AssertionError(args.command)


def _run_many(names: Sequence[str], args: argparse.Namespace) -> int:
    from workbench.registry import get_study
    from workbench.runner import execute

    studies = [get_study(n) for n in names]  # unknown names fail before anything runs
    failed = False
    for study in studies:
        start = time.perf_counter()
        result = execute(study, preset=args.preset, overrides=args.overrides, device=args.device,
                         root=args.out, force=args.force, progress=not args.quiet)
        took = time.perf_counter() - start
        state = "cached" if result.cached else f"{took:.1f}s"
        print(f"\n== {study.NAME} [{args.preset}] ({state}) -> {result.path}")
        print(checks_table(result.checks))
        failed |= not result.passed
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def _check(names: Sequence[str], args: argparse.Namespace) -> int:
    """Recompute every check from the saved arrays (no rerun) and compare with checks.json."""
    from workbench.registry import get_study
    from workbench.runner import execute

    studies = [get_study(n) for n in names]
    failed = False
    for study in studies:
        result = execute(study, preset=args.preset, overrides=args.overrides, device=args.device,
                         root=args.out, force=args.force, progress=not args.quiet)
        recomputed = list(study.checks(result.record))
        print(f"\n== {study.NAME} [{args.preset}] re-verified from {result.path}")
        print(checks_table(recomputed))
        stored = {c.name: c.status for c in result.checks}
        drift = [c.name for c in recomputed if stored.get(c.name) != c.status]
        if drift:
            print(f"warning: checks {drift} differ from the stored checks.json", file=sys.stderr)
        failed |= not all(c.ok for c in recomputed)
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def study_main(study: ModuleType, argv: Sequence[str] | None = None) -> int:
    """``python -m studies.<name>``: the options of ``workbench run`` for one study."""
    parser = _Parser(prog=f"python -m {study.__name__}", description=study.TITLE)
    _add_run_options(parser)
    args = parser.parse_args(argv)
    return _exit_code(lambda a: _run_many([study.NAME], a), args)


def entry() -> None:  # console script
    sys.exit(main())


if __name__ == "__main__":
    entry()
