"""Trained models: the four Fig. 2 variants trained on two of Dong et al.'s synthetic tasks, their
residual through depth, and the output restricted to paths of length <= l (their Sec. 4.3).

The tasks follow the official code (``twistedcubic/attention-rank-collapse``), read, not copied:

* **sorting** (``run_sort.py``, ``gen_data_repeat``): a sequence of ``seq_len`` integers drawn
  uniformly from 0 .. vocab-1 (repeats allowed); the label of position i is the i-th smallest value
  (``torch.sort`` of the sequence); a token embedding plus a position embedding in, a linear
  classifier per token out, cross-entropy; accuracy is the fraction of positions right (the official
  ``evaluate_metric3``).  The data are drawn once from the stream ``rank-collapse/trained``, key
  ``"sort"``, child ``"train"`` / ``"eval"``, shared by every seed and variant.
* **circle** (``run_circle.py``): P points at angles 2 pi i / P on the circle of radius 0.3; sample i
  holds the two tokens (point i, point i + P/2 - 1) and its target is the next point of each,
  (point i + 1, point i + P/2); a linear map of the coordinates in (no embedding table), a linear
  read-out to R^2, squared error summed over tokens and coordinates.  The data are deterministic
  (the official evaluation set is the training set).

Where ours differs (sizes in `config.TrainedConfig`): the models are this study's no-bias blocks
(`workbench.attention`) in the four variants of `model.variant_specs`, not the official post-LN
BERT layers; training is full batch with Adam at a larger learning rate for fewer steps, in float64,
with an ensemble of seeds; the circle network has ``depth`` layers (the official one has 1, applied
recurrently), so that it has a residual through depth to measure.

Paths by length: without LayerNorm and MLP the SAN+skip output is exactly the sum over paths of
P_path X W_path (`model.path_decomposition`, Claim 3.1), P fixed by the forward pass.  Grouped by
length k (the number of attention heads on the path), the sums obey the recursion

    Y_l^(k) = Y_(l-1)^(k) + alpha sum_h P_h^l Y_(l-1)^(k-1) W_h^l,     Y_0^(0) = X_0,

which gives all L + 1 length groups in O(L^2 H) products instead of (H + 1)^L path terms
(`paths_by_length`; the test compares it with the enumeration).  The truncated output
sum_(k <= l) Y_L^(k) goes through the trained read-out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from workbench.attention import TransformerSpec, transformer_forward
from workbench.streams import Stream
from workbench.train import Adam, train

from studies.rank_collapse.config import Config, TrainedConfig
from studies.rank_collapse.model import init_weights, value_maps, variant_specs
from studies.rank_collapse.norms import composite_norm, residual_mean

CIRCLE_RADIUS = 0.3
"""The radius of the official circle task."""
VARIANT_KEYS = {"SAN": "san", "SAN+MLP": "san_mlp", "SAN+skip": "san_skip", "full": "full"}
"""Record key of each trained variant (as `simulate.VARIANT_KEYS`)."""
PATH_VARIANT = "san_skip"
"""The variant whose output is split by path length: SAN+skip, where the path sum is exact."""


@dataclass
class Trained:
    """The four variants trained on each task; keys ``'<task>_<variant>'`` (e.g. ``'sort_san'``).

    Shapes: N seeds, L layers, T recorded training steps, B evaluation samples."""

    steps: np.ndarray
    """(T,) the training steps at which the loss was recorded (0 = initialisation)."""
    train_loss: dict[str, np.ndarray]
    """(T, N) the full-batch training loss."""
    rho: dict[str, np.ndarray]
    """(N, L+1) relative residual ||res(X_l)||_{1,inf} / ||X_l||_{1,inf} of the trained model's hidden
    states on the evaluation inputs, averaged over the B samples."""
    rho_init: dict[str, np.ndarray]
    """(N, L+1) the same at initialisation (the same weights before training)."""
    eval_loss: dict[str, np.ndarray]
    """(N,) the task loss on the evaluation set (sorting: cross-entropy per token; circle: squared error per sample)."""
    eval_accuracy: dict[str, np.ndarray]
    """(N,) sorting: the fraction of positions predicted right on the evaluation set (absent for the circle)."""
    path_loss: dict[str, np.ndarray]
    """'<task>' -> (N, L+1) the loss of SAN+skip's output restricted to paths of length <= l."""
    path_accuracy: dict[str, np.ndarray]
    """'sort' -> (N, L+1) the accuracy of the output restricted to paths of length <= l."""
    path_accuracy_exact: dict[str, np.ndarray]
    """'sort' -> (N, L+1) the accuracy of the paths of length exactly l alone (the paper's Sec. 4.3 view)."""
    path_error: dict[str, np.ndarray]
    """'<task>' -> (N,) max |sum over all lengths - forward output| / max |forward output|."""
    path_share: dict[str, np.ndarray]
    """'<task>' -> (N, L+1) ||length-l group||_F / sum_k ||length-k group||_F of SAN+skip's output."""
    weights: dict[str, dict[str, np.ndarray]]
    """'<task>_<variant>' -> the trained parameters (N, ...)."""


# ----------------------------------------------------------------------------- data
def sort_data(seed: int, tc: TrainedConfig, split: str, device, n: int | None = None) -> tuple[Tensor, Tensor]:
    """(tokens, labels), each (B, seq_len) int64: uniform values in [0, vocab), labels the sorted sequence."""
    count = n if n is not None else (tc.n_train if split == "train" else tc.n_eval)
    tokens = Stream(seed, "rank-collapse/trained", "sort").child(split).integers(0, tc.vocab, (count, tc.seq_len),
                                                                                   device=device)
    return tokens, tokens.sort(dim=-1).values


def circle_data(tc: TrainedConfig, dtype, device) -> tuple[Tensor, Tensor]:
    """(X, Y), each (P/2 - 1, 2, 2): the official circle samples and their next points."""
    P = tc.circle_points
    theta = 2 * math.pi * torch.arange(P, dtype=dtype, device=device) / P
    pts = CIRCLE_RADIUS * torch.stack([torch.cos(theta), torch.sin(theta)], -1)  # (P, 2)
    m = P // 2 - 1
    i = torch.arange(m, device=device)
    X = torch.stack([pts[i], pts[i + m]], 1)
    Y = torch.stack([pts[i + 1], pts[i + 1 + m]], 1)
    return X, Y


# ----------------------------------------------------------------------------- models
def task_spec(tc: TrainedConfig, variant: str, norm: str = "post") -> TransformerSpec:
    """The variant's architecture (`model.variant_specs`, alpha = 1; the full model skip + MLP + post-LN,
    the official models' placement)."""
    name = {v: k for k, v in VARIANT_KEYS.items()}[variant]
    return variant_specs(tc.depth, tc.d_model, tc.n_heads, alpha=1.0, skip=True, mlp=True, norm=norm)[name]


def init_task(task: str, tc: TrainedConfig, stream: Stream, seeds, dtype, device) -> dict[str, Tensor]:
    """Attention and MLP weights (`model.init_weights`, unit scales, shared by the four variants) plus the
    input map and the read-out of the task.

    Sorting: a token embedding (e, vocab, d) and a position embedding (e, seq_len, d), N(0, 1) entries.
    Circle: a linear input map (e, 2, d) with N(0, 1/0.3^2) entries (so the input tokens have N(0, 1)
    entries).  Read-out (e, d, C) with N(0, 1/d) entries and a zero bias (e, C); C = vocab or 2."""
    d = tc.d_model
    spec = TransformerSpec(depth=tc.depth, d_model=d, n_heads=tc.n_heads)
    p = init_weights(spec, stream.child("weights"), seeds, value_scale=1.0, dtype=dtype, device=device)
    if task == "sort":
        p["embed"] = stream.child("embed").normal((tc.vocab, d), members=seeds, device=device, dtype=dtype)
        p["pos"] = stream.child("pos").normal((tc.seq_len, d), members=seeds, device=device, dtype=dtype)
        C = tc.vocab
    else:
        p["embed"] = stream.child("embed").normal((2, d), members=seeds, device=device, dtype=dtype) / CIRCLE_RADIUS
        C = 2
    p["read"] = stream.child("read").normal((d, C), members=seeds, device=device, dtype=dtype) / math.sqrt(d)
    p["bias"] = torch.zeros(p["read"].shape[0], C, dtype=dtype, device=device)
    return p


def embed(task: str, p: dict[str, Tensor], inputs: Tensor) -> Tensor:
    """X_0 (e, B, n, d): sorting tokens (B, n) or circle coordinates (B, n, 2)."""
    if task == "sort":
        return p["embed"][:, inputs] + p["pos"][:, None]
    return torch.einsum("bnc,ecd->ebnd", inputs, p["embed"])


def forward(task: str, p: dict[str, Tensor], inputs: Tensor, spec: TransformerSpec):
    """(logits (e, B, n, C), the forward pass): `workbench.attention.transformer_forward` with the
    sample axis B, member e's weights shared by its B samples; hidden states (e, B, n, d), patterns
    (e, B, H, n, n)."""
    fwd = transformer_forward(embed(task, p, inputs), p, spec)
    return readout(p, fwd.output), fwd


def readout(p: dict[str, Tensor], H: Tensor) -> Tensor:
    """Logits (e, B, n, C) of hidden states (e, B, n, d)."""
    return torch.einsum("ebnd,edc->ebnc", H, p["read"]) + p["bias"][:, None, None]


def task_loss(task: str, logits: Tensor, targets: Tensor) -> Tensor:
    """(e,) sorting: mean cross-entropy per token; circle: squared error summed over tokens and coordinates,
    averaged over samples."""
    if task == "sort":
        logp = torch.log_softmax(logits, dim=-1)
        picked = torch.gather(logp, -1, targets.expand(logits.shape[0], *targets.shape)[..., None])[..., 0]
        return -picked.mean(dim=(1, 2))
    return (logits - targets).pow(2).sum(dim=(2, 3)).mean(dim=1)


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """(e,) the fraction of positions whose arg-max class is the label."""
    return (logits.argmax(-1) == labels).to(logits.dtype).mean(dim=(1, 2))


def mean_rho(fwd) -> Tensor:
    """(e, L+1) the relative residual of every hidden state, averaged over the batch."""
    H = torch.stack(fwd.hidden, 2)  # (e, B, L+1, n, d)
    rho = composite_norm(residual_mean(H)) / composite_norm(H)  # (e, B, L+1)
    return rho.mean(1)


# ----------------------------------------------------------------------------- paths by length
def paths_by_length(X: Tensor, params: dict[str, Tensor], spec: TransformerSpec, patterns: list[Tensor]) -> Tensor:
    """The SAN+skip output grouped by path length: X (e, B, n, d) -> (e, B, L+1, n, d), group k the
    sum of the paths through k heads.

    The recursion of the module docstring; exact for a skip stack without MLP or LayerNorm (the
    sum over groups is the forward output), with the forward pass's ``patterns`` (e, B, H, n, n)."""
    if not spec.skip or spec.mlp or spec.norm != "none":
        raise ValueError("paths_by_length needs a skip stack without MLP or LayerNorm")
    L = spec.depth
    alpha = spec.branch_scale
    groups = [X] + [torch.zeros_like(X) for _ in range(L)]
    for l in range(L):
        W = value_maps(params, 0 if spec.tied else l)  # (e, H, d, d)
        P = patterns[l]  # (e, B, H, n, n)
        new = list(groups)
        for k in range(1, l + 2):
            new[k] = groups[k] + alpha * torch.einsum("ebhij,ebjd,ehdf->ebif", P, groups[k - 1], W)
        groups = new
    return torch.stack(groups, 2)


# ----------------------------------------------------------------------------- the phase
def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def trained_models(cfg: Config) -> Trained:
    """Train the four variants on every task of ``cfg.trained``; measure the residual through depth and
    SAN+skip's output by path length."""
    tc, dev, dt = cfg.trained, cfg.torch_device, cfg.torch_dtype
    N = tc.seeds
    observe = np.unique(np.linspace(0, tc.steps, 31).round().astype(int))
    out: dict[str, dict] = {k: {} for k in ("train_loss", "rho", "rho_init", "eval_loss", "eval_accuracy", "path_loss",
                                             "path_accuracy", "path_accuracy_exact", "path_error", "path_share",
                                             "weights")}
    for task in tc.tasks:
        st = Stream(cfg.seed, "rank-collapse/trained", task)
        if task == "sort":
            x_train, y_train = sort_data(cfg.seed, tc, "train", dev)
            x_eval, y_eval = sort_data(cfg.seed, tc, "eval", dev)
        else:
            x_train, y_train = circle_data(tc, dt, dev)
            x_eval, y_eval = x_train, y_train
        init = init_task(task, tc, st, N, dt, dev)
        for variant in VARIANT_KEYS.values():
            key = f"{task}_{variant}"
            spec = task_spec(tc, variant)

            def loss_fn(p, step, spec=spec):
                return task_loss(task, forward(task, p, x_train, spec)[0], y_train)

            with torch.enable_grad():
                res = train(init, loss_fn, Adam(lr=tc.lr), tc.steps, observe_at=observe)
            p = res.params
            with torch.no_grad():
                _, fwd0 = forward(task, init, x_eval, spec)
                logits, fwd = forward(task, p, x_eval, spec)
            out["train_loss"][key] = _np(res.trajectory["loss"])
            out["rho"][key] = _np(mean_rho(fwd))
            out["rho_init"][key] = _np(mean_rho(fwd0))
            out["eval_loss"][key] = _np(task_loss(task, logits, y_eval))
            if task == "sort":
                out["eval_accuracy"][key] = _np(accuracy(logits, y_eval))
            out["weights"][key] = {k: _np(v) for k, v in p.items()}
            if variant == PATH_VARIANT:
                groups = paths_by_length(embed(task, p, x_eval), p, spec, fwd.patterns)  # (N, B, L+1, n, d)
                total = groups.sum(2)
                ref = fwd.output
                out["path_error"][task] = _np((total - ref).abs().amax(dim=(1, 2, 3)) / ref.abs().amax(dim=(1, 2, 3)))
                norms = groups.pow(2).sum(dim=(-2, -1)).sqrt().mean(1)  # (N, L+1)
                out["path_share"][task] = _np(norms / norms.sum(-1, keepdim=True))
                cum = groups.cumsum(2)
                losses, accs, exact = [], [], []
                for l in range(tc.depth + 1):
                    lg = readout(p, cum[:, :, l])
                    losses.append(task_loss(task, lg, y_eval))
                    if task == "sort":
                        accs.append(accuracy(lg, y_eval))
                        exact.append(accuracy(readout(p, groups[:, :, l]), y_eval))
                out["path_loss"][task] = _np(torch.stack(losses, 1))
                if task == "sort":
                    out["path_accuracy"][task] = _np(torch.stack(accs, 1))
                    out["path_accuracy_exact"][task] = _np(torch.stack(exact, 1))
    return Trained(steps=observe, **out)
