"""The two light pre-training heads: MLM (tied, at gathered slots) and RTD."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from sas_jax.models.config import ModelConfig
from sas_jax.models.encoder import constrain, dense, gelu, layer_norm
from sas_jax.models.mixed import einsum_f32


def gather_positions(hidden_BxLxH, positions_BxP):
    """hidden[b, positions[b, p]] → [B, P, H]."""
    return jnp.take_along_axis(hidden_BxLxH, positions_BxP[:, :, None], axis=1)


class MlmHead(nn.Module):
    """dense H→E, GELU, LayerNorm(E), logits = t·W_wordᵀ + b (float32)."""

    cfg: ModelConfig
    layer_norm_eps: float

    @nn.compact
    def __call__(self, hidden_BxPxH, word_table_VxE):
        c = self.cfg
        t = dense(c.embedding_size, ("hidden", "embed"), dtype=c.compute_dtype, name="dense")(hidden_BxPxH)
        t = layer_norm(self.layer_norm_eps, "embed", dtype=c.compute_dtype, name="LayerNorm")(gelu(t))
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("vocab",)),
                          (c.vocab_size,), jnp.float32)
        logits = einsum_f32("bpe,ve->bpv", t, word_table_VxE.astype(c.compute_dtype))
        return constrain(logits + bias[None, None, :], ("batch", None, None))


class RtdHead(nn.Module):
    """dense H→H, GELU, dense H→1: one replaced-token logit per position (float32)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, hidden_BxLxH):
        c = self.cfg
        h = gelu(dense(c.hidden_size, ("embed", "hidden"), dtype=c.compute_dtype, name="dense")(hidden_BxLxH))
        logit = dense(1, ("hidden", None), dtype=jnp.float32, name="dense_prediction")(h)
        return logit[..., 0]
