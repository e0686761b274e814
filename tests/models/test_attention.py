"""The attention function: the fused (cuDNN) branch honours `scale` and the key-only mask."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sas_jax.models import attention

jax.config.update("jax_default_matmul_precision", "highest")

B, L, N, D = 2, 6, 2, 8


def _inputs(seed=0):
    kq, kk, kv = jax.random.split(jax.random.key(seed), 3)
    q, k, v = (jax.random.normal(x, (B, L, N, D), jnp.float32) for x in (kq, kk, kv))
    mask = jnp.array([[1] * L, [1] * (L - 2) + [0] * 2], jnp.int32)  # row 1: two padded keys
    return q, k, v, mask


@pytest.mark.parametrize("scale", [None, 0.37, 1.0 / (3 * D) ** 0.5])
def test_fused_call_matches_xla_path(scale):
    """The fused branch's very call, run with implementation=None on CPU, equals the XLA path."""
    q, k, v, mask = _inputs()
    want = attention.dot_product_attention(q, k, v, mask, impl="xla", scale=scale)
    used = 1.0 / D ** 0.5 if scale is None else scale
    got = attention.fused_attention(q, k, v, mask, scale=used, implementation=None)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-5)


def test_scale_changes_the_output():
    """Guards the test above: a scale that was dropped would have gone unnoticed."""
    q, k, v, mask = _inputs()
    a = attention.dot_product_attention(q, k, v, mask, impl="xla")
    b = attention.dot_product_attention(q, k, v, mask, impl="xla", scale=0.37)
    assert float(jnp.max(jnp.abs(a - b))) > 1e-2


@pytest.mark.parametrize("scale,want", [(None, 1.0 / D ** 0.5), (0.37, 0.37)])
def test_cudnn_branch_passes_scale(monkeypatch, scale, want):
    calls = []

    def fake(q, k, v, bias=None, mask=None, *, scale=None, implementation=None, **kw):
        calls.append({"scale": scale, "implementation": implementation, "mask": mask})
        return jnp.zeros_like(q)

    monkeypatch.setattr(jax.nn, "dot_product_attention", fake)
    q, k, v, mask = _inputs()
    attention.dot_product_attention(q, k, v, mask, impl="cudnn", scale=scale)
    assert len(calls) == 1
    assert calls[0]["implementation"] == "cudnn"
    assert calls[0]["scale"] == pytest.approx(want)
    assert calls[0]["mask"].shape == (B, 1, 1, L)


def test_dropout_and_bias_keep_the_xla_path(monkeypatch):
    monkeypatch.setattr(jax.nn, "dot_product_attention", lambda *a, **k: pytest.fail("fused path taken"))
    q, k, v, mask = _inputs()
    attention.dot_product_attention(q, k, v, mask, impl="cudnn", dropout_rate=0.1, dropout_rng=jax.random.key(1))
    attention.dot_product_attention(q, k, v, mask, impl="cudnn", bias_BxNxLxL=jnp.zeros((B, N, L, L)))
