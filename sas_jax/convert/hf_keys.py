"""The one table between our parameter paths and Hugging Face `state_dict` keys.

Every entry is (our path, HF key, transpose). Our dense kernels are [in, out]
(attention projections included: [H, heads·d], heads in contiguous blocks), so
every Linear maps as `kernel = Wᵀ`; embeddings and LayerNorm vectors copy
(`scale` ↔ `weight`). Tied HF keys (the decoder weight = the word table, BERT's
decoder bias = `cls.predictions.bias`) have no parameter of ours: `TIED` says
what they equal.
"""
from __future__ import annotations

import dataclasses

from sas_jax.models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class Family:
    architecture: str  # the HF class name, as in config.json "architectures"
    model_type: str  # electra | bert | deberta-v2
    prefix: str  # base-model prefix of the keys ("" for the bare encoder classes)
    head: str | None  # rtd | generator | cls | None


FAMILIES = {f.architecture: f for f in (
    Family("ElectraForPreTraining", "electra", "electra.", "rtd"),
    Family("ElectraForMaskedLM", "electra", "electra.", "generator"),
    Family("ElectraModel", "electra", "", None),
    Family("BertForMaskedLM", "bert", "bert.", "cls"),
    Family("BertModel", "bert", "", None),
    Family("DebertaV2ForMaskedLM", "deberta-v2", "deberta.", "cls"),
    Family("DebertaV2Model", "deberta-v2", "", None),
)}

# HF keys that are tied to another tensor, per head kind: key -> what it equals.
TIED = {
    "generator": {"generator_lm_head.weight": "WORD"},
    "cls": {"cls.predictions.decoder.weight": "WORD",
            "cls.predictions.decoder.bias": "cls.predictions.bias"},
}

# Keys HF may carry that have no counterpart here and are safe to drop.
IGNORABLE_PREFIXES = ("pooler.", "bert.pooler.", "deberta.pooler.", "mask_predictions.")

RTD_SIDECAR = "sas_rtd_head.safetensors"  # DA exports: our RTD head next to DebertaV2ForMaskedLM


def family(architecture: str) -> Family:
    if architecture not in FAMILIES:
        raise ValueError(f"unsupported HF architecture {architecture!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[architecture]


def _linear(ours, hf, bias=True):
    out = [(ours + ("kernel",), hf + ".weight", True)]
    if bias:
        out.append((ours + ("bias",), hf + ".bias", False))
    return out


def _norm(ours, hf):
    return [(ours + ("scale",), hf + ".weight", False), (ours + ("bias",), hf + ".bias", False)]


def encoder_entries(cfg: ModelConfig, model_type: str, prefix: str, *,
                    embeddings="embeddings", encoder="encoder", with_embeddings=True):
    """Embeddings + encoder entries for one network; `embeddings`/`encoder` name our subtrees."""
    emb, enc = (embeddings,), (encoder,)
    e = []
    if with_embeddings:
        e.append((emb + ("word_embeddings", "embedding"), f"{prefix}embeddings.word_embeddings.weight", False))
        if cfg.position_biased_input:
            e.append((emb + ("position_embeddings", "embedding"),
                      f"{prefix}embeddings.position_embeddings.weight", False))
        if cfg.type_vocab_size > 0:
            e.append((emb + ("token_type_embeddings", "embedding"),
                      f"{prefix}embeddings.token_type_embeddings.weight", False))
        e += _norm(emb + ("LayerNorm",), f"{prefix}embeddings.LayerNorm")
    if model_type == "deberta-v2":
        if cfg.embedding_size != cfg.hidden_size and with_embeddings:
            e += _linear(emb + ("embed_proj",), f"{prefix}embeddings.embed_proj", bias=False)
        e.append((enc + ("rel_embeddings",), f"{prefix}encoder.rel_embeddings.weight", False))
        if cfg.norm_rel_ebd == "layer_norm":
            e += _norm(enc + ("rel_LayerNorm",), f"{prefix}encoder.LayerNorm")
        qkv = {"query": "query_proj", "key": "key_proj", "value": "value_proj"}
    else:
        if cfg.embedding_size != cfg.hidden_size:
            e += _linear(enc + ("embeddings_project",), f"{prefix}embeddings_project")
        qkv = {"query": "query", "key": "key", "value": "value"}
    if model_type == "deberta-v2" and not cfg.share_att_key:
        terms = cfg.pos_att_terms
        if "c2p" in terms:
            qkv["pos_key_proj"] = "pos_key_proj"
        if "p2c" in terms:
            qkv["pos_query_proj"] = "pos_query_proj"
    for i in range(cfg.num_layers):
        ours, hf = enc + (f"layer_{i}",), f"{prefix}encoder.layer.{i}"
        for name, hf_name in qkv.items():
            e += _linear(ours + (name,), f"{hf}.attention.self.{hf_name}")
        e += _linear(ours + ("attention_output",), f"{hf}.attention.output.dense")
        e += _norm(ours + ("attention_LayerNorm",), f"{hf}.attention.output.LayerNorm")
        e += _linear(ours + ("intermediate",), f"{hf}.intermediate.dense")
        e += _linear(ours + ("output",), f"{hf}.output.dense")
        e += _norm(ours + ("output_LayerNorm",), f"{hf}.output.LayerNorm")
    return e


def head_entries(head: str | None, *, mlm_head="mlm_head", rtd_head="rtd_head"):
    if head == "rtd":
        return (_linear((rtd_head, "dense"), "discriminator_predictions.dense")
                + _linear((rtd_head, "dense_prediction"), "discriminator_predictions.dense_prediction"))
    if head == "generator":
        return (_linear((mlm_head, "dense"), "generator_predictions.dense")
                + _norm((mlm_head, "LayerNorm"), "generator_predictions.LayerNorm")
                + [((mlm_head, "bias"), "generator_lm_head.bias", False)])
    if head == "cls":
        return (_linear((mlm_head, "dense"), "cls.predictions.transform.dense")
                + _norm((mlm_head, "LayerNorm"), "cls.predictions.transform.LayerNorm")
                + [((mlm_head, "bias"), "cls.predictions.bias", False)])
    if head is None:
        return []
    raise ValueError(f"unknown head kind {head!r}")


def key_map(cfg: ModelConfig, architecture: str, *, prefix: str | None = None, heads=None, **names):
    """All entries for `architecture`; `heads` overrides which head kinds are mapped."""
    fam = family(architecture)
    prefix = fam.prefix if prefix is None else prefix
    sub = {k: names[k] for k in ("embeddings", "encoder") if k in names}
    entries = encoder_entries(cfg, fam.model_type, prefix, **sub)
    head_names = {k: names[k] for k in ("mlm_head", "rtd_head") if k in names}
    for head in ([fam.head] if heads is None else heads):
        entries += head_entries(head, **head_names)
    return entries
