"""The one attention function every encoder layer calls.

Keeping it in one place lets the fused cuDNN kernel be swapped in by config
(`model.attention_impl`) without touching the layers.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from sas_jax.models.mixed import einsum_f32


def _use_cudnn(impl: str, dropout_active: bool, has_bias: bool) -> bool:
    if impl == "xla" or dropout_active or has_bias:
        # jax.nn.dot_product_attention has no dropout on the probabilities, so a
        # training step with attention dropout must take the XLA path. The
        # disentangled score bias is kept on the XLA path too: it has not been
        # validated against the fused kernel.
        return False
    if impl == "cudnn":
        return True
    return jax.default_backend() == "gpu"  # auto


def fused_attention(q_BxLxNxD, k_BxLxNxD, v_BxLxNxD, key_mask_BxL, *, scale: float,
                    implementation: str | None = "cudnn"):
    """The fused branch: `jax.nn.dot_product_attention` with the same key-only mask and `scale`.

    `implementation="cudnn"` is the GPU kernel; `None` / `"xla"` run the same call on any
    backend (the tests compare it with the XLA path below on CPU).
    """
    mask = key_mask_BxL[:, None, None, :].astype(bool)
    return jax.nn.dot_product_attention(
        q_BxLxNxD, k_BxLxNxD, v_BxLxNxD, mask=mask, scale=float(scale), implementation=implementation
    )


def dot_product_attention(
    q_BxLxNxD,
    k_BxLxNxD,
    v_BxLxNxD,
    key_mask_BxL,
    *,
    dropout_rate: float = 0.0,
    dropout_rng=None,
    impl: str = "xla",
    bias_BxNxLxL=None,
    scale: float | None = None,
):
    """softmax(q·kᵀ·scale + bias + mask)·v with a key-only padding mask.

    `scale` defaults to 1/√d and reaches both branches (XLA and fused);
    `bias_BxNxLxL` (float32, already scaled) carries the disentangled c2p + p2c
    terms (`models/disentangled.py`). Scores, mask and
    softmax are computed in float32 whatever the input dtype; `dropout_rng=None`
    means deterministic (no attention dropout).
    """
    dropout_active = dropout_rng is not None and dropout_rate > 0.0
    if scale is None:
        scale = 1.0 / float(q_BxLxNxD.shape[-1]) ** 0.5
    if _use_cudnn(impl, dropout_active, bias_BxNxLxL is not None):
        return fused_attention(q_BxLxNxD, k_BxLxNxD, v_BxLxNxD, key_mask_BxL, scale=scale)
    scores = einsum_f32("bqnd,bknd->bnqk", q_BxLxNxD, k_BxLxNxD) * jnp.float32(scale)
    if bias_BxNxLxL is not None:
        scores = scores + bias_BxNxLxL.astype(jnp.float32)
    big_neg = jnp.finfo(jnp.float32).min
    scores = jnp.where(key_mask_BxL[:, None, None, :].astype(bool), scores, big_neg)
    probs = jax.nn.softmax(scores, axis=-1)
    if dropout_active:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, probs.shape)
        probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
    probs = probs.astype(v_BxLxNxD.dtype)
    return jnp.einsum("bnqk,bknd->bqnd", probs, v_BxLxNxD)
