"""Rank and heads: what one attention head of size d_h can express.

Part A (Bhojanapalli, Yun, Rawat, Reddi & Kumar 2020, "Low-Rank Bottleneck in Multi-head Attention
Models", made exact in the spec): with full-row-rank tokens, a row-stochastic P is one softmax head
of size d_h iff the row-centred log P has rank <= d_h, so the generic threshold is d_h = n - 1 (one
less than the paper's n); below it a certificate (Theorem B) proves failure.  Part B (Amsel,
Yehudai & Bruna 2024, "On the Benefits of Rank in Attention Layers"): one full-rank head represents
the nearest-neighbour target with error ~ C_inf/beta, while at fixed total width H r = d rank beats
heads, more rank-1 heads do not rescue it, a rank-r control shows the failure is expressivity, and
depth helps at N = 2.

>>> from studies import head_rank as st                                     # doctest: +SKIP
>>> record = st.run(st.Config.quick())                                      # doctest: +SKIP
>>> st.checks(record), st.figures(record), st.predict(st.Config.quick())    # doctest: +SKIP
"""
from studies.head_rank.bench import bench_case
from studies.head_rank.checks import checks
from studies.head_rank.config import Config
from studies.head_rank.figures import figures
from studies.head_rank.simulate import PHASES, run
from studies.head_rank.theory import predict

NAME = "head-rank"
TITLE = "Rank and heads: what one attention head of size d_h can express"
REFERENCES = ["bhojanapalli2020lowrank", "amsel2025quality"]

__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "PHASES", "run", "predict", "checks", "figures", "bench_case"]
