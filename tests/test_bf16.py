"""bf16 on the CPU: `model.dtype=bfloat16` computes the encoder in bf16 and keeps everything
that must stay exact in float32 (docs/benchmarks.md, "bf16").

- the train step's jaxpr: parameters and optimizer state float32; every matmul of the
  encoder and the heads' dense layers bf16 x bf16 (backward included: `models/mixed.py`),
  the MLM logits float32; the log-softmax of the MLM loss and the sampler's softmax and
  cumulative sum float32;
- the sampler draws the same law from bf16-rounded logits as from float32 ones;
- a tiny bf16 run's held-out MLM loss stays within `RUN_TOLERANCE` nats of the f32 run's.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sas_jax import losses, train
from sas_jax.data.synthetic import markov_corpus
from sas_jax.models.mixed import jaxpr_equations

# Measured on the CPU at this shape (60 steps): f32 3.0588, bf16 3.0558 nats, |diff| 0.003;
# the bound leaves room for other seeds and XLA versions.
RUN_TOLERANCE = 0.05  # nats


def _trainer(config_factory, dtype, **overrides):
    cfg = config_factory("sas_small", "tiny", **{"model.dtype": dtype, **overrides})
    corpus = markov_corpus(160, cfg.seq_len, cfg.model.vocab_size, seed=0, active_tokens=24)
    return train.Trainer(cfg, None, corpus=corpus, devices=jax.devices()[:1])


def test_bf16_step_dtypes(config_factory):
    t = _trainer(config_factory, "bfloat16")
    vocab = t.vocab
    for leaf in jax.tree_util.tree_leaves((t.state.params, t.state.opt_state)):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32, leaf.dtype
    batch, _ = t.make_batch(0)
    closed = jax.make_jaxpr(t.step_fn)(t.state, batch, t.step_key)
    eqns = list(jaxpr_equations(closed.jaxpr))
    dots = [(w, e) for w, e in eqns if e.primitive.name == "dot_general"]
    encoder = [(w, e) for w, e in dots if "encoder/" in w]
    # 2 layers x 8 matmuls, forward + 2 backward each (a custom_vjp's forward is listed twice)
    assert len(encoder) >= 3 * 2 * 8
    for w, e in encoder:
        assert [v.aval.dtype for v in e.invars] == [jnp.bfloat16] * 2, (w, e)
    for w, e in dots:
        if "dense_prediction" in w:  # the RTD logit: [H] -> 1 in float32 by design
            continue
        assert [v.aval.dtype for v in e.invars] == [jnp.bfloat16] * 2, (w, e)
    # The MLM logits come out float32; the loss's log-softmax and the sampler's softmax and
    # cumulative sum over V run in float32.
    logits = [e for w, e in dots if e.outvars[0].aval.shape[-1:] == (vocab,) and "transpose" not in w]
    assert logits and all(e.outvars[0].aval.dtype == jnp.float32 for e in logits)
    over_vocab = [e for _, e in eqns if e.primitive.name in ("exp", "log", "reduce_max", "cumsum", "sub")
                  and any(v.aval.shape[-1:] == (vocab,) for v in e.invars if hasattr(v, "aval"))]
    assert {e.primitive.name for e in over_vocab} >= {"exp", "reduce_max", "cumsum"}
    for e in over_vocab:
        assert all(v.aval.dtype == jnp.float32 for v in e.invars if hasattr(v, "aval")
                   and v.aval.shape[-1:] == (vocab,)), e


def test_sampler_law_from_bf16_logits():
    """One logit row repeated 20,000 times: the draws' histogram against softmax(logits), for
    float32 logits and for the same logits rounded to bf16 (the sampler works in float32)."""
    v, n = 512, 20_000
    row = jax.random.normal(jax.random.key(0), (v,), jnp.float32) * 3.0
    logits = jnp.broadcast_to(row, (n // 20, 20, v))
    p = np.asarray(jax.nn.softmax(row))
    for dtype in (jnp.float32, jnp.bfloat16):
        draws = np.asarray(losses.sample_tokens(jax.random.key(1), logits.astype(dtype), 1.0)).ravel()
        hist = np.bincount(draws, minlength=v) / draws.size
        tv = 0.5 * np.abs(hist - p).sum()
        assert tv < 0.06, (dtype, tv)  # sampling noise alone: ~0.04 at n = 20,000, V = 512
    same = losses.sample_tokens(jax.random.key(1), logits[:8], 1.0)
    rounded = losses.sample_tokens(jax.random.key(1), logits[:8].astype(jnp.bfloat16), 1.0)
    assert float(jnp.mean(same == rounded)) > 0.9  # same uniforms: bf16 rounding moves few draws


@pytest.mark.slow
def test_bf16_run_tracks_f32(config_factory):
    steps = 60
    out = {}
    for dtype in ("float32", "bfloat16"):
        t = _trainer(config_factory, dtype, **{"num_train_steps": steps, "data.eval_rows": 32,
                                               "log.eval_every_steps": 0, "opt.learning_rate": 3e-3})
        step = 0
        with jax.transfer_guard("disallow"):
            while step < steps:
                end = min((t.order.epoch_of(step) + 1) * t.order.steps_per_epoch, steps)
                step, _ = t.train_until(step, end)
        out[dtype] = t.eval_history[steps]["mlm_loss"]
    assert abs(out["bfloat16"] - out["float32"]) < RUN_TOLERANCE, out
    print("held-out mlm loss", out)
