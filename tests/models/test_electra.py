"""ELECTRA pair model: generator sizing, shared embeddings, methods, gradient flow (absolute attention;
the disentangled pair, ELECTRA-DA, is tests/models/test_electra_da.py)."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sas_jax.models import ElectraModel, ModelConfig, generator_config

jax.config.update("jax_default_matmul_precision", "highest")

CFG = ModelConfig(vocab_size=100, hidden_size=64, embedding_size=32, num_layers=1, num_heads=4, head_dim=16,
                  intermediate_size=256, max_position_embeddings=64, dropout_rate=0.0, attention_dropout_rate=0.0)


@pytest.mark.parametrize("hidden,emb,heads,ratio,want", [
    (256, 128, 4, 0.25, (64, 1, 64, 256)),  # ELECTRA-Small, paper setting
    (256, 128, 4, 1.0, (256, 4, 64, 1024)),  # public Small++ generator
    (768, 768, 12, 1 / 3, (256, 4, 64, 1024)),  # Base
    (64, 32, 4, 0.25, (16, 1, 16, 64)),  # the parity-test size
])
def test_generator_sizing(hidden, emb, heads, ratio, want):
    cfg = dataclasses.replace(CFG, hidden_size=hidden, embedding_size=emb, num_heads=heads,
                              head_dim=hidden // heads, intermediate_size=4 * hidden, generator_ratio=ratio)
    g = generator_config(cfg)
    assert (g.hidden_size, g.num_heads, g.head_dim, g.intermediate_size) == want
    assert (g.embedding_size, g.num_layers, g.vocab_size) == (emb, cfg.num_layers, cfg.vocab_size)


def _inputs():
    rng = np.random.RandomState(0)
    ids = jnp.asarray(rng.randint(5, 100, (2, 16)))
    mask = jnp.ones_like(ids).at[1, 12:].set(0)
    return ids, mask, jnp.asarray([[1, 3, 5], [2, 4, 6]])


@pytest.fixture(scope="module")
def model_and_params():
    ids, mask, pos = _inputs()
    model = ElectraModel(CFG)
    return model, nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), ids, mask, pos)["params"])


def test_shared_embeddings_own_projections(model_and_params):
    _, p = model_and_params
    assert set(p) == {"embeddings", "generator", "generator_head", "discriminator", "discriminator_head"}
    assert p["embeddings"]["word_embeddings"]["embedding"].shape == (100, 32)
    assert p["generator"]["embeddings_project"]["kernel"].shape == (32, 16)
    assert p["discriminator"]["embeddings_project"]["kernel"].shape == (32, 64)
    assert p["generator_head"]["dense"]["kernel"].shape == (16, 32)
    assert p["generator_head"]["bias"].shape == (100,)
    assert "word_embeddings" not in p["generator_head"]  # tied to the shared table


def test_methods_and_call_agree(model_and_params):
    model, p = model_and_params
    ids, mask, pos = _inputs()
    v = {"params": p}
    gen = model.apply(v, ids, mask, pos, method="generator_logits")
    disc = model.apply(v, ids, mask, method=ElectraModel.discriminator_logits)
    assert gen.shape == (2, 3, 100) and disc.shape == (2, 16)
    out = model.apply(v, ids, mask, pos)
    np.testing.assert_allclose(np.asarray(out["mlm_logits"]), np.asarray(gen), atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["rtd_logits"]), np.asarray(disc), atol=1e-6)


def test_gradients_flow_as_electra(model_and_params):
    """Both losses reach the shared embeddings; the RTD loss never reaches the generator."""
    model, p = model_and_params
    ids, mask, pos = _inputs()

    def corrupt(logits_BxPxV):  # argmax "sample" scattered into the slots
        fake = jnp.argmax(logits_BxPxV, -1).astype(ids.dtype)
        return jax.vmap(lambda row, slots, tok: row.at[slots].set(tok))(ids, pos, fake)

    def losses(params):
        out = model.apply({"params": params}, ids, mask, pos, corrupt_fn=corrupt)
        return out["mlm_logits"].mean(), out["rtd_logits"].mean()

    g_mlm, g_rtd = jax.jit(lambda q: (jax.grad(lambda r: losses(r)[0])(q),
                                      jax.grad(lambda r: losses(r)[1])(q)))(p)
    norm = lambda t: float(sum(np.abs(np.asarray(x)).sum() for x in jax.tree_util.tree_leaves(t)))
    assert norm(g_mlm["embeddings"]) > 0 and norm(g_rtd["embeddings"]) > 0
    assert norm(g_mlm["generator"]) > 0 and norm(g_mlm["discriminator"]) == 0
    assert norm(g_rtd["generator"]) == 0 and norm(g_rtd["generator_head"]) == 0
    assert norm(g_rtd["discriminator"]) > 0
