"""Rank collapse: pure self-attention loses rank doubly exponentially with depth.

Dong, Cordonnier & Loukas (ICML 2021) show that a stack of pure attention layers drives its input
towards a rank-one, token-uniform matrix: one layer maps a residual of size eps to O(eps^3), so L
layers leave O(eps^(3^L)) (their Thm 2.2, via the path decomposition of Thm 2.1); skip connections
keep a length-0 path and stop the doubly exponential collapse (Claim 3.1), MLPs do not.  At random
weights with skips the rank is still lost, exponentially, at the Lyapunov rate of the token mean.  With the Noci et al. (2022)
signal-propagation extension (uniform attention, the 1/sqrt(L) branch scaling, vanishing query/key
gradients) and the Geshkovski et al. (2023) clustering dynamics on the sphere.

>>> from studies import rank_collapse as rc                                  # doctest: +SKIP
>>> record = rc.run(rc.Config.quick().replace(qk_scale=(1.0, 4.0)))          # doctest: +SKIP
>>> rc.checks(record), rc.figures(record), rc.predict(rc.Config.quick())     # doctest: +SKIP
"""
from studies.rank_collapse import model, norms, simulate, theory
from studies.rank_collapse.bench import bench_case
from studies.rank_collapse.checks import checks
from studies.rank_collapse.config import Config
from studies.rank_collapse.figures import figures
from studies.rank_collapse.simulate import PHASES, run
from studies.rank_collapse.theory import predict

NAME = "rank-collapse"
TITLE = "Rank collapse: pure attention loses rank doubly exponentially with depth"
REFERENCES = ["dong2021attention", "noci2022signal", "geshkovski2023mathematical", "geshkovski2023emergence"]
"""BibTeX keys of book/references.bib."""

__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "PHASES", "run", "predict", "checks", "figures", "bench_case",
           "model", "norms", "simulate", "theory"]
