"""Export → stock `from_pretrained` → logits reproduce ours; export → import is exact."""
import dataclasses
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sas_jax.convert import (  # noqa: E402
    export_electra_pair, export_hf, export_sas, import_electra_pair, import_hf, import_sas, to_hf_config)
from sas_jax.models import ElectraModel, ModelConfig, PretrainingModel  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
torch.set_num_threads(2)

V, L = 1000, 40
TOL = dict(atol=1e-5, rtol=1e-4)
# SAS-Small shape at toy size: E = H, 4 heads, types 2, eps 1e-12 / MLM head 1e-5.
SAS = ModelConfig(vocab_size=V, hidden_size=64, embedding_size=64, num_layers=2, num_heads=4, head_dim=16,
                  intermediate_size=256, max_position_embeddings=128, dropout_rate=0.0, attention_dropout_rate=0.0)
SASDA = dataclasses.replace(SAS, attention_type="disentangled", position_biased_input=False, type_vocab_size=0,
                            layer_norm_eps=1e-7, max_position_embeddings=512)


def inputs():
    rng = np.random.RandomState(1)
    ids = rng.randint(5, V, (2, L))
    mask = np.ones_like(ids)
    ids[1, 28:], mask[1, 28:] = 0, 0
    return ids, mask, np.stack([rng.choice(28, 5, replace=False)] * 2)


def random_params(model, ids, mask, slots):
    """Init, then N(0, 0.1) on every tensor, so heads, biases and LayerNorms all matter."""
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), jnp.asarray(ids), jnp.asarray(mask),
                                               jnp.asarray(slots))["params"])
    rng = np.random.RandomState(1)  # numpy: one jitted normal per shape would cost seconds
    return jax.tree_util.tree_map(lambda x: (np.asarray(x) + 0.1 * rng.randn(*x.shape)).astype(np.float32), params)


def load(cls, path):
    model, info = cls.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def run(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), output_hidden_states=True)


def close(name, ours, theirs, valid=None):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if valid is not None:
        ours, theirs = ours[valid], theirs[valid]
    print(f"{name}: max abs diff {float(np.abs(ours - theirs).max()):.2e}")
    np.testing.assert_allclose(ours, theirs, err_msg=name, **TOL)


def assert_same_params(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("cfg", [SAS, SASDA], ids=["sas", "sasda"])
def test_sas_export_roundtrip(cfg, tmp_path):
    ids, mask, slots = inputs()
    model = PretrainingModel(cfg)
    params = random_params(model, ids, mask, slots)
    args = (jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(slots))
    ours = model.apply({"params": params}, *args)
    # HF heads take the model's eps; the same params with that eps are what HF must reproduce.
    hf_eps = PretrainingModel(dataclasses.replace(cfg, mlm_layer_norm_eps=cfg.layer_norm_eps)).apply(
        {"params": params}, *args)
    assert sorted(export_sas(params, cfg, str(tmp_path / "skip"))) == (  # default: the exact part only
        ["encoder"] if cfg.disentangled else ["discriminator"])
    paths = export_sas(params, cfg, str(tmp_path), mlm_eps_gap="allow")
    assert json.load(open(f"{paths['mlm' if cfg.disentangled else 'generator']}/config.json"))["sas_jax"][
        "mlm_eps_gap"]["max_abs_logit"] > 0
    valid = mask.astype(bool)  # pad rows differ by design (HF DeBERTa: uniform softmax on zeroed rows)
    if cfg.disentangled:
        hf_mlm = run(load(transformers.DebertaV2ForMaskedLM, paths["mlm"]), ids, mask)
        encoder_only = transformers.AutoModel.from_pretrained(paths["mlm"]).eval()  # drops the MLM head
        close("disentangled export, AutoModel hidden", ours["hidden"],
              run(encoder_only, ids, mask).last_hidden_state.numpy(), valid)
    else:
        hf_disc = run(load(transformers.ElectraForPreTraining, paths["discriminator"]), ids, mask)
        hf_mlm = run(load(transformers.ElectraForMaskedLM, paths["generator"]), ids, mask)
        close(f"{cfg.attention_type} export rtd", ours["rtd_logits"], hf_disc.logits.numpy(), valid)
        close(f"{cfg.attention_type} export disc hidden", ours["hidden"], hf_disc.hidden_states[-1].numpy(), valid)
    close(f"{cfg.attention_type} export hidden", ours["hidden"], hf_mlm.hidden_states[-1].numpy(), valid)
    gathered = np.take_along_axis(hf_mlm.logits.numpy(), slots[:, :, None], 1)
    close(f"{cfg.attention_type} export mlm (HF eps)", hf_eps["mlm_logits"], gathered)
    eps_gap = float(np.abs(np.asarray(ours["mlm_logits"]) - gathered).max())
    print(f"{cfg.attention_type} export mlm, our 1e-5 head vs HF: max abs diff {eps_gap:.2e}")
    assert eps_gap < 1e-3  # only the head LayerNorm eps differs

    cfg_back, params_back = import_sas(str(tmp_path))
    assert cfg_back == cfg  # incl. mlm_layer_norm_eps, kept under config.json "sas_jax"
    assert_same_params(params_back, params)


def test_electra_pair_export_roundtrip(tmp_path):
    cfg = dataclasses.replace(SAS, embedding_size=32, type_vocab_size=2)
    ids, mask, slots = inputs()
    types = np.zeros_like(ids)
    types[:, L // 2:] = 1
    model = ElectraModel(cfg)
    params = random_params(model, ids, mask, slots)
    v, args, t = {"params": params}, (jnp.asarray(ids), jnp.asarray(mask)), jnp.asarray(types)
    paths = export_electra_pair(params, cfg, str(tmp_path))
    gen = load(transformers.ElectraForMaskedLM, paths["generator"])
    disc = load(transformers.ElectraForPreTraining, paths["discriminator"])
    assert gen.config.hidden_size == 16 and gen.config.num_attention_heads == 1
    with torch.no_grad():
        g = gen(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
        d = disc(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    valid = mask.astype(bool)
    close("electra pair export rtd", model.apply(v, *args, t, method="discriminator_logits"), d.logits.numpy(), valid)
    close("electra pair export mlm", model.apply(v, *args, jnp.asarray(slots), t, method="generator_logits"),
          np.take_along_axis(g.logits.numpy(), slots[:, :, None], 1))
    cfg_back, params_back = import_electra_pair(paths["generator"], paths["discriminator"])
    assert cfg_back == cfg
    assert_same_params(params_back, params)


@pytest.mark.parametrize("sharing", ["shared", "gdes"])
def test_electra_da_pair_export_roundtrip(sharing, tmp_path):
    """ELECTRA-DA → DebertaV2ForMaskedLM (generator) + DebertaV2Model (discriminator): stock HF
    reproduces both networks at 1e-5; with gdes the discriminator's table is E_G + E_delta."""
    cfg = dataclasses.replace(SASDA, embedding_size=32, embedding_sharing=sharing)  # both networks project
    ids, mask, slots = inputs()
    model = ElectraModel(cfg)
    params = random_params(model, ids, mask, slots)  # E_delta != 0 with gdes
    v, args = {"params": params}, (jnp.asarray(ids), jnp.asarray(mask))
    paths = export_electra_pair(params, cfg, str(tmp_path))
    gen = load(transformers.DebertaV2ForMaskedLM, paths["generator"])
    disc = load(transformers.DebertaV2Model, paths["discriminator"])
    assert (gen.config.hidden_size, gen.config.num_attention_heads, gen.config.intermediate_size) == (16, 1, 64)
    assert gen.config.embedding_size == disc.config.embedding_size == 32
    word = params["embeddings"]["word_embeddings"]["embedding"]
    disc_word = disc.embeddings.word_embeddings.weight.detach().numpy()
    np.testing.assert_array_equal(gen.deberta.embeddings.word_embeddings.weight.detach().numpy(), word)
    np.testing.assert_array_equal(disc_word, word + params["discriminator_word_delta"] if sharing == "gdes" else word)
    valid = mask.astype(bool)
    close(f"electra-da {sharing} export disc hidden", model.apply(v, *args, method="discriminator_hidden"),
          run(disc, ids, mask).last_hidden_state.numpy(), valid)
    close(f"electra-da {sharing} export mlm", model.apply(v, *args, jnp.asarray(slots), method="generator_logits"),
          np.take_along_axis(run(gen, ids, mask).logits.numpy(), slots[:, :, None], 1))
    cfg_back, params_back = import_electra_pair(paths["generator"], paths["discriminator"])
    assert cfg_back == cfg  # embedding_sharing kept under config.json "sas_jax"
    if sharing == "gdes":  # E_delta comes back as (E_G + E_delta) − E_G: within a rounding of the table
        np.testing.assert_allclose(params_back.pop("discriminator_word_delta"),
                                   params.pop("discriminator_word_delta"), atol=1e-7)
    assert_same_params(params_back, params)
    # The discriminator's RTD head travels in the sidecar, as for SASDA exports.
    _, disc_params = import_hf(paths["discriminator"])
    np.testing.assert_array_equal(disc_params["rtd_head"]["dense"]["kernel"],
                                  params["discriminator_head"]["dense"]["kernel"])


def test_bert_export_with_tokenizer(tmp_path):
    cfg = dataclasses.replace(SAS, mlm_layer_norm_eps=1e-12)
    ids, mask, slots = inputs()
    model = PretrainingModel(cfg, use_rtd=False)
    params = random_params(model, ids, mask, slots)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(V - 5)]))
    out = export_hf(params, cfg, str(tmp_path / "bert"), "BertForMaskedLM", tokenizer=str(vocab))
    hf = run(load(transformers.BertForMaskedLM, out), ids, mask)
    ours = model.apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(slots))
    close("bert export mlm", ours["mlm_logits"], np.take_along_axis(hf.logits.numpy(), slots[:, :, None], 1))
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert tok.convert_tokens_to_ids(["[MASK]", "w7"]) == [4, 12]
    cfg_back, params_back = import_hf(out)
    assert cfg_back == cfg
    assert_same_params(params_back, params)


def test_export_refuses_what_hf_cannot_hold():
    with pytest.raises(ValueError, match="disentangled"):
        to_hf_config(SASDA, "ElectraForPreTraining")
    with pytest.raises(ValueError, match="embedding_size"):
        to_hf_config(dataclasses.replace(SAS, embedding_size=32), "BertForMaskedLM")
    with pytest.raises(ValueError, match="hidden_size"):
        to_hf_config(dataclasses.replace(SAS, head_dim=8), "ElectraForPreTraining")
    d = to_hf_config(SASDA, "DebertaV2ForMaskedLM")
    assert d["share_att_key"] is True and d["position_buckets"] == 256 and d["norm_rel_ebd"] == "layer_norm"
    assert sorted(d["pos_att_type"]) == ["c2p", "p2c"] and json.loads(json.dumps(d)) == d
