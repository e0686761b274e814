"""DeBERTa (v2) disentangled attention: relative-position indices and score terms.

The encoder layer stays the one in `encoder.py`; it projects the shared relative
table with its own query/key kernels (or `pos_*_proj` without key sharing) and
calls `relative_bias`, whose output goes to `attention.dot_product_attention`
as an additive, already scaled score bias:

    A[q, k] = (Q_q·K_k + Q_q·Kr_j(q,k) + K_k·Qr_j(q,k)) / √(d·(1 + #terms))

with one gather index `j(q, k) = clamp(bucket(q − k) + S, 0, 2S − 1)` for c2p and
p2c alike (as Hugging Face and the original code do).

The relative table is projected once per layer and step, not per example, and
only its rows that some (q, k) pair reaches are used: at L = 128 with S = 256
that is 255 of 512 rows. The result is exact: the other rows never enter a
score.
"""
from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np

from sas_jax.models.mixed import einsum_f32


def log_bucket(rel_pos, bucket_size: int, max_position: int):
    """Hugging Face's `make_log_bucket_position`, on integer numpy arrays.

    |r| <= mid keeps r; beyond, sign(r)·(mid + ceil(log(|r|/mid)/log((M−1)/mid)·(mid−1))).
    Evaluated in float32 in HF's operation order, so the integer buckets match
    HF's (checked in the tests against `make_log_bucket_position`).
    """
    rel_pos = np.asarray(rel_pos, np.int64)
    mid = bucket_size // 2
    sign = np.sign(rel_pos)
    abs_pos = np.where((rel_pos < mid) & (rel_pos > -mid), mid - 1, np.abs(rel_pos))
    ratio = abs_pos.astype(np.float32) / np.float32(mid)
    denom = np.log(np.float32((max_position - 1) / mid))
    log_pos = np.ceil(np.log(ratio) / denom * np.float32(mid - 1)) + np.float32(mid)
    return np.where(abs_pos <= mid, rel_pos, log_pos * sign).astype(np.int64)


@functools.lru_cache(maxsize=32)
def relative_index(length: int, span: int, buckets: int, max_position: int):
    """(index [L, L] int32, lo, hi): rows lo..hi of the 2S table are the ones used.

    `index[q, k] = clamp(bucket(q − k) + S, 0, 2S − 1) − lo`, so it points into
    the sliced table `table[lo:hi + 1]`. Built on the host at trace time.
    """
    pos = np.arange(length)
    rel = pos[:, None] - pos[None, :]
    if buckets > 0 and max_position > 0:
        rel = log_bucket(rel, buckets, max_position)
    full = np.clip(rel + span, 0, 2 * span - 1)
    lo, hi = int(full.min()), int(full.max())
    index = (full - lo).astype(np.int32)
    index.setflags(write=False)
    return index, lo, hi


def relative_index_for(cfg, length: int):
    return relative_index(length, cfg.relative_span, cfg.position_buckets, cfg.max_relative)


def score_scale(cfg, head_dim: int) -> float:
    """1/√(d·(1 + number of relative terms)): √(3d) with c2p and p2c."""
    return 1.0 / math.sqrt(head_dim * (1 + len(cfg.pos_att_terms)))


def relative_bias(q_BxLxNxD, k_BxLxNxD, pos_query_WxNxD, pos_key_WxNxD, index_LxL, scale: float):
    """(c2p + p2c)·scale as a float32 [B, N, L, L] score bias.

    c2p[q, k] = Q_q · Kr[j(q, k)]   (needs `pos_key_WxNxD`, else None)
    p2c[q, k] = K_k · Qr[j(q, k)]   (needs `pos_query_WxNxD`, else None)

    The products with the (sliced) table are formed once, [B, N, L, W], then
    gathered with the static index; p2c gathers along keys with jᵀ and swaps the
    last two axes, as HF does.
    """
    index = jnp.asarray(index_LxL)
    bias = None
    if pos_key_WxNxD is not None:
        c2p = einsum_f32("bqnd,wnd->bnqw", q_BxLxNxD, pos_key_WxNxD.astype(q_BxLxNxD.dtype))
        bias = jnp.take_along_axis(c2p, index[None, None], axis=-1)
    if pos_query_WxNxD is not None:
        p2c = einsum_f32("bknd,wnd->bnkw", k_BxLxNxD, pos_query_WxNxD.astype(k_BxLxNxD.dtype))
        p2c = jnp.swapaxes(jnp.take_along_axis(p2c, index.T[None, None], axis=-1), -1, -2)
        bias = p2c if bias is None else bias + p2c
    return None if bias is None else bias * jnp.float32(scale)
