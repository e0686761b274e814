"""Numerical parity with Hugging Face PyTorch (recipe: docs/reference.md §11).

Random-init HF models from tiny configs, float32, dropout 0, eval mode; their
weights go through `sas_jax.convert`, both sides read identical inputs (B = 2,
ids >= 5, row 1 padded at the tail, token types 1 on the second half for
BERT/ELECTRA) at L = 40 and L = 300 (log buckets), and hidden states and head
logits must agree on valid tokens: atol 1e-5 at the default init (0.02), atol
5e-5 / rtol 1e-4 at the stressed init (0.3). MLM logits are compared at the
gathered slots, as our head only runs there.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sas_jax.convert import import_electra_pair, import_hf  # noqa: E402
from sas_jax.models import ElectraModel, PretrainingModel  # noqa: E402
from sas_jax.models import encoder as encoder_module  # noqa: E402
from sas_jax.models import heads as heads_module  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
torch.set_num_threads(2)

V = 1000
TOL = {0.02: dict(atol=1e-5, rtol=0.0), 0.3: dict(atol=5e-5, rtol=1e-4)}
CASES = [(40, 0.02), (40, 0.3), (300, 0.02), (300, 0.3)]
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def make_inputs(length, seed=0):
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, V, size=(2, length))
    mask = np.ones((2, length), np.int64)
    n_valid = length - length // 3
    ids[1, n_valid:], mask[1, n_valid:] = 0, 0
    types = np.zeros((2, length), np.int64)
    types[:, length // 2:] = 1
    slots = np.stack([rng.choice(length, 6, replace=False), rng.choice(n_valid, 6, replace=False)])
    return ids, mask, types, slots


def compare(name, ours, theirs, tol, valid=None):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if valid is not None:
        ours, theirs = ours[valid], theirs[valid]
    diff = float(np.abs(ours - theirs).max())
    print(f"{name}: max abs diff {diff:.2e}")
    np.testing.assert_allclose(ours, theirs, err_msg=name, **tol)
    return diff


def torch_run(model, ids, mask, types=None):
    kw = {} if types is None else {"token_type_ids": torch.tensor(types)}
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), output_hidden_states=True, **kw)


# ------------------------------------------------------------------ DebertaV2 (DA)


def deberta_config(init, **kw):
    base = dict(vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                max_position_embeddings=512, type_vocab_size=0, position_biased_input=False,
                relative_attention=True, pos_att_type=["p2c", "c2p"], share_att_key=True, position_buckets=256,
                norm_rel_ebd="layer_norm", layer_norm_eps=1e-7, hidden_act="gelu", initializer_range=init,
                **NO_DROPOUT)
    return transformers.DebertaV2Config(**{**base, **kw})


@functools.lru_cache(maxsize=None)
def deberta_mlm(init):
    torch.manual_seed(0)
    return transformers.DebertaV2ForMaskedLM(deberta_config(init)).eval()


@pytest.mark.parametrize("length,init", CASES)
def test_deberta_v2_mlm(length, init):
    hf = deberta_mlm(init)
    ids, mask, _, slots = make_inputs(length)
    ref = torch_run(hf, ids, mask)
    cfg, params = import_hf(hf.state_dict(), hf_config=hf.config, architecture="DebertaV2ForMaskedLM")
    assert cfg.disentangled and cfg.layer_norm_eps == 1e-7 and cfg.mlm_layer_norm_eps == 1e-7
    out = PretrainingModel(cfg, use_rtd=False).apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask),
                                                     jnp.asarray(slots))
    valid = mask.astype(bool)
    compare(f"deberta L={length} init={init} hidden", out["hidden"], ref.hidden_states[-1].numpy(), TOL[init], valid)
    compare(f"deberta L={length} init={init} mlm", out["mlm_logits"],
            np.take_along_axis(ref.logits.numpy(), slots[:, :, None], 1), TOL[init])


@pytest.mark.parametrize("variant", ["unshared_keys", "no_buckets", "embed_proj_positions_types"])
def test_deberta_v2_variants(variant, tmp_path):
    """L = 300, stressed init; the last variant goes through a saved DebertaV2Model folder."""
    kw = {"unshared_keys": dict(share_att_key=False),
          "no_buckets": dict(position_buckets=-1, max_relative_positions=128),
          "embed_proj_positions_types": dict(embedding_size=32, position_biased_input=True, type_vocab_size=2)}
    torch.manual_seed(0)
    hf = transformers.DebertaV2Model(deberta_config(0.3, **kw[variant])).eval()
    ids, mask, types, _ = make_inputs(300)
    ref = torch_run(hf, ids, mask, types)
    hf.save_pretrained(tmp_path)
    cfg, params = import_hf(str(tmp_path))
    out = PretrainingModel(cfg, use_mlm=False, use_rtd=False).apply(
        {"params": params}, jnp.asarray(ids), jnp.asarray(mask), None, jnp.asarray(types))
    compare(f"deberta {variant} hidden", out["hidden"], ref.last_hidden_state.numpy(), TOL[0.3], mask.astype(bool))


# ------------------------------------------------------------------ ELECTRA pair


@functools.lru_cache(maxsize=None)
def electra_pair(init):
    torch.manual_seed(0)
    kw = dict(vocab_size=V, embedding_size=32, num_hidden_layers=2, max_position_embeddings=512,
              initializer_range=init, **NO_DROPOUT)
    disc = transformers.ElectraForPreTraining(transformers.ElectraConfig(
        hidden_size=64, num_attention_heads=4, intermediate_size=256, **kw)).eval()
    gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(
        hidden_size=16, num_attention_heads=1, intermediate_size=64, **kw)).eval()
    with torch.no_grad():  # one shared embedding module reproduces both networks
        gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
    return gen, disc


def run_electra(length, init):
    gen, disc = electra_pair(init)
    ids, mask, types, slots = make_inputs(length)
    ref_d, ref_g = torch_run(disc, ids, mask, types), torch_run(gen, ids, mask, types)
    cfg, params = import_electra_pair(gen.state_dict(), disc.state_dict(), generator_hf_config=gen.config,
                                      discriminator_hf_config=disc.config)
    model, v = ElectraModel(cfg), {"params": params}
    args = (jnp.asarray(ids), jnp.asarray(mask))
    t = jnp.asarray(types)
    ours = {
        "disc hidden": model.apply(v, *args, t, method="discriminator_hidden"),
        "disc rtd": model.apply(v, *args, t, method="discriminator_logits"),
        "gen hidden": model.apply(v, *args, t, method="generator_hidden"),
        "gen mlm": model.apply(v, *args, jnp.asarray(slots), t, method="generator_logits"),
    }
    theirs = {
        "disc hidden": ref_d.hidden_states[-1].numpy(),
        "disc rtd": ref_d.logits.numpy(),
        "gen hidden": ref_g.hidden_states[-1].numpy(),
        "gen mlm": np.take_along_axis(ref_g.logits.numpy(), slots[:, :, None], 1),
    }
    return ours, theirs, mask.astype(bool)


@pytest.mark.parametrize("length,init", CASES)
def test_electra_pair(length, init):
    ours, theirs, valid = run_electra(length, init)
    for name in ours:
        compare(f"electra L={length} init={init} {name}", ours[name], theirs[name], TOL[init],
                None if name == "gen mlm" else valid)


def test_tanh_gelu_breaks_parity(monkeypatch):
    """Negative control: the approximate GELU must be caught at the stressed init."""
    tanh_gelu = lambda x: jax.nn.gelu(x, approximate=True)  # noqa: E731
    monkeypatch.setattr(encoder_module, "gelu", tanh_gelu)
    monkeypatch.setattr(heads_module, "gelu", tanh_gelu)
    ours, theirs, valid = run_electra(40, 0.3)
    diff = float(np.abs(np.asarray(ours["disc hidden"])[valid] - theirs["disc hidden"][valid]).max())
    print(f"electra with tanh GELU: disc hidden max abs diff {diff:.2e}")
    with pytest.raises(AssertionError):
        compare("electra tanh GELU disc hidden", ours["disc hidden"], theirs["disc hidden"], TOL[0.3], valid)


def test_untied_output_weights_are_refused():
    gen, _ = electra_pair(0.02)
    sd = {k: v.clone() for k, v in gen.state_dict().items()}
    sd["generator_lm_head.weight"] += 1.0
    with pytest.raises(ValueError, match="untied"):
        import_hf(sd, hf_config=gen.config, architecture="ElectraForMaskedLM")


# ------------------------------------------------------------------ BERT


@functools.lru_cache(maxsize=None)
def bert_mlm(init):
    torch.manual_seed(0)
    return transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
        initializer_range=init, **NO_DROPOUT)).eval()


@pytest.mark.parametrize("length,init", CASES)
def test_bert_mlm(length, init):
    hf = bert_mlm(init)
    ids, mask, types, slots = make_inputs(length)
    ref = torch_run(hf, ids, mask, types)
    cfg, params = import_hf(hf.state_dict(), hf_config=hf.config, architecture="BertForMaskedLM")
    assert cfg.mlm_layer_norm_eps == 1e-12 and cfg.embedding_size == cfg.hidden_size
    out = PretrainingModel(cfg, use_rtd=False).apply(
        {"params": params}, *(jnp.asarray(x) for x in (ids, mask, slots, types)))
    compare(f"bert L={length} init={init} hidden", out["hidden"], ref.hidden_states[-1].numpy(), TOL[init],
            mask.astype(bool))
    compare(f"bert L={length} init={init} mlm", out["mlm_logits"],
            np.take_along_axis(ref.logits.numpy(), slots[:, :, None], 1), TOL[init])
