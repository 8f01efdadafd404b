"""Sweeps: a grid of independent runs of one study over the run cache.

    workbench sweep STUDY --grid KEY=V1,V2,... [--grid ...] [--seeds 0-9] [--preset quick]
                          [--set KEY=VALUE]... [--executor local|submitit] [--workers N]

Every point of the grid (the Cartesian product of the ``--grid`` lists) times every seed is one
ordinary run: it goes through `workbench.runner.execute`, writes ``runs/<study>/<hash>/`` and is
a cache hit when that record is already complete.  Runs that are complete are skipped before
anything is launched, so an interrupted sweep resumes where it stopped when the same command is
given again (``--force`` reruns everything).  A run that fails (divergence, solver failure) keeps
its partial arrays in ``<hash>.failed/`` and the sweep goes on.

Grid syntax (values are read with the config's own type coercion, as ``--set`` does):

- ``--grid lr=0.05,0.1,0.2``: values are separated by ``,``;
- if the list contains a ``;``, or the field holds a tuple, values are separated by ``;`` instead,
  so a ``,`` can appear inside a value: ``--grid "betas=0.5,1;2,4"`` (or ``"(0.5,1);(2,4)"``) is
  two runs, ``betas=(0.5, 1.0)`` and ``betas=(2.0, 4.0)``; ``--grid betas=0.5,1`` is one run;
- repeating a key takes the union: ``--grid lr=0.1 --grid lr=0.2`` is ``--grid lr=0.1,0.2``;
- ``--seeds 0-9``, ``--seeds 0,3,5`` or ``--seeds 0-4,10``: each seed (the config's ``seed``
  field) is a separate run; a ``seed`` key in ``--grid`` is refused in favour of ``--seeds``.

Everything (study, preset, ``--set``, every grid value, every grid point, the runs directory) is
validated before anything runs; bad input exits 2 with a message.

Ctrl-C.  The first Ctrl-C stops launching runs and waits for the runs in progress to finish and
be saved (it says which); a second Ctrl-C stops those too (their work is lost).  Either way the
sweep exits with code 130 and no traceback, and the same command resumes it.

Executors: ``local`` (default) is a process pool (``spawn``; one torch thread per worker;
``--workers 1`` runs in this process, for debugging).  ``submitit`` submits a Slurm job array with
a parallelism cap (``pip install attention-workbench[cluster]``) and waits for it;
``--submitit-cluster local|debug`` runs the same code path on this machine (``debug``: in process).

In a notebook, a sweep's results load as one table, one row per run:

>>> from workbench.sweep import load_sweep                                             # doctest: +SKIP
>>> table = load_sweep("toy", {"lr": [0.05, 0.1]}, seeds=range(4), preset="smoke")      # doctest: +SKIP
>>> table.column("lr"), table.column("loss_floor.measured"), table.to_pandas()          # doctest: +SKIP
"""
from workbench.sweep.executors import (CLUSTER_HINT, CLUSTERS, EXECUTORS, SweepResult, make_submitit_executor,
                                       sweep)
from workbench.sweep.grid import PlannedRun, parse_grid, parse_seeds, plan_sweep
from workbench.sweep.table import SweepTable, load_runs, load_sweep, read_row

__all__ = ["sweep", "load_sweep", "load_runs", "plan_sweep", "parse_grid", "parse_seeds", "SweepTable",
           "SweepResult", "PlannedRun", "make_submitit_executor", "read_row", "EXECUTORS", "CLUSTERS",
           "CLUSTER_HINT"]
