"""Pure loss and metric functions of the pre-training objectives."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def mlm_loss(logits_BxPxV, targets_BxP, weights_BxP):
    """Σ w·CE / max(Σ w, 1) over the gathered slots, in float32, token-weighted."""
    logits = logits_BxPxV.astype(jnp.float32)
    w = weights_BxP.astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets_BxP)
    denom = jnp.maximum(w.sum(), 1.0)
    loss = (ce * w).sum() / denom
    correct = (jnp.argmax(logits, -1) == targets_BxP).astype(jnp.float32)
    return loss, {"mlm_accuracy": (correct * w).sum() / denom, "mlm_slots": w.sum()}


def rtd_loss(logits_BxL, labels_BxL, mask_BxL):
    """Sigmoid BCE (label 1 = replaced), mean over non-pad positions including [CLS]."""
    logits = logits_BxL.astype(jnp.float32)
    y = labels_BxL.astype(jnp.float32)
    m = mask_BxL.astype(jnp.float32)
    denom = jnp.maximum(m.sum(), 1.0)
    loss = (optax.sigmoid_binary_cross_entropy(logits, y) * m).sum() / denom
    pred = (logits > 0).astype(jnp.float32)
    tp = (pred * y * m).sum()
    metrics = {
        "rtd_accuracy": ((pred == y) * m).sum() / denom,
        "rtd_precision": tp / jnp.maximum((pred * m).sum(), 1.0),
        "rtd_recall": tp / jnp.maximum((y * m).sum(), 1.0),
        "replaced_rate": (y * m).sum() / denom,
    }
    return loss, metrics


def sample_tokens(rng, logits_BxPxV, temperature: float):
    """One draw per slot from softmax(logits / T) over the full vocabulary, no gradient.

    Inverse-CDF sampling: one uniform per slot against the cumulative softmax,
    the same law as `jax.random.categorical` (Gumbel-max) but with P random
    numbers per row instead of P·V, which is most of the sampling cost on CPU.
    """
    logits = jax.lax.stop_gradient(logits_BxPxV.astype(jnp.float32))
    cdf = jnp.cumsum(jax.nn.softmax(logits / temperature, axis=-1), axis=-1)
    u = jax.random.uniform(rng, cdf.shape[:-1] + (1,), jnp.float32) * cdf[..., -1:]
    index = jnp.sum((cdf <= u).astype(jnp.int32), axis=-1)  # first index with cdf > u
    return jnp.minimum(index, cdf.shape[-1] - 1).astype(jnp.int32)
