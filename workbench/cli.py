"""The ``workbench`` command line.

    workbench list
    workbench run STUDY [--preset smoke|quick|paper] [--set k=v]... [--device auto|cpu|cuda]
                        [--out DIR] [--force] [--quiet]
    workbench check [STUDY... | RECORD_DIR...] [--preset P] [--set k=v]...
                                                  re-verify saved records from their arrays (never runs)
    workbench fields STUDY                        every config field: type, documentation, preset values
    workbench reproduce [--preset P] [--no-book]  every study, every check, then the book
    workbench book [--clean]                      build the Jupyter Book offline ($WORKBENCH_BOOK_PRESET)
    workbench notebook STUDY [PATH]               a study's chapter as a clean Jupyter notebook
    workbench new NAME [--title T] [--root DIR]   a new study from the template
    workbench sweep STUDY --grid k=v1,v2 [--grid ...] --seeds 0-9 [--executor local|submitit]
    workbench bench [STUDY...] [--members 1,8,64,512] [--device cuda] [--loop-members K] [--reproduce]
    workbench --version

Exit codes (the same for ``python -m studies.<name>``):

- 0  every asserted check passed;
- 1  a theory check failed (``check``: or a recomputed check differs from ``checks.json``);
- 2  bad input, found before anything is computed: an unknown study, field or preset, a malformed
     or out-of-range value, a config too large for the memory, a runs directory that is not a
     writable directory (``--out``), a missing or damaged record;
- 3  a run failed: divergence, underflow or a failed solver (the step or time named, the partial
     arrays kept in ``<hash>.failed/``), out of memory, or the record could not be written (full
     disk: nothing half-written is left);
- 4  an internal error, i.e. a bug: one line on stderr names a log file (``<runs>/.logs/``, or the
     temp directory when the runs directory is unusable) that holds the traceback;
- 130 interrupted by Ctrl-C (finished runs are kept);
- 141 the output pipe was closed by its reader (``workbench fields STUDY | head``), as a shell reports.

Each study also runs as ``python -m studies.<name>`` with the options of ``workbench run``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from workbench.checks import checks_table
from workbench.errors import (EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK,
                              EXIT_RUN_FAILED, RecordError, RecordWriteError, TrainingError, WorkbenchInputError)

__all__ = ["main", "study_main", "build_parser", "EXIT_OK", "EXIT_CHECK_FAILED", "EXIT_BAD_INPUT",
           "EXIT_RUN_FAILED", "EXIT_INTERNAL", "EXIT_INTERRUPTED"]

EXIT_PIPE_CLOSED = 141
"""128 + SIGPIPE: what a shell reports for a command whose reader closed the pipe."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our bad-input code (2, which argparse also uses) and a hint."""

    def error(self, message):  # pragma: no cover - exercised through main()
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _study_names() -> list[str]:
    try:
        from workbench.registry import study_names
        return study_names()
    except Exception:  # pragma: no cover - a broken studies package must not break --help
        return []


def _study_help(what: str = "the study") -> str:
    names = _study_names()
    return f"{what}: {', '.join(names)}" if names else what


def _add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", help="smoke | quick | paper (default: quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable; `workbench fields STUDY` lists them)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's)")
    p.add_argument("--out", default=None, help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the checks table")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    _add_config_options(p)
    p.add_argument("--force", action="store_true", help="rerun even if a complete record exists")


def build_parser() -> argparse.ArgumentParser:
    from workbench import __version__

    parser = _Parser(prog="workbench", description="Attention theory workbench",
                     epilog="exit codes: 0 checks pass, 1 a theory check failed, 2 bad input, 3 a run failed, "
                            "4 internal error (traceback in a log file), 130 interrupted")
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the studies")
    p = sub.add_parser("run", help="run one study and print its checks")
    p.add_argument("study", help=_study_help())
    _add_run_options(p)
    p = sub.add_parser("check", help="re-verify saved records: checksums, then every check recomputed from the "
                                     "arrays and compared with checks.json (never runs anything)")
    p.add_argument("studies", nargs="*", metavar="STUDY_OR_RECORD",
                   help=_study_help("studies (default: all)") + "; or record directories (runs/<study>/<hash>)")
    _add_config_options(p)
    p = sub.add_parser("fields", help="list a study's config fields: type, documentation, value in each preset")
    p.add_argument("study", help=_study_help())
    p.add_argument("--json", action="store_true", help="print the fields as JSON")
    p = sub.add_parser("reproduce", help="every study at a preset, every check, then the book")
    _add_run_options(p)
    p.add_argument("--no-book", action="store_true", help="skip the book build")
    p = sub.add_parser("book", help="build the Jupyter Book offline",
                       description="Build the Jupyter Book offline to book/_build/html. The chapters run their "
                                   "studies at the preset named by the environment variable "
                                   "WORKBENCH_BOOK_PRESET (smoke | quick | paper; default quick).",
                       epilog="environment: WORKBENCH_BOOK_PRESET=smoke|quick|paper is the preset the chapters "
                              "run at (default: quick); WORKBENCH_RUNS is where their records are cached.")
    p.add_argument("--clean", action="store_true", help="drop the execution cache first")
    p = sub.add_parser("new", help="start a new study from the template (package, test, chapter stub)")
    p.add_argument("name", help="the study's CLI name, kebab-case (e.g. induction-heads)")
    p.add_argument("--title", default=None, help="the study's title (default: made from the name)")
    p.add_argument("--root", default=".", help="the checkout to write into (default: the current directory)")
    p = sub.add_parser("notebook", help="export a study's book chapter as a clean Jupyter notebook")
    p.add_argument("study", help=_study_help())
    p.add_argument("path", nargs="?", default=None, help="where to write the .ipynb (default: chosen by the exporter)")
    add_sweep_parser(sub)
    p = sub.add_parser("bench", help="ensemble-vs-loop speed-ups and preset timings (prints ratios)")
    p.add_argument("studies", nargs="*", help=_study_help("studies to measure (default: all)"))
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
    """Run a command and map what can go wrong to an exit code and one clear message on stderr:
    bad input 2, a failed run 3, an internal error 4 (traceback in a log file), Ctrl-C 130."""
    try:
        return command(args)
    except WorkbenchInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (TrainingError, RecordWriteError) as err:
        print(f"run failed: {err}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C): finished records are kept; give the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`workbench fields X | head`): not an error of ours
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_PIPE_CLOSED
    except Exception as err:  # a bug: keep the traceback, say where, exit 4
        return _internal_error(err, args)


def _internal_error(err: BaseException, args: argparse.Namespace) -> int:
    import traceback

    text = traceback.format_exc()
    log = write_log(text, getattr(args, "out", None))
    first = (str(err).strip().splitlines() or [""])[0][:300]
    where = f"the traceback is in {log}" if log else "the traceback follows"
    print(f"internal error: {type(err).__name__}: {first}\n(this is a bug in the workbench, not a failed check; "
          f"{where})", file=sys.stderr)
    if log is None:
        print(text, file=sys.stderr)
    return EXIT_INTERNAL


def write_log(text: str, out: str | None = None) -> Path | None:
    """Write an internal error's traceback to ``<runs>/.logs/<UTC time>-<pid>.log`` (or to
    ``$TMPDIR/workbench-logs/`` when the runs directory cannot be written); return the path."""
    import platform
    import tempfile

    from workbench import __version__
    from workbench.runner import runs_root

    header = (f"workbench {__version__}, python {platform.python_version()}, {platform.platform()}\n"
              f"argv: {sys.argv}\ncwd: {os.getcwd()}\ntime: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n\n")
    name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.log"
    folders = []
    try:
        folders.append(runs_root(out) / ".logs")
    except Exception:  # pragma: no cover
        pass
    folders.append(Path(tempfile.gettempdir()) / "workbench-logs")
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(header + text)
            return path
        except OSError:
            continue
    return None


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
    if args.command == "fields":
        return _fields(args.study, as_json=args.json)
    if args.command == "reproduce":
        from workbench.runner import check_runs_root
        check_runs_root(args.out)  # before the first study computes anything
        code = _run_many(registry.study_names(), args)
        if not args.no_book:
            from workbench.book import build_book
            book_code = build_book(quiet=args.quiet)
            code = code or (EXIT_RUN_FAILED if book_code else EXIT_OK)
        return code
    if args.command == "book":
        from workbench.book import build_book
        return EXIT_OK if build_book(clean=args.clean) == 0 else EXIT_RUN_FAILED
    if args.command == "new":
        from workbench.scaffold import new_study  # lazy: only `new` needs the template
        for path in new_study(args.name, root=args.root, title=args.title):
            print(path)
        return EXIT_OK
    if args.command == "notebook":
        study = registry.get_study(args.study)  # an unknown name is bad input before the exporter runs
        from workbench.notebook import export_notebook  # lazy: the exporter needs the book extras
        path = export_notebook(study.NAME, args.path)
        print(path)
        return EXIT_OK
    if args.command == "sweep":
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


# ------------------------------------------------------------------------------------- check
def _check(targets: Sequence[str], args: argparse.Namespace) -> int:
    """Verify saved records without running anything: the checksums in meta.json, then every check
    recomputed from the arrays and compared, field by field (measured values exactly), with
    checks.json.  A missing or damaged record is bad input (2); a failed or differing check is 1."""
    from workbench.registry import get_study
    from workbench.runner import resolve_config, run_dir

    from workbench.registry import study_modules

    plan: list[tuple[str, Path, str]] = []   # (label, record directory, how to make it)
    for target in targets:
        path = Path(target)
        is_study = target.replace("-", "_") in study_modules()
        if not is_study and (path.is_dir() or os.sep in target or (os.altsep and os.altsep in target)):
            plan.append((str(path), path, "workbench run STUDY ... (the command that wrote it)"))
            continue
        study = get_study(target)  # unknown study: bad input before anything is read
        cfg = resolve_config(study, None, preset=args.preset, overrides=args.overrides, device=args.device)
        sets = "".join(f" --set {o}" for o in args.overrides) + (f" --device {args.device}" if args.device else "")
        out = f" --out {args.out}" if args.out else ""
        plan.append((f"{study.NAME} [{args.preset}]", run_dir(study, cfg, args.out),
                     f"workbench run {study.NAME} --preset {args.preset}{sets}{out}"))
    code = EXIT_OK
    for label, path, make in plan:
        code = _worse(code, _check_one(label, path, make, args.quiet))
    return code


def _worse(a: int, b: int) -> int:
    order = {EXIT_OK: 0, EXIT_CHECK_FAILED: 1, EXIT_RUN_FAILED: 2, EXIT_BAD_INPUT: 3}
    return a if order.get(a, 4) >= order.get(b, 4) else b


def _check_one(label: str, path: Path, make: str, quiet: bool) -> int:
    from workbench.record import load_record, verify_record
    from workbench.registry import get_study

    if not (path / "meta.json").exists():
        failed = path.with_name(path.name + ".failed")
        extra = f" (its last run failed: see {failed})" if failed.is_dir() else ""
        print(f"error: no record of {label} at {path}{extra}; nothing to verify (check never runs anything): "
              f"run `{make}` first", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        meta = verify_record(path)
        record, stored_checks = load_record(path, verify=False)
    except RecordError as err:
        print(f"error: {err} (`{make} --force`)", file=sys.stderr)
        return EXIT_BAD_INPUT
    study = get_study(record.study)
    recomputed = list(study.checks(record))
    stored = json.loads((path / "checks.json").read_text())
    differences = compare_checks(stored, [c.to_dict() for c in recomputed])
    integrity = "checksums match" if meta.get("checksums") else "no checksums in this older record"
    print(f"\n== {label} re-verified from {path} ({integrity})")
    print(checks_table(recomputed))
    if differences:
        print(f"error: the checks recomputed from {path / 'arrays.npz'} differ from {path / 'checks.json'}:",
              file=sys.stderr)
        for line in differences:
            print(f"  {line}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    if not quiet:
        print(f"every check recomputed from the arrays equals checks.json ({len(recomputed)} checks)")
    return EXIT_OK if all(c.ok for c in recomputed) else EXIT_CHECK_FAILED


def compare_checks(stored: list[dict[str, Any]], recomputed: list[dict[str, Any]]) -> list[str]:
    """Every difference between two lists of checks (as ``Check.to_dict``): missing or extra
    checks, and any field that differs.  Numbers must be equal exactly (bit for bit: a float
    written to JSON reads back as the same float); NaN equals NaN."""
    lines: list[str] = []
    old = {c.get("name"): c for c in stored if isinstance(c, dict)}
    new = {c["name"]: json.loads(json.dumps(c)) for c in recomputed}  # the JSON view, as stored
    for name in old.keys() - new.keys():
        lines.append(f"{name}: in checks.json but no longer computed")
    for name in new.keys() - old.keys():
        lines.append(f"{name}: computed but not in checks.json")
    for name in [n for n in new if n in old]:
        a, b = old[name], new[name]
        for key in sorted(set(a) | set(b)):
            if not _same(a.get(key), b.get(key)):
                lines.append(f"{name}.{key}: stored {a.get(key)!r}, recomputed {b.get(key)!r}")
    return lines


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    fa, fb = _as_float(a), _as_float(b)
    if fa is not None and fb is not None and not isinstance(a, bool) and not isinstance(b, bool):
        return (math.isnan(fa) and math.isnan(fb)) or fa == fb
    return a == b


def _as_float(x: Any) -> float | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    if isinstance(x, str) and x in ("nan", "inf", "-inf"):
        return float(x)
    return None


# ------------------------------------------------------------------------------------ fields
def _fields(name: str, *, as_json: bool = False) -> int:
    from workbench.registry import get_study

    study = get_study(name)
    rows = study.Config.describe_fields()
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    presets = list(study.Config._presets)
    print(f"{study.NAME}: {len(rows)} config fields (set one with --set FIELD=VALUE)\n")
    for row in rows:
        values = "  ".join(f"{p}={_value(row['presets'][p])}" for p in presets)
        print(f"{row['name']}  ({row['type']})")
        if row["doc"]:
            print(f"    {row['doc']}")
        print(f"    {values}")
    return EXIT_OK


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(_value(x) for x in v) + ")"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# ---------------------------------------------------------------------------------- sweep
def add_sweep_parser(subparsers) -> None:
    """Add ``workbench sweep`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "sweep", help="a grid of runs of one study (cached, resumable; local pool or Slurm)",
        description="Run every point of a grid of config values (times every seed) as its own run, "
                    "skipping runs already complete in the run cache. Values are separated by ',' "
                    "(by ';' for tuple fields or when the list contains ';').")
    try:
        from workbench.registry import study_names
        names = ", ".join(study_names())
    except Exception:  # pragma: no cover - a broken studies package must not break --help
        names = ""
    p.add_argument("study", help=f"the study: {names}" if names else "the study")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="values of one config field to sweep (repeatable; the grid is their product)")
    p.add_argument("--seeds", default=None, metavar="SEEDS",
                   help="seeds, each its own run: 0-9, 0,3,5 or 0-4,10 (default: the preset's seed)")
    p.add_argument("--preset", default="quick", help="smoke | quick | paper (default: quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a fixed override for every run (repeatable)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N | auto (default: the config's)")
    p.add_argument("--executor", default="local", choices=("local", "submitit"),
                   help="local process pool (default) or submitit (Slurm job array)")
    p.add_argument("--workers", type=int, default=None,
                   help="local pool size (default: the CPUs available); 1 runs in this process")
    p.add_argument("--out", default=None, help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    p.add_argument("--force", action="store_true", help="rerun even the runs that are complete")
    p.add_argument("--quiet", action="store_true", help="no progress, only the summary table")
    g = p.add_argument_group("submitit (--executor submitit; pip install 'attention-workbench[cluster]')")
    g.add_argument("--slurm-partition", default=None, help="Slurm partition")
    g.add_argument("--slurm-time-min", type=int, default=60, help="time limit of each run in minutes (default 60)")
    g.add_argument("--slurm-array-parallelism", type=int, default=16,
                   help="at most this many array tasks run at once (default 16)")
    g.add_argument("--slurm-cpus-per-task", type=int, default=1, help="CPUs (and torch threads) per run (default 1)")
    g.add_argument("--slurm-gpus-per-node", type=int, default=None, help="GPUs per run (with --device cuda)")
    g.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per run in GB")
    g.add_argument("--submitit-folder", default=None,
                   help="job pickles and logs, on a shared filesystem (default: <runs>/.submitit/<study>/%%j)")
    g.add_argument("--submitit-cluster", default="slurm", choices=("slurm", "local", "debug"),
                   help="slurm (default); local or debug (in process) run the array on this machine")


def run_sweep_command(args: argparse.Namespace) -> int:
    """``workbench sweep``: 0 every run finished and passed; 1 a check failed; 2 bad input; 3 a run
    failed; 130 interrupted (Ctrl-C)."""
    from workbench.registry import get_study
    from workbench.sweep import SweepTable, parse_grid, sweep

    try:
        study = get_study(args.study)
        grid = parse_grid(args.grid, study.Config)
        opts: dict[str, Any] = {}
        if args.executor == "submitit":
            opts = {"cluster": args.submitit_cluster, "partition": args.slurm_partition,
                    "time_min": args.slurm_time_min, "array_parallelism": args.slurm_array_parallelism,
                    "cpus_per_task": args.slurm_cpus_per_task, "gpus_per_node": args.slurm_gpus_per_node,
                    "mem_gb": args.slurm_mem_gb}
            if args.submitit_folder:
                opts["folder"] = args.submitit_folder
        result = sweep(study, grid, args.seeds, preset=args.preset, overrides=args.overrides,
                       executor=args.executor, workers=args.workers, root=args.out, force=args.force,
                       progress=not args.quiet, device=args.device, **opts)
    except WorkbenchInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; give the same command again to resume", file=sys.stderr)
        return 130
    table = result.table
    shown = table if len(table) <= 40 else SweepTable(
        [r for r in table if r["status"] != "complete" or not r["passed"]], table.keys)
    print(f"\n== sweep {result.study} [{args.preset}]: {len(table)} runs ({result.skipped} skipped as complete, "
          f"{result.ran} run, {len(result.failures)} failed)")
    if len(shown):
        print(shown.format() if shown is table else f"(showing the {len(shown)} runs that failed)\n{shown.format()}")
    n_pass = sum(bool(r["passed"]) for r in table)
    print(f"{n_pass}/{len(table)} runs passed every check")
    for run, message in result.failures:
        print(f"run failed: {run}: {message}", file=sys.stderr)
    print(f"load in a notebook: from workbench.sweep import load_sweep; "
          f"table = load_sweep({result.study!r}, {_python_grid(grid, study, args)}, "
          f"seeds={args.seeds!r}, preset={args.preset!r}{_python_kw(args)})")
    return result.exit_code


def _python_grid(grid: dict[str, list[str]], study: ModuleType, args: argparse.Namespace) -> str:
    from workbench.sweep.grid import _grid_values

    base = study.Config.preset(args.preset).with_overrides(args.overrides)
    return repr({k: _grid_values(base, {k: v})[k] for k, v in grid.items()})


def _python_kw(args: argparse.Namespace) -> str:
    kw = ""
    if args.overrides:
        kw += f", overrides={list(args.overrides)!r}"
    if args.device:
        kw += f", device={args.device!r}"
    if args.out:
        kw += f", root={args.out!r}"
    return kw


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
