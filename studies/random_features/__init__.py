"""Random-feature attention: what a single multi-head attention layer with frozen random query-key
matrices learns (Fu et al., NeurIPS 2023), and random features that approximate softmax attention
(FAVOR+, Choromanski et al., ICLR 2021).

With frozen random heads only the values are trained, so every model is ridge regression on random
features; as M -> infinity it becomes kernel ridge regression with a closed-form (arc-cos) kernel in
which unbiased attention learns permutation-invariant targets independently of the sequence
length N, and a mean on the query-key matrices buys access to <x_0, x_i> at a cost on non-zonal
targets.  FAVOR+ estimates exp(x.y) without bias by positive random features, with the closed-form
MSEs of Lemma 2, lowered further by orthogonal features.

>>> from studies import random_features as rfa                              # doctest: +SKIP
>>> rec = rfa.run(rfa.Config.smoke())                                        # doctest: +SKIP
>>> [c.name for c in rfa.checks(rec) if not c.passed]                        # doctest: +SKIP

Modules: `config` (the learning sweep's fields and one sub-config per other sub-experiment),
`model` (features, targets, infinite-head kernels), `ridge` (closed-form ridge and kernel ridge),
`favor` (FAVOR+ estimators, closed-form MSEs, pitfalls), `spectrum` (the exact spectra of the RFA
and RFMLP kernels and the learning curves they predict), `theory` (`predict`), `simulate` (one
function per phase), `checks`, `figures`, `bench`.
"""
from studies.random_features import favor, model, ridge, simulate, spectrum, theory
from studies.random_features.bench import bench_case
from studies.random_features.checks import checks
from studies.random_features.config import Config
from studies.random_features.figures import figures
from studies.random_features.simulate import PHASES, run
from studies.random_features.theory import predict

NAME = "random-features"
TITLE = "Random-feature attention: learning with frozen random heads, and FAVOR+"
REFERENCES = ["fu2023single", "choromanski2021rethinking", "peng2021random", "rahimi2007random", "cho2009kernel",
              "bordelon2020spectrum", "canatar2021spectral"]
"""BibTeX keys of book/references.bib."""

__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "PHASES", "run", "predict", "checks", "figures", "bench_case",
           "favor", "model", "ridge", "simulate", "spectrum", "theory"]
