"""Attention theory workbench: shared machinery for exactly trained attention models.

Modules (imports point down only; nothing here knows about a single study):

- `workbench.config`    typed frozen configs, presets, ``--set`` parsing, content hash
- `workbench.checks`    `Check` (prediction vs measurement with a tolerance) and the checks table
- `workbench.record`    run records (config.json, arrays.npz, checks.json, meta.json, figures)
- `workbench.runner`    run a study with the run cache, atomic writes and determinism
- `workbench.attention` attention blocks with a leading ensemble axis
- `workbench.train`     exact optimisers (GD, normalised GD, SGD+momentum, Adam, spectral) and loop
- `workbench.ode`       gradient flow and ODEs (scipy solve_ivp, torch RK4)
- `workbench.phases`    a study's run as phases with typed results
- `workbench.streams`   named counter-based (Philox4x32-10) random streams on the run's device
- `workbench.linalg`    log-log slopes
- `workbench.sweep`     grids of runs: the grid, the results table, local and Slurm executors
- `workbench.plotting`  figure conventions
- `workbench.book`      the offline Jupyter Book build
- `workbench.cli`       the ``workbench`` command
- `workbench.progress`  notebook-aware progress bars
- `workbench.notebook`  a book chapter exported as a clean Jupyter notebook

In a notebook, `workbench.run` is the cached entry point: it returns a study's record, computed
once and reused while the config and the code are unchanged.
"""

import os as _os

# cuBLAS reads this when CUDA initialises; deterministic float64 matmuls need it set before then.
_os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

__version__ = "0.1.0"


def run(study, config=None, *, preset: str = "quick", overrides=(), device=None, root=None, force: bool = False,
        progress: bool = True, **kwargs):
    """Run a study, or load its record from the run cache, and return the `Record`.

    The notebook's cached entry point: rerunning a cell with the same config returns the saved
    record instead of recomputing, as long as the code is unchanged (the cache is keyed by the
    config's content hash and checked against a fingerprint of the source of `workbench` and of
    the study).  ``study`` is a name (``"scan-snap"`` or ``"scan_snap"``) or the study module;
    ``config`` a study ``Config`` (default: the ``preset``), ``overrides`` ``--set``-style strings
    (``["toy.lr=0.2"]``).  Records live in ``root``, else ``$WORKBENCH_RUNS``, else ``runs/``;
    ``force=True`` recomputes.  Other keyword arguments go to `workbench.runner.execute`.

    >>> import workbench                                                      # doctest: +SKIP
    >>> from studies import scan_snap as ss                                   # doctest: +SKIP
    >>> rec = workbench.run(ss, ss.Config.quick().replace(eta_y=4.0))         # doctest: +SKIP
    >>> ss.checks(rec), ss.figures(rec)                                       # doctest: +SKIP

    ``study.run(config)`` computes the same record every time and never caches.
    """
    from workbench.runner import execute  # lazy: `import workbench` stays light

    return execute(study, config, preset=preset, overrides=overrides, device=device, root=root, force=force,
                   progress=progress, **kwargs).record
