"""Log-log slopes: the exponent of a power law y ~ x^p, as the studies' scaling checks fit it.

(The composite norms and token-uniformity residuals that used to live here belong to one study
and moved to `studies.rank_collapse.norms`.)
"""
from __future__ import annotations

import numpy as np


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log(y) against log(x)."""
    x, y = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    return float(np.polyfit(x, y, 1)[0])
