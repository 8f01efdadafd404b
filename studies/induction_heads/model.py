"""The models of induction-heads: the minimal model (MM), its reduced symmetric form (RM), the transformer (TF).

MM (this study's, derived from Edelman et al. 2024's minimal model).  Input [BOS, x_1..x_T], BOS = token
k, one-hot e in R^{k+1}.

    layer 1 (positional, strictly causal):  a_ts = softmax_{0<=s<=t-1}(v_{t-s}),  a_00 = 1,
                                            h_s = sum_u a_su e_u                                   (1)
    layer 2:  S_ts = e_{x_t}^T (W_self e_{x_s} + W_prev h_s),  0 <= s <= t                         (2)
    readout:  q_t = sum_s softmax_s(S_t.) val_s,  val_s = e_{x_s} (k-dim), val_BOS = 1/k           (3)

ln q_t[j] = logsumexp_s(S_ts + ln val_sj) - logsumexp_s S_ts (never the log of a summed softmax).
The loss is the cross-entropy of the soft target (the Bayes predictive, or the true row P[x_t]).

RM: p = v_1 (other lags 0), W_prev = w (I_k | 0) with w = prod(factors), W_self = gamma (I_k | 0)
plus b in the BOS column (the sink logit).  Parameters (e, 3 + n): [p, gamma, b, f_1..f_n].

TF: a two-layer attention-only transformer close to Edelman et al.'s ``Attention_Only_Transformer``
(learned embedding, per-layer Q/K/V/O, a learned scalar relative-position bias per lag added to the
logits, causal softmax scaled by 1/sqrt(d), residual stream, bias-free unembedding; no LayerNorm or
dropout at this size).  Parameters carry a leading ensemble axis.
"""
from __future__ import annotations

import math

import torch

NEG = -1e300


def one_hot_inputs(x: torch.Tensor, k: int) -> torch.Tensor:
    """[BOS, x_1..x_T] one-hot: x (N, T) -> (N, T+1, k+1)."""
    bos = torch.full_like(x[..., :1], k)
    return torch.nn.functional.one_hot(torch.cat([bos, x], -1), k + 1).to(torch.float64)


def layer1_attention(v: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """(e, T+1, T+1) positional attention of eq. (1) from lag logits v (e, T) (lags 1..T)."""
    T = n_tokens
    t = torch.arange(T + 1, device=v.device)
    lag = t[:, None] - t[None, :]                                          # (T+1, T+1)
    allowed = (lag >= 1)
    logits = v[:, (lag - 1).clamp(0, T - 1)].masked_fill(~allowed, NEG)    # (e, T+1, T+1)
    logits[:, 0, 0] = 0.0                                                  # BOS attends to itself
    return torch.softmax(logits, -1)


def mm_forward(v, W_prev, W_self, x, k: int, *, layer2_uniform: bool = False):
    """log q (e, N, T, k), layer-1 attention A1 (e, T+1, T+1) and layer-2 attention A2 (e, N, T, T+1).

    v (e, T), W_prev and W_self (e, k, k+1), x (N, T) tokens shared by the members."""
    N, T = x.shape
    E = one_hot_inputs(x, k).to(v.dtype)                                   # (N, T+1, k+1)
    A1 = layer1_attention(v, T)                                            # (e, T+1, T+1)
    h = torch.einsum("ets,nsc->entc", A1, E)                               # (e, N, T+1, k+1)
    Eq = E[:, 1:, :k]                                                      # (N, T, k) queries x_1..x_T
    S = (torch.einsum("ntk,ekc,nsc->ents", Eq, W_self, E)
         + torch.einsum("ntk,ekc,ensc->ents", Eq, W_prev, h))              # (e, N, T, T+1)
    if layer2_uniform:
        S = torch.zeros_like(S)
    mask = torch.arange(T + 1, device=x.device)[None, :] <= torch.arange(1, T + 1, device=x.device)[:, None]
    S = S.masked_fill(~mask, NEG)                                          # key s <= query t
    logval = torch.full_like(E[:, :, :k], NEG).masked_fill(E[:, :, :k] > 0, 0.0)   # (N, T+1, k)
    logval[:, 0, :] = -math.log(k)                                         # the sink's uniform value
    lse = torch.logsumexp(S, -1, keepdim=True)                             # (e, N, T, 1)
    logq = torch.logsumexp(S[..., None] + logval[None, :, None, :, :], -2) - lse   # (e, N, T, k)
    return logq, A1, torch.exp(S - lse)


def rm_to_mm(theta: torch.Tensor, k: int, n_tokens: int):
    """RM parameters (e, 3+n) [p, gamma, b, factors] -> MM (v, W_prev, W_self)."""
    e = theta.shape[0]
    p, gamma, b = theta[:, 0], theta[:, 1], theta[:, 2]
    w = theta[:, 3:].prod(-1)
    eye = torch.eye(k, k + 1, dtype=theta.dtype, device=theta.device)
    sink = torch.zeros(k, k + 1, dtype=theta.dtype, device=theta.device)
    sink[:, k] = 1.0
    v = torch.cat([p[:, None], torch.zeros(e, n_tokens - 1, dtype=theta.dtype, device=theta.device)], -1)
    return v, w[:, None, None] * eye, gamma[:, None, None] * eye + b[:, None, None] * sink


def population_loss(logq, weights, targets):
    """(e,) sum_n w_n mean_t CE(target_nt, q_nt); weights (e|1, N), targets (e|1, N, T, k)."""
    ce = -(targets * logq).sum(-1).mean(-1)                                # (e, N)
    return (weights * ce).sum(-1)


def induction_mass(A2, x):
    """(e, N, T) layer-2 mass on keys s >= 2 whose previous token equals the query (x_{s-1} = x_t),
    and (N, T) the fraction of keys 0..t that qualify (chance)."""
    N, T = x.shape
    prev = torch.cat([torch.full_like(x[:, :1], -1), torch.full_like(x[:, :1], -2), x[:, :-1]], -1)  # (N, T+1): x_{s-1}
    match = (prev[:, None, :] == x[:, :, None])                            # (N, T, T+1)
    r = torch.arange(T + 1, device=x.device)
    causal = r[None, :] <= r[1:, None]
    match = match & causal
    chance = match.sum(-1) / (r[1:] + 1.0)
    return (A2 * match.to(A2.dtype)).sum(-1), chance


# ----------------------------------------------------------------------------------------- TF
def tf_init(stream, members, k: int, n_tokens: int, d: int, depth: int, sigma: float, device, dtype):
    """TF parameters, each (e, ...): embedding N(0, 1), Q/K/V/O N(0, sigma^2), unembedding N(0, 1/d),
    relative-position biases 0."""
    p = {"emb": stream.child("emb").normal((k + 1, d), members=members, device=device, dtype=dtype),
         "unemb": stream.child("unemb").normal((d, k), members=members, device=device, dtype=dtype) / math.sqrt(d)}
    for layer in range(depth):
        for name in "QKVO":
            p[f"{name}{layer}"] = sigma * stream.child(f"{name}{layer}").normal((d, d), members=members, device=device,
                                                                                  dtype=dtype)
        p[f"r{layer}"] = torch.zeros(p["emb"].shape[0], n_tokens + 1, device=device, dtype=dtype)
    return p


def tf_forward(params, x, k: int, *, ablate=None):
    """logits (e, n, T, k) at positions x_1..x_T and each layer's attention (e, n, T+1, T+1).

    x (e, n, T) tokens.  ``ablate`` = {layer: mean head output (e, T+1, d)} replaces that layer's
    head output by the given per-position mean (mean ablation)."""
    e, n, T = x.shape
    bos = torch.full_like(x[..., :1], k)
    tok = torch.cat([bos, x], -1)                                          # (e, n, T+1)
    onehot = torch.nn.functional.one_hot(tok, k + 1).to(params["emb"].dtype)
    z = (onehot.reshape(e, -1, k + 1) @ params["emb"]).reshape(e, n, T + 1, -1)   # (e, n, T+1, d)
    d = z.shape[-1]
    t = torch.arange(T + 1, device=x.device)
    lag = (t[:, None] - t[None, :]).clamp(min=0)                           # (T+1, T+1)
    causal = t[None, :] <= t[:, None]
    attns, outs = [], []
    layer = 0
    while f"Q{layer}" in params:
        W = torch.cat([params[f"Q{layer}"], params[f"K{layer}"], params[f"V{layer}"]], -1)   # (e, d, 3d)
        q, kk, vv = (z.reshape(e, -1, d) @ W).reshape(e, n, T + 1, 3 * d).split(d, -1)  # (e, n, T+1, d) each
        logits = q @ kk.transpose(-1, -2) / math.sqrt(d) + params[f"r{layer}"][:, lag][:, None]   # (e, n, T+1, T+1)
        a = torch.softmax(logits.masked_fill(~causal, float("-inf")), -1)
        head = ((a @ vv).reshape(e, -1, d) @ params[f"O{layer}"]).reshape(e, n, T + 1, d)   # (e, n, T+1, d)
        if ablate is not None and layer in ablate:
            head = ablate[layer][:, None].expand_as(head)
        attns.append(a)
        outs.append(head)
        z = z + head
        layer += 1
    logits = (z[:, :, 1:].reshape(e, -1, d) @ params["unemb"]).reshape(e, n, T, k)   # (e, n, T, k)
    return logits, attns, outs


# ------------------------------------------------------------------- RM on distinct prefixes (fast)
def rm_features(prefixes: list[torch.Tensor], k: int):
    """Key features of every query (a prefix x_1..x_t, t = 1..T), keys s = 0..T padded.

    Returns dict of (Nq, T+1) tensors: sink, M = 1[x_s = x_t], Pv = 1[x_{s-1} = x_t] (s >= 2),
    Cn = #{1 <= u <= s-2: x_u = x_t}/(s-1) (s >= 3), mask (s <= t), val (Nq, T+1, k), and t (Nq,)."""
    T = len(prefixes)
    rows = []
    for t, X in enumerate(prefixes, start=1):                              # X (N_t, t)
        N = X.shape[0]
        xt = X[:, -1:]
        tok = torch.cat([torch.full((N, 1), -1, dtype=X.dtype), X, torch.full((N, T - t), -1, dtype=X.dtype)], 1)
        eq = (tok == xt).to(torch.float64)                                 # (N, T+1): 1[x_s = x_t], s >= 1
        s = torch.arange(T + 1)
        mask = (s <= t)[None].expand(N, -1)
        Pv = torch.zeros(N, T + 1, dtype=torch.float64)
        Pv[:, 2:] = eq[:, 1:-1]
        Cn = torch.zeros(N, T + 1, dtype=torch.float64)
        Cn[:, 3:] = eq[:, 1:].cumsum(1)[:, :T - 2] / (s[3:] - 1.0)
        val = torch.nn.functional.one_hot(tok.clamp(min=0), k).to(torch.float64) * (tok >= 0)[..., None]
        val[:, 0] = 1.0 / k
        rows.append({"M": eq * mask, "Pv": Pv * mask, "Cn": Cn * mask, "mask": mask,
                     "val": val * mask[..., None], "t": torch.full((N,), t)})
    out = {key: torch.cat([r[key] for r in rows]) for key in rows[0]}
    out["sink"] = torch.zeros_like(out["M"])
    out["sink"][:, 0] = 1.0
    return out


def rm_forward(theta: torch.Tensor, f: dict):
    """RM on the query features of `rm_features`: log q (e, Nq, k) and layer-2 attention (e, Nq, T+1).

    theta (e, 3 + n) = [p, gamma, b, factors]; w = prod(factors); a_s = e^p / (e^p + s - 1), s >= 2.
    The readout q_j = sum_s A_s val_sj never underflows here: the sink contributes A_0 / k > 0."""
    p, gamma, b = theta[:, 0, None, None], theta[:, 1, None, None], theta[:, 2, None, None]
    w = theta[:, 3:].prod(-1)[:, None, None]
    T1 = f["M"].shape[1]
    s = torch.arange(T1, dtype=theta.dtype, device=theta.device)
    a = torch.where(s >= 2, torch.sigmoid(p - torch.log((s - 1).clamp(min=1))), torch.zeros_like(s))   # (e, 1, T+1)
    h = a * f["Pv"] + (1 - a) * f["Cn"]                                    # h_s[x_t]
    S = gamma * f["M"] + b * f["sink"] + w * h                             # (e, Nq, T+1)
    S = S.masked_fill(~f["mask"], float("-inf"))
    A = torch.softmax(S, -1)
    q = torch.einsum("eqs,qsk->eqk", A, f["val"])
    return torch.log(q), A


def rm_prev_score(theta: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """(e,) layer-1 mass on the previous token, mean over t = 2..T: e^p / (e^p + t - 1)."""
    t = torch.arange(2, n_tokens + 1, dtype=theta.dtype, device=theta.device)
    return torch.sigmoid(theta[:, :1] - torch.log(t - 1)).mean(-1)
