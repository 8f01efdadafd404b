"""Running a sweep's plan: a local process pool (with Ctrl-C handling) or a submitit/Slurm job
array, each run an ordinary `workbench.runner.execute`."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence


from workbench.errors import ConfigError, UnknownStudyError, did_you_mean

from workbench.sweep.grid import PlannedRun, plan_sweep
from workbench.sweep.table import SweepTable, read_row

EXECUTORS = ("local", "submitit")
CLUSTERS = ("slurm", "local", "debug")
CLUSTER_HINT = "pip install 'attention-workbench[cluster]'"



# ============================================================================ the runs
def _run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Run one config in this process (a pool worker, a Slurm task, or the parent with
    ``--workers 1``); return a small summary, never the record."""
    summary = {"path": task["path"], "status": "failed", "cached": False, "passed": None, "error": None}
    start = time.perf_counter()
    try:
        if task.get("threads"):
            _limit_threads(task["threads"])
        study = _import_study(task["study"], task["module"], task["file"])
        cfg = study.Config.from_dict(task["config"])
        if cfg.content_hash() != Path(task["path"]).name:
            raise RuntimeError(f"config hash {cfg.content_hash()} in the worker differs from {Path(task['path']).name} "
                               f"in the parent: is {study.__name__} the same code on both sides?")
        from workbench.runner import execute

        result = execute(study, cfg, root=task["root"], force=task["force"], progress=False)
        summary.update(status="complete", cached=result.cached, passed=result.passed,
                       checks={c.name: (c.measured, c.passed) for c in result.checks})
    except Exception as err:  # a failed run must not stop the sweep; TrainingError keeps .failed/
        summary["error"] = f"{type(err).__name__}: {err}"
    summary["seconds"] = time.perf_counter() - start
    return summary


def _limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch

    torch.set_num_threads(n)


def _init_worker() -> None:
    import signal

    # Ctrl-C is the parent's to handle: the first lets this worker finish (and save) its run
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_threads(1)
    import torch

    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (parallel work has started)
        pass


def _import_study(name: str, module_name: str, file: str | None) -> ModuleType:
    """The study in a fresh process.  A study not listed in ``studies.STUDIES`` on disk (one a
    notebook or a test registered at run time) is imported from its file and registered here."""
    from workbench.registry import get_study

    try:
        return get_study(name)
    except UnknownStudyError:
        pass
    import studies

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if not file:
            raise
        package = Path(file).name == "__init__.py"
        spec = importlib.util.spec_from_file_location(
            module_name, file, submodule_search_locations=[str(Path(file).parent)] if package else None)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    snake = name.replace("-", "_")
    sys.modules.setdefault(f"studies.{snake}", module)
    if snake not in studies.STUDIES:
        studies.STUDIES.append(snake)
    return get_study(name)


@dataclass
class SweepResult:
    study: str
    table: SweepTable
    """One row per run of the sweep, read back from disk after it finished."""
    skipped: int
    """Runs already complete before the sweep started (not launched)."""
    ran: int
    """Runs launched by this sweep."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(run, message) for every run that did not finish."""

    @property
    def exit_code(self) -> int:
        """0 every run finished and every check passed; 1 a check failed; 3 a run failed."""
        if self.failures or any(r["status"] != "complete" for r in self.table):
            return 3
        return 0 if all(r["passed"] for r in self.table) else 1


def sweep(study: ModuleType | str, grid: Mapping[str, Any], seeds: Iterable[int] | str | None = None, *,
          preset: str = "quick", overrides: Sequence[str] = (), executor: str = "local",
          workers: int | None = None, root: str | Path | None = None, force: bool = False,
          progress: bool = True, device: str | None = None, **submitit_opts: Any) -> SweepResult:
    """Run every point of ``grid`` x ``seeds`` that is not complete yet; return the table.

    ``executor="local"``: a spawn process pool of ``workers`` (default: the CPUs this process may
    use), one torch thread each; one worker runs in this process.  ``executor="submitit"``: a
    job array; ``submitit_opts`` are those of `make_submitit_executor` (``cluster``, ``folder``,
    ``partition``, ``time_min``, ``array_parallelism``, ``cpus_per_task``, ``gpus_per_node``,
    ``mem_gb``) plus ``poll_s``.  Raises `ConfigError` on bad input before anything runs.
    """
    import multiprocessing

    from workbench.registry import get_study
    from workbench.runner import code_fingerprint, is_cached

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError("sweep() was called while a worker process was importing your script: with the "
                           "'spawn' start method every worker imports the main script, so put the call under "
                           "`if __name__ == '__main__':`")
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}."
                          f"{did_you_mean(executor, EXECUTORS)}")
    study = get_study(study)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    if executor == "local" and submitit_opts:
        raise ConfigError(f"{sorted(submitit_opts)} only apply to executor='submitit'")
    cluster = submitit_opts.get("cluster", "slurm")
    plan = plan_sweep(study, grid, seeds, preset=preset, overrides=overrides, device=device, root=root,
                      resolve=not (executor == "submitit" and cluster == "slurm"))
    from workbench.runner import check_runs_root
    check_runs_root(root)  # a runs directory that cannot be written fails here, not in every run
    submit = None
    if executor == "submitit":
        poll_s = submitit_opts.pop("poll_s", None)
        opts = {"folder": Path(plan[0].path).parent.parent / ".submitit" / study.NAME / "%j", **submitit_opts}
        submit = make_submitit_executor(**opts)  # fails (bad input) before anything runs
    _warn_overlapping_seeds(plan)
    fingerprint = code_fingerprint(study)
    pending = [p for p in plan if force or not is_cached(p.path, fingerprint)]
    if progress:
        print(f"sweep {study.NAME} [{preset}]: {len(plan)} runs, {len(plan) - len(pending)} already complete "
              f"(skipped), {len(pending)} to run", flush=True)
    tasks = [_task(study, p, force) for p in pending]
    if executor == "local":
        summaries = _run_local(tasks, pending, workers or _available_cpus(), progress)
    else:
        summaries = _run_submitit(submit, tasks, pending, progress, cluster=cluster,
                                  threads=submitit_opts.get("cpus_per_task") or 1, poll_s=poll_s)
    failures = [(p.describe(), s["error"]) for p, s in zip(pending, summaries) if s["status"] != "complete"]
    table = SweepTable([read_row(p.label, p.path) for p in plan], list(plan[0].label))
    return SweepResult(study.NAME, table, skipped=len(plan) - len(pending), ran=len(pending), failures=failures)


def _task(study: ModuleType, run: PlannedRun, force: bool) -> dict[str, Any]:
    return {"study": study.NAME, "module": study.__name__, "file": getattr(study, "__file__", None),
            "config": run.config.to_dict(), "path": str(run.path), "root": str(run.path.parent.parent),
            "force": force, "threads": None}


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _warn_overlapping_seeds(plan: list[PlannedRun]) -> None:
    """Member i of a run uses seed + i, so seeds closer than n_seeds share ensemble members."""
    seeds = sorted({p.config.seed for p in plan})
    n = max(p.config.n_seeds for p in plan)
    gaps = [b - a for a, b in zip(seeds, seeds[1:])]
    if gaps and n > 1 and min(gaps) < n:
        print(f"warning: n_seeds={n} and member i of a run uses seed+i, so runs with seeds closer than {n} "
              f"share ensemble members; use --set n_seeds=1 or seeds spaced by {n} for independent runs",
              file=sys.stderr)


def _report(bar, run: PlannedRun, s: dict[str, Any], progress: bool) -> None:
    if bar is not None:
        bar.update(1)
    if not progress:
        return
    from tqdm import tqdm

    outcome = s["passed"] if s["status"] == "complete" else None
    state = {True: "PASS", False: "FAIL (check)", None: "RUN FAILED"}[outcome]
    tqdm.write(f"  {run.describe()}: {state} ({s['seconds']:.1f}s){'' if s['error'] is None else ' ' + s['error']}")


def _bar(total: int, progress: bool):
    if not progress or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep", unit="run")


def _run_local(tasks: list[dict], pending: list[PlannedRun], workers: int, progress: bool) -> list[dict]:
    summaries: list[dict | None] = [None] * len(tasks)
    bar = _bar(len(tasks), progress)
    try:
        if min(workers, len(tasks)) <= 1:
            for i, task in enumerate(tasks):
                summaries[i] = _run_one(task)
                _report(bar, pending[i], summaries[i], progress)
            return summaries  # type: ignore[return-value]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        for task in tasks:
            task["threads"] = 1
        pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), initializer=_init_worker,
                                   mp_context=multiprocessing.get_context("spawn"))
        futures: dict = {}
        try:
            futures = _submit_ignoring_ctrl_c(pool, tasks)
            for future in as_completed(futures):
                i = futures[future]
                try:
                    summaries[i] = future.result()
                except Exception as err:  # the worker process died (killed, out of memory)
                    summaries[i] = {"path": tasks[i]["path"], "status": "failed", "passed": None, "seconds": 0.0,
                                    "error": f"worker process failed: {type(err).__name__}: {err} (calling sweep() "
                                             "from a script? guard it with `if __name__ == '__main__':`)"}
                _report(bar, pending[i], summaries[i], progress)
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
                bar = None
            _interrupted(pool, futures, pending)
            raise
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=False)  # every result is in; the workers take seconds to exit (torch teardown)
        return summaries  # type: ignore[return-value]
    finally:
        if bar is not None:
            bar.close()


def _submit_ignoring_ctrl_c(pool, tasks: list[dict]) -> dict:
    """Submit every task; the workers are spawned with Ctrl-C ignored (inherited across exec, so
    even a worker still importing torch does not die with a traceback): Ctrl-C is the parent's."""
    import signal

    handler = signal.getsignal(signal.SIGINT) if threading_is_main() else None
    if handler is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return {pool.submit(_run_one, task): i for i, task in enumerate(tasks)}
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _interrupted(pool, futures: dict, pending: list[PlannedRun]) -> None:
    """The first Ctrl-C: launch nothing more, wait for the runs in progress (saying which); a
    second Ctrl-C: terminate the workers.  Returns once the pool is down (no thread left behind
    to print a traceback at exit)."""
    from concurrent.futures import wait

    for future in futures:
        future.cancel()  # the ones not handed to a worker yet
    running = [f for f in futures if not f.done()]
    if running:
        names = ", ".join(pending[futures[f]].describe() for f in running[:6]) + (" ..." if len(running) > 6 else "")
        print(f"\ninterrupted: launching no more runs; waiting for the {len(running)} run(s) in progress to finish "
              f"and be saved ({names}). Press Ctrl-C again to stop them now (their work is lost).",
              file=sys.stderr, flush=True)
    try:
        wait(running)
        pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            try:
                process.terminate()
            except Exception:  # pragma: no cover - already gone
                pass
        for process in processes:
            process.join(timeout=10)
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except Exception:  # pragma: no cover - a broken pool is expected here
            pass
        print(f"stopped: the {len(running)} run(s) in progress were terminated; finished runs are kept",
              file=sys.stderr, flush=True)


# ========================================================================== submitit
def make_submitit_executor(*, cluster: str = "slurm", folder: str | Path, partition: str | None = None,
                           time_min: int | None = 60, array_parallelism: int = 16, cpus_per_task: int | None = 1,
                           gpus_per_node: int | None = None, mem_gb: float | None = None,
                           job_name: str = "workbench-sweep"):
    """A ``submitit.AutoExecutor`` for a job array with at most ``array_parallelism`` tasks
    running at once.  Missing submitit, or Slurm not found, is bad input (`ConfigError`)."""
    if cluster not in CLUSTERS:
        raise ConfigError(f"unknown submitit cluster {cluster!r}; choose one of {list(CLUSTERS)}."
                          f"{did_you_mean(cluster, CLUSTERS)}")
    for name, value in (("array_parallelism", array_parallelism), ("time_min", time_min),
                        ("cpus_per_task", cpus_per_task), ("gpus_per_node", gpus_per_node)):
        low = 0 if name == "gpus_per_node" else 1
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    try:
        import submitit
    except ImportError:
        raise ConfigError(f"the submitit executor needs the submitit package, which is not installed: "
                          f"{CLUSTER_HINT}") from None
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    except RuntimeError as err:  # e.g. 'Could not detect "srun"'
        raise ConfigError(f"submitit cannot use the {cluster!r} cluster here ({err}); run from a Slurm login node, "
                          f"or use --submitit-cluster local to try the array on this machine") from None
    params = {"name": job_name, "timeout_min": time_min, "cpus_per_task": cpus_per_task, "gpus_per_node": gpus_per_node,
              "mem_gb": mem_gb, "slurm_partition": partition, "slurm_array_parallelism": array_parallelism}
    executor.update_parameters(**{k: v for k, v in params.items()
                                  if v is not None and (cluster == "slurm" or not k.startswith("slurm_"))})
    return executor


def _run_submitit(executor, tasks: list[dict], pending: list[PlannedRun], progress: bool, *, cluster: str,
                  threads: int, poll_s: float | None) -> list[dict]:
    if not tasks:
        return []
    for task in tasks:
        task["threads"] = None if cluster == "debug" else threads  # debug runs in this process
    jobs = executor.map_array(_run_one, tasks)
    if progress and cluster != "debug":
        print(f"submitted {len(jobs)} jobs ({cluster}); job ids {jobs[0].job_id} ... {jobs[-1].job_id}; "
              f"logs in {executor.folder}", flush=True)
    index = {id(j): i for i, j in enumerate(jobs)}
    summaries: list[dict | None] = [None] * len(jobs)
    bar = _bar(len(jobs), progress)
    try:
        if cluster == "debug":
            done = iter(jobs)
        else:
            import submitit

            done = submitit.helpers.as_completed(jobs, poll_frequency=poll_s or (1.0 if cluster == "local" else 30.0))
        for job in done:
            i = index[id(job)]
            try:
                summaries[i] = job.result()
            except Exception as err:  # the job itself died: timeout, preemption, out of memory
                summaries[i] = {"path": tasks[i]["path"], "status": "failed", "passed": None, "seconds": 0.0,
                                "error": f"job {job.job_id} failed ({type(err).__name__}); see {job.paths.stderr}"}
            _report(bar, pending[i], summaries[i], progress)
    finally:
        if bar is not None:
            bar.close()
    return summaries  # type: ignore[return-value]


