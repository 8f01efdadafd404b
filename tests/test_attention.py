"""Attention blocks: ensemble member i equals the standalone model i; stable softmax."""
import math

import pytest
import torch

from workbench.streams import Stream
from workbench.attention import (TransformerSpec, init_transformer, layer_norm,
                                 multi_head_attention, stable_softmax, transformer_forward)


def test_stable_softmax_survives_huge_logits():
    z = torch.tensor([[1000.0, 999.0, -1000.0]], dtype=torch.float64)
    p = stable_softmax(z)
    assert torch.isfinite(p).all()
    assert torch.allclose(p, torch.softmax(z, -1), atol=0, rtol=1e-15)


def test_multi_head_matches_a_per_head_loop():
    s = Stream(0, "test-attention-heads")
    e, n, d, h, k = 2, 5, 6, 3, 2
    X = s.child("X").normal((e, n, d))
    W_Q, W_K, W_V = (s.child(name).normal((e, h, d, k)) for name in ("W_Q", "W_K", "W_V"))
    W_O = s.child("W_O").normal((e, h, k, d))
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
    """Member i of an ensemble of 3 is member i of an ensemble of 2 and member i drawn alone, and
    its forward pass equals the standalone one."""
    spec = TransformerSpec(depth=3, d_model=8, n_heads=2, skip=skip, branch_scale=0.5, mlp=mlp, norm=norm, tied=tied)
    stream = Stream(10, "test-attention")
    params = init_transformer(spec, stream, 3)
    smaller = init_transformer(spec, stream, 2)
    X = Stream(1, "test-attention-x").normal((5, 8), members=3)
    batched = transformer_forward(X, params, spec)
    for i in range(3):
        alone = init_transformer(spec, stream, [i])
        for k in params:
            assert params[k].shape[0] == 3
            assert torch.equal(alone[k][0], params[k][i])
            if i < 2:
                assert torch.equal(smaller[k][i], params[k][i])
        single = transformer_forward(X[i:i + 1], alone, spec)
        assert torch.allclose(single.output[0], batched.output[i], rtol=1e-13, atol=1e-14)
        assert len(single.patterns) == 3 and single.patterns[0].shape == (1, 2, 5, 5)


def test_init_is_layer_prefix_stable_and_mlp_independent():
    """The first L layers of a deeper stack are the L-layer stack's weights; adding the MLP leaves
    the attention weights alone; the scales are the documented ones."""
    stream = Stream(3, "test-attention-prefix")
    deep = init_transformer(TransformerSpec(depth=6, d_model=4, mlp=True), stream, 2, qk_std=2.0)
    shallow = init_transformer(TransformerSpec(depth=2, d_model=4), stream, 2, qk_std=2.0)
    assert set(shallow) == {"W_Q", "W_K", "W_V", "W_O"}
    for k in shallow:
        assert torch.equal(deep[k][:, :2], shallow[k])
    big = init_transformer(TransformerSpec(depth=1, d_model=64), Stream(0, "test-attention-std"), 50, qk_std=2.0)
    assert big["W_Q"].std().item() == pytest.approx(2.0 / 8.0, rel=0.02)
    assert big["W_O"].std().item() == pytest.approx(1.0 / 8.0, rel=0.02)


def test_layer_norm_normalises_each_token():
    X = Stream(0, "test-attention-ln").normal((2, 4, 7))
    Y = layer_norm(X, eps=0.0)
    assert torch.allclose(Y.mean(-1), torch.zeros(2, 4, dtype=torch.float64), atol=1e-14)
    assert torch.allclose(Y.pow(2).mean(-1), torch.ones(2, 4, dtype=torch.float64), atol=1e-13)
