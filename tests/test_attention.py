"""Attention blocks: ensemble member i equals the standalone model i; stable softmax."""
import math

import pytest
import torch

from workbench.attention import (TransformerSpec, init_transformer, layer_norm, member_generators,
                                 multi_head_attention, stable_softmax, transformer_forward)


def test_stable_softmax_survives_huge_logits():
    z = torch.tensor([[1000.0, 999.0, -1000.0]], dtype=torch.float64)
    p = stable_softmax(z)
    assert torch.isfinite(p).all()
    assert torch.allclose(p, torch.softmax(z, -1), atol=0, rtol=1e-15)


def test_multi_head_matches_a_per_head_loop():
    g = torch.Generator().manual_seed(0)
    e, n, d, h, k = 2, 5, 6, 3, 2
    X = torch.randn(e, n, d, generator=g, dtype=torch.float64)
    W_Q, W_K, W_V = (torch.randn(e, h, d, k, generator=g, dtype=torch.float64) for _ in range(3))
    W_O = torch.randn(e, h, k, d, generator=g, dtype=torch.float64)
    out, P = multi_head_attention(X, W_Q, W_K, W_V, W_O)
    for m in range(e):
        ref = torch.zeros(n, d, dtype=torch.float64)
        for hh in range(h):
            logits = (X[m] @ W_Q[m, hh]) @ (X[m] @ W_K[m, hh]).T / math.sqrt(k)
            Ph = torch.softmax(logits, dim=-1)
            assert torch.allclose(P[m, hh], Ph, rtol=1e-13, atol=1e-15)
            ref += Ph @ X[m] @ W_V[m, hh] @ W_O[m, hh]
        assert torch.allclose(out[m], ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("skip, mlp, norm, tied", [(False, False, "none", False), (True, True, "pre", False),
                                                   (True, True, "post", True)])
def test_ensemble_member_equals_standalone(skip, mlp, norm, tied):
    spec = TransformerSpec(depth=3, d_model=8, n_heads=2, skip=skip, branch_scale=0.5, mlp=mlp, norm=norm, tied=tied)
    gens = member_generators(10, 3)
    params = init_transformer(spec, gens)
    X = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    batched = transformer_forward(X, params, spec)
    for i in range(3):
        alone = init_transformer(spec, member_generators(10 + i, 1))
        for k in params:
            assert torch.equal(alone[k][0], params[k][i])
        single = transformer_forward(X[i:i + 1], alone, spec)
        assert torch.allclose(single.output[0], batched.output[i], rtol=1e-13, atol=1e-14)
        assert len(single.patterns) == 3 and single.patterns[0].shape == (1, 2, 5, 5)


def test_layer_norm_normalises_each_token():
    X = torch.randn(2, 4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    Y = layer_norm(X, eps=0.0)
    assert torch.allclose(Y.mean(-1), torch.zeros(2, 4, dtype=torch.float64), atol=1e-14)
    assert torch.allclose(Y.pow(2).mean(-1), torch.ones(2, 4, dtype=torch.float64), atol=1e-13)
