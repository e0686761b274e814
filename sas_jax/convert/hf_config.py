"""ModelConfig ↔ Hugging Face config.json (ELECTRA, BERT, DebertaV2)."""
from __future__ import annotations

from typing import Any, Mapping

from sas_jax.convert.hf_keys import family
from sas_jax.models.config import ModelConfig

# Fields HF configs cannot express, kept in config.json under this key so an
# import restores them (HF keeps unknown config keys as attributes).
EXTRA_KEY = "sas_jax"
_EXTRA_FIELDS = ("mlm_layer_norm_eps", "generator_ratio")


# The std of the project's N(0, std) initialiser (sas_jax/models/encoder.py INIT).
INITIALIZER_RANGE = 0.02


def _check_exportable(cfg: ModelConfig, architecture: str):
    fam = family(architecture)
    if getattr(cfg, "enhanced_mask_decoder", False):
        raise ValueError("the model has an enhanced mask decoder (model.enhanced_mask_decoder=True), "
                         "which Hugging Face DeBERTa does not implement; it cannot be exported")
    if getattr(cfg, "pre_layer_norm", False):
        raise ValueError(f"the model is pre-LayerNorm (model.pre_layer_norm=True) but HF {architecture} "
                         "is post-LayerNorm; it cannot be exported")
    if cfg.kqv_size != cfg.hidden_size:
        raise ValueError(f"HF {architecture} needs num_heads*head_dim == hidden_size; got "
                         f"{cfg.num_heads}*{cfg.head_dim} != {cfg.hidden_size}")
    if fam.model_type == "deberta-v2":
        if not cfg.disentangled:
            raise ValueError(f"{architecture} is for attention_type='disentangled' models; "
                             "export absolute models as ELECTRA or BERT")
        return
    if cfg.disentangled:
        raise ValueError(f"a disentangled model cannot be exported as {architecture}; use DebertaV2ForMaskedLM")
    if not cfg.position_biased_input or cfg.type_vocab_size < 1:
        raise ValueError(f"{architecture} always has position and token-type tables "
                         "(position_biased_input=True, type_vocab_size>=1)")
    if fam.model_type == "bert" and cfg.embedding_size != cfg.hidden_size:
        raise ValueError("BERT has no embedding projection: embedding_size must equal hidden_size")


def to_hf_config(cfg: ModelConfig, architecture: str, *, pad_token_id: int = 0,
                 initializer_range: float | None = None) -> dict:
    """The config.json dict that `from_pretrained` needs for `architecture`.

    `pad_token_id`: the tokenizer's [PAD] id. `initializer_range`: the std HF uses to
    initialise new weights (default: the project's, `INITIALIZER_RANGE`)."""
    _check_exportable(cfg, architecture)
    fam = family(architecture)
    d = {
        "architectures": [architecture],
        "model_type": fam.model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": "gelu",  # exact erf GELU
        "hidden_dropout_prob": cfg.dropout_rate,
        "attention_probs_dropout_prob": cfg.attention_dropout_rate,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size,
        "initializer_range": float(initializer_range if initializer_range is not None else
                                   getattr(cfg, "initializer_range", INITIALIZER_RANGE)),
        "layer_norm_eps": cfg.layer_norm_eps,
        "pad_token_id": int(pad_token_id),
        "tie_word_embeddings": True,
    }
    if fam.model_type == "electra":
        d["embedding_size"] = cfg.embedding_size
    elif fam.model_type == "deberta-v2":
        if cfg.embedding_size != cfg.hidden_size:
            d["embedding_size"] = cfg.embedding_size
        d.update(
            relative_attention=True,
            pos_att_type=list(cfg.pos_att_terms),
            share_att_key=cfg.share_att_key,  # not declared by DebertaV2Config: always pass
            position_buckets=cfg.position_buckets,
            max_relative_positions=cfg.max_relative_positions,
            norm_rel_ebd=cfg.norm_rel_ebd,
            position_biased_input=cfg.position_biased_input,
            legacy=True,  # cls.predictions.* = dense H→E, act, LayerNorm, tied decoder
            pooler_hidden_size=cfg.hidden_size,
        )
    d[EXTRA_KEY] = {k: getattr(cfg, k) for k in _EXTRA_FIELDS}
    return d


def from_hf_config(hf: Mapping[str, Any] | Any, architecture: str | None = None, **overrides) -> ModelConfig:
    """ModelConfig from a config.json dict (or a transformers config object)."""
    if not isinstance(hf, Mapping):
        hf = hf.to_dict()
    architecture = architecture or (hf.get("architectures") or [None])[0]
    if architecture is None:
        raise ValueError("the HF config names no architecture; pass architecture=...")
    fam = family(architecture)
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"hidden_act={act!r}: only exact (erf) 'gelu' is implemented")
    hidden, heads = hf["hidden_size"], hf["num_attention_heads"]
    head_dim = hf.get("attention_head_size") or hidden // heads
    v = dict(
        vocab_size=hf["vocab_size"],
        hidden_size=hidden,
        embedding_size=hf.get("embedding_size") or hidden,
        num_layers=hf["num_hidden_layers"],
        num_heads=heads,
        head_dim=head_dim,
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2),
        dropout_rate=float(hf.get("hidden_dropout_prob", 0.1)),
        attention_dropout_rate=float(hf.get("attention_probs_dropout_prob", 0.1)),
        layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
        mlm_layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)),  # HF heads use the model eps
    )
    if fam.model_type == "bert":
        v["embedding_size"] = hidden
    if fam.model_type == "deberta-v2":
        if not hf.get("relative_attention", False):
            raise ValueError("DebertaV2 without relative_attention is not supported")
        if hf.get("conv_kernel_size", 0) > 0:
            raise ValueError("DebertaV2 with a ConvLayer (conv_kernel_size > 0) is not supported")
        norm = [x.strip() for x in str(hf.get("norm_rel_ebd", "none")).lower().split("|")]
        if set(norm) - {"layer_norm", "none"}:
            raise ValueError(f"norm_rel_ebd={hf.get('norm_rel_ebd')!r} is not supported")
        pos = hf.get("pos_att_type") or []
        if isinstance(pos, str):
            pos = [x.strip() for x in pos.lower().split("|")]
        v.update(
            attention_type="disentangled",
            type_vocab_size=hf.get("type_vocab_size", 0),
            position_biased_input=bool(hf.get("position_biased_input", True)),
            position_buckets=int(hf.get("position_buckets", -1)),  # HF default when absent: none
            max_relative_positions=int(hf.get("max_relative_positions", -1)),
            share_att_key=bool(hf.get("share_att_key", False)),
            pos_att_type="|".join(p for p in ("c2p", "p2c") if p in pos),
            norm_rel_ebd="layer_norm" if "layer_norm" in norm else "none",
        )
    extra = hf.get(EXTRA_KEY) or {}
    v.update({k: extra[k] for k in _EXTRA_FIELDS if k in extra})
    v.update(overrides)
    return ModelConfig(**v)


def same_encoder_shape(a: ModelConfig, b: ModelConfig) -> bool:
    keys = ("vocab_size", "hidden_size", "embedding_size", "num_layers", "num_heads", "head_dim",
            "intermediate_size", "max_position_embeddings", "type_vocab_size", "attention_type")
    return all(getattr(a, k) == getattr(b, k) for k in keys)

