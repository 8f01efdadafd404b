"""Transformers as support vector machines: the implicit bias of softmax attention.

Tarzanagh, Li, Thrampoulidis & Oymak, *Transformers as Support Vector Machines* (2023) and
Tarzanagh, Li, Zhang & Oymak, *Max-Margin Token Selection in Attention Mechanism* (NeurIPS 2023):
gradient descent on the one-layer model f(X) = v^T X^T softmax(X W z) drives ||W|| to infinity in
the direction of a hard-margin SVM that separates the selected token of each sequence from the
others, W^mm = argmin ||W||_F s.t. (x_{i alpha_i} - x_it)^T W z_i >= 1; with W = K Q^T the limit
minimises the nuclear norm instead.  The extension (spec section 5) adds spectral steepest
descent, whose limit minimises the operator norm.  Also: the width sweep at two init scales
(over-parameterisation), (K, Q) along the gradient-flow path, self-attention instances, and
MMTS's joint (v, p) training, and TF-SVM's nonlinear head, whose attention selects a set of tokens
per sequence, against the generalised SVM (Gen-SVM) of the official code.

    from studies import svm_bias as sb
    from workbench.phases import load
    rec = sb.run(sb.Config.quick().replace(param="KQ", init_scale=0.1, lr=0.1))
    sb.checks(rec), sb.figures(rec)
    main = load(rec, "main", sb.simulate.MainResult)        # a phase's typed result

Modules: `config` (the primary run's fields and one sub-config per sub-experiment), `instances`
(the five instance kinds, drawn from `workbench.streams`), `model` (forward passes, losses, gradients), `training` (optimisers and
the underflow guard), `svm` (Att-SVM in three norms, KKT, scipy cross-check), `theory` (closed
forms, `predict`), `nonlinear` (the lambda head, its optimal mixture and Gen-SVM), `simulate` (the
phases, their typed results, `run`), `metrics` (what the checks and figures measure), `checks`,
`figures`, `bench`.
"""
from studies.svm_bias import instances, metrics, model, nonlinear, simulate, svm, theory, training
from studies.svm_bias.bench import bench_case
from studies.svm_bias.checks import checks
from studies.svm_bias.config import Config
from studies.svm_bias.figures import figures
from studies.svm_bias.simulate import PHASES, run
from studies.svm_bias.theory import predict

NAME = "svm-bias"
TITLE = "Transformers as SVMs: the max-margin implicit bias of softmax attention"
REFERENCES = ["tarzanagh2023transformers", "tarzanagh2023maxmargin", "soudry2018implicit",
              "gunasekar2018characterizing", "sheen2024implicit", "srebro2005maximum", "bernstein2024old",
              "lawson1974solving"]

__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "PHASES", "run", "predict", "checks", "figures", "bench_case",
           "instances", "metrics", "model", "nonlinear", "simulate", "svm", "theory", "training"]
