"""`model.pre_layer_norm`: pre-LN layers (x + Attn(LN x), x + FFN(LN x)) and a final LayerNorm.

A documented departure from the paper's post-LN recipe; the default (False) is unchanged.
"""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import erf

from sas_jax.models import ModelConfig
from sas_jax.models.encoder import Encoder, EncoderLayer

jax.config.update("jax_default_matmul_precision", "highest")

CFG = ModelConfig(vocab_size=50, hidden_size=16, embedding_size=16, num_layers=2, num_heads=2, head_dim=8,
                  intermediate_size=32, max_position_embeddings=16, dropout_rate=0.0, attention_dropout_rate=0.0,
                  layer_norm_eps=1e-12)
PRE = dataclasses.replace(CFG, pre_layer_norm=True)


def _inputs():
    rng = np.random.RandomState(0)
    x = rng.normal(size=(2, 6, 16)).astype(np.float32)
    mask = np.ones((2, 6), np.int32)
    mask[1, 4:] = 0
    return x, mask


def _randomised(params, seed=1):
    """Init gives LayerNorm scale 1 / bias 0 and zero dense biases; perturb every leaf so the
    reference checks that each parameter is used where it should be."""
    leaves, tree = jax.tree_util.tree_flatten(nn.meta.unbox(params))
    rng = np.random.RandomState(seed)
    return jax.tree_util.tree_unflatten(
        tree, [np.asarray(v) + 0.1 * rng.normal(size=v.shape).astype(np.float32) for v in leaves])


def _ln(x, p, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _dense(x, p):
    return x @ p["kernel"] + p["bias"]


def _reference_pre_ln_layer(x, mask, p, heads=2, head_dim=8):
    b, l, _ = x.shape
    h = _ln(x, p["attention_LayerNorm"])
    q, k, v = (_dense(h, p[n]).reshape(b, l, heads, head_dim) for n in ("query", "key", "value"))
    s = np.einsum("bqnd,bknd->bnqk", q, k) / np.sqrt(head_dim)
    s = np.where(mask[:, None, None, :] > 0, s, -1e30)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    ctx = np.einsum("bnqk,bknd->bqnd", a, v).reshape(b, l, heads * head_dim)
    x = x + _dense(ctx, p["attention_output"])
    f = _dense(_ln(x, p["output_LayerNorm"]), p["intermediate"])
    f = 0.5 * f * (1.0 + erf(f / np.sqrt(2.0)))
    return x + _dense(f, p["output"])


def test_pre_ln_layer_matches_numpy_reference():
    x, mask = _inputs()
    layer = EncoderLayer(PRE)
    params = _randomised(layer.init(jax.random.key(0), x, mask, True)["params"])
    got = np.asarray(layer.apply({"params": params}, x, mask, True))
    want = _reference_pre_ln_layer(x.astype(np.float64), mask, jax.tree_util.tree_map(np.float64, params))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_pre_ln_differs_from_post_ln_with_the_same_parameters():
    x, mask = _inputs()
    params = nn.meta.unbox(EncoderLayer(CFG).init(jax.random.key(0), x, mask, True)["params"])
    pre_params = nn.meta.unbox(EncoderLayer(PRE).init(jax.random.key(0), x, mask, True)["params"])
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(pre_params)  # same names
    post = np.asarray(EncoderLayer(CFG).apply({"params": params}, x, mask, True))
    pre = np.asarray(EncoderLayer(PRE).apply({"params": params}, x, mask, True))
    assert np.abs(post - pre).max() > 0.1
    # Post-LN output rows are normalised (LayerNorm last, scale 1 / bias 0 at init); pre-LN ones are not.
    np.testing.assert_allclose(post.std(-1), 1.0, rtol=1e-3)
    assert np.abs(pre.std(-1) - 1.0).max() > 0.05


def test_pre_ln_encoder_ends_with_a_final_layer_norm():
    x, mask = _inputs()
    post_params = Encoder(CFG).init(jax.random.key(0), x, mask, deterministic=True)["params"]
    pre_enc = Encoder(PRE)
    pre_params = _randomised(pre_enc.init(jax.random.key(0), x, mask, deterministic=True)["params"])
    assert "final_LayerNorm" in pre_params and "final_LayerNorm" not in post_params
    got = np.asarray(pre_enc.apply({"params": pre_params}, x, mask, deterministic=True))
    p64 = jax.tree_util.tree_map(np.float64, pre_params)
    h = x.astype(np.float64)
    for i in range(PRE.num_layers):
        h = _reference_pre_ln_layer(h, mask, p64[f"layer_{i}"])
    np.testing.assert_allclose(got, _ln(h, p64["final_LayerNorm"]), rtol=1e-4, atol=1e-4)
