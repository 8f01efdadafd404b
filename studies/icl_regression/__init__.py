"""In-context linear regression: linear attention learns one step of preconditioned GD; softmax
heads pair up into a zero-sum debiased GD and generalise across context lengths.

Trained by exact GD on its population risk, single-layer linear self-attention reaches the optimal
one-step preconditioned GD, Gamma* = B Sigma G_N^{-1} (Zhang, Frei & Bartlett 2023; Ahn et al.
2023; Wu et al. 2024).  Multi-head softmax attention trained with Adam pairs its heads into
debiased GD with the optimal step Gamma_D*, which one head cannot do, and follows debiased GD at
every test length (He et al. 2025); von Oswald et al. (2023), Garg et al. (2022) and Raventos et
al. (2023) give the setting and the task-diversity question.  Wu et al.'s (2024) experiment, as
reconstructed from their abstract: the Gamma model pretrained by one-pass SGD over T fresh tasks,
its excess risk against T and d, and its risk against the optimally tuned ridge at the pretraining
length and at other inference lengths (phase ``wu``).

>>> from studies import icl_regression as icl                               # doctest: +SKIP
>>> record = icl.run(icl.Config.quick())                                    # doctest: +SKIP
>>> icl.checks(record), icl.figures(record), icl.predict(icl.Config.quick())  # doctest: +SKIP
>>> load(record, "softmax", icl.simulate.SoftmaxTraining).KQ                # doctest: +SKIP

(``load`` from `workbench.phases`: a phase's typed result.)  Modules: `config` (the primary
experiment's fields, one sub-config per other sub-experiment, and which phase each drives), `data`
(the data model, seeded prompts, the evaluation set), `model` (LSA and multi-head softmax attention,
and the statistics of trained circuits), `theory` (closed forms, `predict`), `simulate` (the phases,
their typed results, `run`), `checks`, `figures`, `bench`.
"""
from studies.icl_regression import data, model, simulate, theory
from studies.icl_regression.bench import bench_case, bench_cases
from studies.icl_regression.checks import checks
from studies.icl_regression.config import Config
from studies.icl_regression.figures import figures
from studies.icl_regression.simulate import PHASES, run
from studies.icl_regression.theory import predict

NAME = "icl-regression"
TITLE = "In-context linear regression: linear attention as preconditioned GD, softmax heads as debiased GD"
REFERENCES = ["he2025incontext", "wu2024many", "zhang2023trained", "ahn2023transformers",
              "vonoswald2023transformers", "garg2022what", "raventos2023pretraining"]
"""BibTeX keys of book/references.bib."""

__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "PHASES", "run", "predict", "checks", "figures",
           "bench_case", "bench_cases", "data", "model", "simulate", "theory"]
