"""In-context Markov chains (ICL-MC, Edelman et al. 2024), sampled exactly through `workbench.streams`.

Each sequence draws its own k x k transition matrix P with rows i.i.d. Dirichlet(alpha 1_k), then
x_1 ~ Uniform[k] and x_{t+1} ~ P[x_t, .].  A sequence has T + 1 tokens; position t = 1..T predicts
x_{t+1} from x_{1:t}.

Exact Dirichlet rows: a Dirichlet(alpha 1_k) row is a vector of k independent Gamma(alpha) variates
divided by their sum.  For 2 alpha an integer, Gamma(alpha) is exactly a sum of floor(alpha)
Exp(1) = -ln(1 - U) variates plus, when alpha has a half, Z^2 / 2 with Z ~ N(0, 1) (Gamma(1/2, 1)),
so no rejection sampler is needed; the study restricts alpha to that lattice.

Transitions by inverse CDF of one uniform per position (the rule of `Stream.categorical`, applied
row by row because each row depends on the previous token).
"""
from __future__ import annotations

import math

import torch

from workbench.errors import WorkbenchInputError
from workbench.streams import Stream


def check_alpha(alpha: float) -> None:
    if not (alpha > 0 and abs(2 * alpha - round(2 * alpha)) < 1e-12 and alpha <= 50):
        raise WorkbenchInputError(f"induction-heads: alpha must be a positive multiple of 1/2 (<= 50) for exact "
                                  f"Dirichlet sampling, got {alpha}")


def dirichlet_rows(stream: Stream, k: int, alpha: float, shape: tuple[int, ...], *, members, step=None,
                   device=None, dtype=torch.float64) -> torch.Tensor:
    """(*lead, *shape, k, k) transition matrices with Dirichlet(alpha 1_k) rows (exact; see module)."""
    check_alpha(alpha)
    n_exp, half = int(math.floor(alpha + 1e-12)), abs(alpha - math.floor(alpha + 1e-12) - 0.5) < 1e-9
    g = torch.zeros(0)
    if n_exp:
        u = stream.child("gamma-exp").uniform((*shape, k, k, n_exp), members=members, step=step, device=device)
        g = (-torch.log1p(-u)).sum(-1)                                     # (*lead, *shape, k, k) Gamma(floor alpha)
    if half:
        z = stream.child("gamma-half").normal((*shape, k, k), members=members, step=step, device=device)
        g = (g + 0.5 * z * z) if n_exp else 0.5 * z * z
    g = g.to(torch.float64)
    return (g / g.sum(-1, keepdim=True)).to(dtype)


def markov_sequences(stream: Stream, P: torch.Tensor, n_tokens: int, *, members, step=None,
                     device=None) -> torch.Tensor:
    """(*lead, n, n_tokens) int64 chains, x_1 uniform, x_{t+1} ~ P[x_t]; P is (*lead, n, k, k)."""
    k = P.shape[-1]
    shape = P.shape[-3:-2]
    x1 = stream.child("first").integers(0, k, shape, members=members, step=step, device=device)  # (*lead, n)
    u = stream.child("transitions").uniform((*shape, n_tokens - 1), members=members, step=step,
                                            device=device)                                 # (*lead, n, T)
    x1 = x1.reshape(P.shape[:-2])
    u = u.reshape(*P.shape[:-2], n_tokens - 1)
    cdf = P.to(torch.float64).cumsum(-1)[..., :-1]                                         # (*lead, n, k, k-1)
    xs = [x1]
    for t in range(n_tokens - 1):
        row = torch.gather(cdf, -2, xs[-1][..., None, None].expand(*xs[-1].shape, 1, k - 1)).squeeze(-2)
        xs.append((row <= u[..., t:t + 1]).sum(-1))                                        # (*lead, n)
    return torch.stack(xs, -1)


def sample(seed: int, name: str, k: int, alpha: float, n: int, n_tokens: int, *, members, step=None,
           device=None, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences of n_tokens tokens per (member, step): (P, x) with P (*lead, n, k, k), x (*lead, n, n_tokens)."""
    s = Stream(seed, name)
    P = dirichlet_rows(s.child("P"), k, alpha, (n,), members=members, step=step, device=device, dtype=dtype)
    x = markov_sequences(s.child("x"), P, n_tokens, members=members, step=step, device=device)
    return P, x
