"""Rank collapse in pure self-attention (Dong, Cordonnier & Loukas, ICML 2021), with the Noci et
al. (2022) signal-propagation and Geshkovski et al. (2023) clustering extensions.

>>> from studies import rank_collapse as rc                                  # doctest: +SKIP
>>> record = rc.run(rc.Config.quick().replace(qk_scale=(1.0, 4.0)))          # doctest: +SKIP
>>> rc.checks(record), rc.figures(record)                                    # doctest: +SKIP
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from workbench.errors import DivergenceError
from workbench.record import Record, keep_on_failure

from studies.rank_collapse.checks import checks
from studies.rank_collapse.config import Config
from studies.rank_collapse.figures import figures
from studies.rank_collapse.theory import predict
from studies.rank_collapse import simulate
from studies.rank_collapse.bench import bench_case
from workbench.runtime import single_thread

NAME = "rank-collapse"
TITLE = "Rank collapse: pure attention loses rank doubly exponentially with depth"
REFERENCES = ["dong2021attention", "noci2022signal", "geshkovski2023mathematical", "geshkovski2023emergence"]

_PHASES = ("depth_sweep", "cubic_scan", "bound_trials", "path_experiment", "gradient_experiment",
           "noci_monte_carlo", "clustering", "two_token")


def run(config: Config, *, device=None, progress: bool = True) -> Record:
    """Every experiment of the study at ``config``; deterministic given the config."""
    import time

    if device is not None:
        config = config.replace(device=str(device))
    record = Record(study=NAME, config=config)
    timings = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(_PHASES), desc=NAME, unit="experiment")
    with single_thread(config.torch_device):
        for phase in _PHASES:
            start = time.perf_counter()
            with keep_on_failure(record, phase), \
                    torch.no_grad() if phase != "gradient_experiment" else contextlib.nullcontext():
                arrays = getattr(simulate, phase)(config)
                _require_finite(phase, arrays)
            record.add(**arrays)
            timings[phase] = round(time.perf_counter() - start, 3)
            if bar is not None:
                bar.set_postfix_str(phase)
                bar.update(1)
    if bar is not None:
        bar.close()
    record.info["phase_seconds"] = timings
    return record


def _require_finite(phase: str, arrays: dict) -> None:
    """Every array of this study is finite in a healthy run; a NaN or inf means the forward pass
    overflowed (a weight scale too large for the depth), which is a failed run, not a failed check."""
    bad = [k for k, v in arrays.items()
           if (torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all()))
           or (isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all())]
    if bad:
        raise DivergenceError(f"non-finite values (overflow in the forward pass) in {bad[:6]}"
                              + (f" and {len(bad) - 6} more" if len(bad) > 6 else ""), partial=arrays)


__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "run", "predict", "checks", "figures"]
