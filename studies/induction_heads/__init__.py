"""Induction heads and the in-context-learning phase change, made exact.

On in-context Markov chains (each sequence draws its own transition matrix, rows ~ Dirichlet(alpha);
Edelman, Edelman, Goel, Malach & Tsilivis 2024) the Bayes predictor and every per-position risk are
exactly computable; a two-layer attention-only transformer passes through a plateau at the
in-context-unigram level and then forms a previous-token head and an induction head that approach
Bayes (Olsson et al. 2022), while a one-layer model stays above it.  In this study's minimal model
with an attention sink the ideal head is exactly Bayes (the sink logit encodes ln(k alpha)), and its
reduced form trained on the exact population loss escapes the plateau at a closed-form time
ln(4/(q0+kappa0)^2) / (2 ln(1 + eta|g|)) (ours).

>>> from studies import induction_heads as st                                     # doctest: +SKIP
>>> record = st.run(st.Config.quick())                                      # doctest: +SKIP
>>> st.checks(record), st.figures(record), st.predict(st.Config.quick())    # doctest: +SKIP
"""
from studies.induction_heads.bench import bench_case, bench_cases
from studies.induction_heads.checks import checks
from studies.induction_heads.config import Config
from studies.induction_heads.figures import figures
from studies.induction_heads.simulate import PHASES, run
from studies.induction_heads.theory import predict

NAME = "induction-heads"
TITLE = "Induction heads and the in-context-learning phase change, made exact"
REFERENCES = ["olsson2022incontext", "edelman2024evolution", "bietti2023birth", "nichani2024how"]

__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "PHASES", "run", "predict", "checks", "figures", "bench_case", "bench_cases"]
