import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sas_jax import optim


def opt_cfg(**kw):
    c = ml_collections.ConfigDict(dict(learning_rate=1e-3, warmup_steps=10, weight_decay=0.01, b1=0.9,
                                       b2=0.999, eps=1e-6, grad_clip_norm=1.0))
    c.update(kw)
    return c


def test_lambda_over_five_epochs_is_piecewise_constant():
    kw = dict(schedule="epochwise", start=50.0, end=200.0, steps_per_epoch=100, num_epochs=5)
    per_epoch = [float(optim.rtd_weight(jnp.int32(e * 100 + 37), **kw)) for e in range(5)]
    assert per_epoch == [50.0, 87.5, 125.0, 162.5, 200.0]
    assert float(optim.rtd_weight(jnp.int32(199), **kw)) == 87.5  # not interpolated within an epoch
    assert float(optim.rtd_weight(jnp.int32(200), **kw)) == 125.0
    assert float(optim.rtd_weight(jnp.int32(10_000), **kw)) == 200.0
    assert float(optim.rtd_weight(jnp.int32(450), **{**kw, "schedule": "constant"})) == 50.0
    with pytest.raises(ValueError, match="lambda_schedule"):
        optim.rtd_weight(jnp.int32(0), **{**kw, "schedule": "cosine"})


def test_learning_rate_warmup_then_linear_decay_to_zero():
    s = optim.learning_rate_schedule(opt_cfg(), 110)
    assert float(s(0)) == 0.0  # the first update uses lr 0
    np.testing.assert_allclose(float(s(5)), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(float(s(10)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(s(60)), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(float(s(110)), 0.0, atol=1e-12)


def test_weight_decay_skips_biases_and_layernorm():
    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))},
              "LayerNorm": {"scale": jnp.ones((2,)), "bias": jnp.ones((2,))},
              "embed": {"embedding": jnp.ones((3, 2))}, "mlm_head": {"bias": jnp.ones((3,))},
              "attn": {"bias": jnp.ones((2, 2))}}
    tx = optim.make_optimizer(opt_cfg(warmup_steps=0, learning_rate=0.1, weight_decay=0.5), 100)
    state = tx.init(params)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, state, params)
    decayed = jax.tree_util.tree_map(lambda u: float(jnp.abs(u).max()), updates)
    assert decayed["dense"]["kernel"] == pytest.approx(0.05) and decayed["embed"]["embedding"] == pytest.approx(0.05)
    for path in (("dense", "bias"), ("LayerNorm", "scale"), ("LayerNorm", "bias"), ("mlm_head", "bias"),
                 ("attn", "bias")):
        assert decayed[path[0]][path[1]] == 0.0, path


def test_global_norm_clipping_precedes_adam():
    # A large eps makes Adam sensitive to the gradient's scale, so clipping shows.
    p = {"w": jnp.zeros((4,))}
    g = {"w": jnp.array([30.0, 40.0, 0.0, 0.0])}  # global norm 50
    with_clip = optim.make_optimizer(opt_cfg(warmup_steps=0, weight_decay=0.0, eps=1.0), 10)
    no_clip = optim.make_optimizer(opt_cfg(warmup_steps=0, weight_decay=0.0, eps=1.0, grad_clip_norm=0.0), 10)
    u_clip, _ = with_clip.update(g, with_clip.init(p), p)
    u_manual, _ = no_clip.update({"w": g["w"] / 50.0}, no_clip.init(p), p)
    u_raw, _ = no_clip.update(g, no_clip.init(p), p)
    np.testing.assert_allclose(u_clip["w"], u_manual["w"], rtol=1e-6)
    assert not np.allclose(u_clip["w"], u_raw["w"])
