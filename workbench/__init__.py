"""Attention theory workbench: shared machinery for exactly trained attention models.

Modules (imports point down only; nothing here knows about a single study):

- `workbench.config`    typed frozen configs, presets, ``--set`` parsing, content hash
- `workbench.checks`    `Check` (prediction vs measurement with a tolerance) and the checks table
- `workbench.record`    run records (config.json, arrays.npz, checks.json, meta.json, figures)
- `workbench.runner`    run a study with the run cache, atomic writes and determinism
- `workbench.attention` attention blocks with a leading ensemble axis
- `workbench.train`     exact optimisers (GD, normalised GD, SGD+momentum, Adam, spectral) and loop
- `workbench.ode`       gradient flow and ODEs (scipy solve_ivp, torch RK4)
- `workbench.linalg`    composite norms, residuals, slopes
- `workbench.plotting`  figure conventions
- `workbench.book`      the offline Jupyter Book build
- `workbench.cli`       the ``workbench`` command
"""

import os as _os

# cuBLAS reads this when CUDA initialises; deterministic float64 matmuls need it set before then.
_os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

__version__ = "0.1.0"
