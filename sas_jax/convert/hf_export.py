"""Our params → Hugging Face folders (`model.safetensors` + `config.json`) that stock
`transformers` `from_pretrained` loads.

- `export_hf(params, cfg, out, architecture)`: one folder, any family of
  `hf_keys.FAMILIES` whose heads the params have.
- `export_sas(params, cfg, out)`: a SAS `PretrainingModel`. Absolute models write
  `out/discriminator` (ElectraForPreTraining: encoder + RTD head) and
  `out/generator` (ElectraForMaskedLM: the same encoder + the MLM head). DA
  models write one DebertaV2ForMaskedLM folder (legacy `cls.predictions` head)
  plus the RTD head in `sas_rtd_head.safetensors`, which HF ignores and
  `import_sas` reads.
- `export_electra_pair(params, cfg, out)`: an `ElectraModel` as the two HF
  checkpoints `out/generator` and `out/discriminator`, each with its own copy of
  the shared embeddings (ELECTRA-DA: DebertaV2ForMaskedLM + DebertaV2Model with
  the RTD sidecar; with gdes the discriminator's word table is E_G + E_delta).

Tokenizer: `tokenizer` (a path or a `sas_jax.data.tokenizer.Tokenizer`) writes a
`tokenizer.json` that reproduces the project's ids exactly (verified at export;
`hf_tokenizer`), its configs with the real special ids, and the project's file.

MLM head LayerNorm eps (lossless or refused). HF heads use the model's
`layer_norm_eps`; the SAS reference's MLM head uses 1e-5 (`mlm_layer_norm_eps`)
next to an encoder at 1e-12 (BERT rows use the encoder's eps in the head, and
ELECTRA's generator head always does). No stock HF class can hold such a head, so
`mlm_eps_gap` decides: "skip" (the default here: the MLM head is not written, a
warning says so; SAS absolute models then export the discriminator only, DA
models a DebertaV2Model), "refuse" (ValueError naming the measured gap), or
"allow" (written anyway; the measured gap is stored in config.json under
`sas_jax.mlm_eps_gap`). The gap is measured on the model itself
(`measure_mlm_eps_gap`). The eps is also kept in config.json (`sas_jax`) so
`import_*` restores it exactly.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os

import flax.linen as nn
import jax
import numpy as np

from sas_jax.convert import hf_config as hfc
from sas_jax.convert import hf_keys
from sas_jax.models import electra
from sas_jax.models.config import ModelConfig

log = logging.getLogger(__name__)


def _get(tree, path):
    for p in path:
        if p not in tree:
            raise KeyError(f"params have no {'/'.join(path)}")
        tree = tree[p]
    return tree


def _host(params):
    return jax.tree_util.tree_map(lambda x: np.asarray(jax.device_get(x), np.float32), nn.meta.unbox(params))


def to_hf_state_dict(params, cfg: ModelConfig, architecture: str, *, heads=None, tied: bool = False,
                     **names) -> dict[str, np.ndarray]:
    """{HF key: float32 array} for `architecture`.

    `tied=True` also writes the tied keys (the decoder weight = the word table),
    so a strict `load_state_dict` works too; `from_pretrained` accepts both
    (transformers 5's own `save_pretrained` leaves them out).
    """
    params = _host(params)
    fam = hf_keys.family(architecture)
    out = {}
    for ours, hf, transpose in hf_keys.key_map(cfg, architecture, heads=heads, **names):
        value = _get(params, ours)
        out[hf] = np.ascontiguousarray(value.T if transpose else value)
    if tied:
        for head in ([fam.head] if heads is None else heads):
            for key, source in hf_keys.TIED.get(head, {}).items():
                out[key] = out[fam.prefix + "embeddings.word_embeddings.weight"] if source == "WORD" else out[source]
    return out


def _tokenizer(tokenizer):
    from sas_jax.data import tokenizer as tokenizer_lib

    if tokenizer is None or isinstance(tokenizer, tokenizer_lib.Tokenizer):
        return tokenizer
    return tokenizer_lib.load_tokenizer(os.fspath(tokenizer))


def _write(state_dict, config: dict, out_dir: str, tokenizer, sample_lines=()):
    from safetensors.numpy import save_file

    from sas_jax.convert import hf_tokenizer

    os.makedirs(out_dir, exist_ok=True)
    if tokenizer is not None:  # first: a tokenizer that cannot be exported writes nothing
        hf_tokenizer.write_hf_tokenizer(tokenizer, out_dir, model_max_length=config["max_position_embeddings"],
                                        sample_lines=sample_lines)
    save_file(state_dict, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    return out_dir


def export_hf(params, cfg: ModelConfig, out_dir: str, architecture: str, *, tokenizer=None,
              tied: bool = True, sample_lines=(), extra: dict | None = None, **names) -> str:
    """Writes one HF folder for `architecture`; returns its path. `tokenizer`: a path
    or Tokenizer (its [PAD] id becomes `pad_token_id`); `extra`: more `sas_jax` keys."""
    tok = _tokenizer(tokenizer)
    sd = to_hf_state_dict(params, cfg, architecture, tied=tied, **names)
    config = hfc.to_hf_config(cfg, architecture, pad_token_id=tok.pad_id if tok is not None else 0)
    config[hfc.EXTRA_KEY].update(extra or {})
    return _write(sd, config, out_dir, tok, sample_lines)


MLM_EPS_GAP_POLICIES = ("skip", "refuse", "allow")


def measure_mlm_eps_gap(params, cfg: ModelConfig, ids=None) -> dict:
    """How far HF's MLM head (LayerNorm eps = `layer_norm_eps`) is from ours
    (`mlm_layer_norm_eps`) on this model: max |Δ logit| and max |Δ probability| over
    every vocabulary entry at every position of `ids` (default: 4 random rows of 32)."""
    import jax.numpy as jnp

    from sas_jax.models.pretraining import PretrainingModel

    if ids is None:
        ids = np.random.RandomState(0).randint(5, cfg.vocab_size, (4, min(32, cfg.max_position_embeddings)))
    ids = jnp.asarray(ids, jnp.int32)
    pos = jnp.broadcast_to(jnp.arange(ids.shape[1], dtype=jnp.int32), ids.shape)
    use_rtd = "rtd_head" in params

    def logits(params, ids, pos):  # both heads in one compiled call (op by op, the forwards take ~5x longer)
        return [PretrainingModel(dataclasses.replace(cfg, mlm_layer_norm_eps=eps), use_rtd=use_rtd).apply(
            {"params": params}, ids, jnp.ones_like(ids), pos)["mlm_logits"]
            for eps in (cfg.mlm_layer_norm_eps, cfg.layer_norm_eps)]

    with jax.default_matmul_precision("highest"):
        out = [np.asarray(x, np.float64) for x in jax.jit(logits)(params, ids, pos)]
    probs = [np.exp(x - x.max(-1, keepdims=True)) for x in out]
    probs = [p / p.sum(-1, keepdims=True) for p in probs]
    return {"head_eps": cfg.mlm_layer_norm_eps, "hf_eps": cfg.layer_norm_eps,
            "max_abs_logit": float(np.abs(out[0] - out[1]).max()),
            "max_abs_prob": float(np.abs(probs[0] - probs[1]).max())}


def mlm_eps_decision(params, cfg: ModelConfig, policy: str) -> tuple[bool, dict | None]:
    """(write the MLM head?, the measured gap or None when the eps agree)."""
    if policy not in MLM_EPS_GAP_POLICIES:
        raise ValueError(f"mlm_eps_gap={policy!r}; use one of {', '.join(MLM_EPS_GAP_POLICIES)}")
    if "mlm_head" not in params or cfg.mlm_layer_norm_eps == cfg.layer_norm_eps:
        return "mlm_head" in params, None
    gap = measure_mlm_eps_gap(params, cfg)
    what = (f"the MLM head's LayerNorm eps {gap['head_eps']:g} is not the encoder's {gap['hf_eps']:g}, "
            f"which HF heads use: HF's MLM logits would differ by up to {gap['max_abs_logit']:.1e} "
            f"(probabilities {gap['max_abs_prob']:.1e})")
    if policy == "refuse":
        raise ValueError(what + "; pass mlm_eps_gap='allow' (--mlm_eps_gap=allow) to write it anyway, "
                         "'skip' to leave the MLM head out, or pre-train with "
                         "model.mlm_layer_norm_eps=model.layer_norm_eps")
    log.warning("%s; %s", what, "writing it anyway (mlm_eps_gap=allow)" if policy == "allow"
                else "not writing the MLM head (mlm_eps_gap=skip)")
    return policy == "allow", gap


def export_sas(params, cfg: ModelConfig, out_dir: str, *, tokenizer=None, mlm_eps_gap: str = "skip",
               sample_lines=(), decision: tuple | None = None) -> dict[str, str]:
    """A SAS/SASDA (or any PretrainingModel with an RTD head) as HF folders; returns {role: folder}.
    `decision`: `mlm_eps_decision`'s answer when the caller already has it (measured and warned once)."""
    params = _host(params)
    tok = _tokenizer(tokenizer)
    write_mlm, gap = decision if decision is not None else mlm_eps_decision(params, cfg, mlm_eps_gap)
    extra = {"mlm_eps_gap": gap} if gap and write_mlm else {}
    if cfg.disentangled:
        arch = "DebertaV2ForMaskedLM" if write_mlm else "DebertaV2Model"
        path = export_hf(params, cfg, out_dir, arch, tokenizer=tok, sample_lines=sample_lines, extra=extra)
        if "rtd_head" in params:
            _write_rtd_sidecar(params, path)
        return {"mlm" if write_mlm else "encoder": path}
    out = {"discriminator": export_hf(params, cfg, os.path.join(out_dir, "discriminator"),
                                      "ElectraForPreTraining", tokenizer=tok, sample_lines=sample_lines)}
    if write_mlm:
        out["generator"] = export_hf(params, cfg, os.path.join(out_dir, "generator"),
                                     "ElectraForMaskedLM", tokenizer=tok, sample_lines=sample_lines, extra=extra)
    return out


def _write_rtd_sidecar(params, folder: str) -> None:
    """Our RTD head (`rtd_head`) next to a DebertaV2 folder, which has no RTD class: HF ignores
    the file, `import_hf` reads it back."""
    from safetensors.numpy import save_file

    head = {hf: np.ascontiguousarray(_get(params, ours).T if transpose else _get(params, ours))
            for ours, hf, transpose in hf_keys.head_entries("rtd")}
    save_file(head, os.path.join(folder, hf_keys.RTD_SIDECAR), metadata={"format": "pt"})


def export_electra_pair(params, cfg: ModelConfig, out_dir: str, *, tokenizer=None,
                        sample_lines=()) -> dict[str, str]:
    """An ElectraModel as `out/generator` (ElectraForMaskedLM) + `out/discriminator` (ElectraForPreTraining).

    Lossless: our generator head already uses `layer_norm_eps`, as HF's.

    ELECTRA-DA (`cfg.disentangled`): `out/generator` is a DebertaV2ForMaskedLM (legacy
    `cls.predictions` head, tied to the shared word table) and `out/discriminator` a
    DebertaV2Model plus our RTD head in `sas_rtd_head.safetensors`. Each folder holds the
    shared word table; with gdes the discriminator's is the folded E_G + E_delta
    (`electra.network_params`). config.json's `sas_jax.embedding_sharing` records which."""
    params = _host(params)
    tokenizer = _tokenizer(tokenizer)
    gen_cfg = electra.generator_config(cfg)
    if cfg.disentangled:
        extra = {"embedding_sharing": cfg.embedding_sharing}
        gen, disc = (electra.network_params(params, n) for n in ("generator", "discriminator"))
        # HF's DeBERTa head takes the model's eps, as our generator head does (`layer_norm_eps`).
        gen_cfg = dataclasses.replace(gen_cfg, mlm_layer_norm_eps=cfg.layer_norm_eps)
        out = {"generator": export_hf(gen, gen_cfg, os.path.join(out_dir, "generator"), "DebertaV2ForMaskedLM",
                                      tokenizer=tokenizer, sample_lines=sample_lines, extra=extra),
               "discriminator": export_hf(disc, cfg, os.path.join(out_dir, "discriminator"), "DebertaV2Model",
                                          tokenizer=tokenizer, sample_lines=sample_lines, extra=extra)}
        _write_rtd_sidecar(disc, out["discriminator"])
        return out
    return {
        "generator": export_hf(params, gen_cfg, os.path.join(out_dir, "generator"), "ElectraForMaskedLM",
                               tokenizer=tokenizer, sample_lines=sample_lines, encoder="generator",
                               mlm_head="generator_head"),
        "discriminator": export_hf(params, cfg, os.path.join(out_dir, "discriminator"),
                                   "ElectraForPreTraining", tokenizer=tokenizer,
                                   sample_lines=sample_lines, encoder="discriminator", rtd_head="discriminator_head"),
    }
