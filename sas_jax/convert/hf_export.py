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
  the shared embeddings.

HF heads use the model's `layer_norm_eps` for their LayerNorm; a SAS MLM head
with another eps (1e-5) therefore loads in HF with the model eps. The value is
kept in config.json (`sas_jax`) so `import_*` restores it exactly.
"""
from __future__ import annotations

import json
import os
import shutil

import flax.linen as nn
import jax
import numpy as np

from sas_jax.convert import hf_config as hfc
from sas_jax.convert import hf_keys
from sas_jax.models import electra
from sas_jax.models.config import ModelConfig


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


def copy_tokenizer(tokenizer: str, out_dir: str, architecture: str):
    """Copies a SentencePiece `.model` or WordPiece `vocab.txt` under HF's file names."""
    model_type = hf_keys.family(architecture).model_type
    cls = None
    if tokenizer.endswith(".model"):
        name = "spm.model" if model_type == "deberta-v2" else "spiece.model"
        cls = "DebertaV2Tokenizer" if model_type == "deberta-v2" else None
    else:
        name, cls = "vocab.txt", "BertTokenizer"
    shutil.copyfile(tokenizer, os.path.join(out_dir, name))
    if cls:
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": cls}, f, indent=2)


def _write(state_dict, config: dict, out_dir: str, architecture: str, tokenizer: str | None):
    from safetensors.numpy import save_file

    os.makedirs(out_dir, exist_ok=True)
    save_file(state_dict, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    if tokenizer:
        copy_tokenizer(tokenizer, out_dir, architecture)
    return out_dir


def export_hf(params, cfg: ModelConfig, out_dir: str, architecture: str, *, tokenizer: str | None = None,
              tied: bool = True, **names) -> str:
    """Writes one HF folder for `architecture`; returns its path."""
    sd = to_hf_state_dict(params, cfg, architecture, tied=tied, **names)
    return _write(sd, hfc.to_hf_config(cfg, architecture), out_dir, architecture, tokenizer)


def export_sas(params, cfg: ModelConfig, out_dir: str, *, tokenizer: str | None = None) -> dict[str, str]:
    """A SAS/SASDA PretrainingModel as HF folders; returns {role: folder}."""
    params = _host(params)
    if cfg.disentangled:
        path = export_hf(params, cfg, out_dir, "DebertaV2ForMaskedLM", tokenizer=tokenizer)
        if "rtd_head" in params:
            from safetensors.numpy import save_file

            head = {hf: np.ascontiguousarray(_get(params, ours).T if transpose else _get(params, ours))
                    for ours, hf, transpose in hf_keys.head_entries("rtd")}
            save_file(head, os.path.join(path, hf_keys.RTD_SIDECAR), metadata={"format": "pt"})
        return {"mlm": path}
    out = {"discriminator": export_hf(params, cfg, os.path.join(out_dir, "discriminator"),
                                      "ElectraForPreTraining", tokenizer=tokenizer)}
    if "mlm_head" in params:
        out["generator"] = export_hf(params, cfg, os.path.join(out_dir, "generator"),
                                     "ElectraForMaskedLM", tokenizer=tokenizer)
    return out


def export_electra_pair(params, cfg: ModelConfig, out_dir: str, *, tokenizer: str | None = None) -> dict[str, str]:
    """An ElectraModel as `out/generator` (ElectraForMaskedLM) + `out/discriminator` (ElectraForPreTraining)."""
    params = _host(params)
    gen_cfg = electra.generator_config(cfg)
    return {
        "generator": export_hf(params, gen_cfg, os.path.join(out_dir, "generator"), "ElectraForMaskedLM",
                               tokenizer=tokenizer, encoder="generator", mlm_head="generator_head"),
        "discriminator": export_hf(params, cfg, os.path.join(out_dir, "discriminator"),
                                   "ElectraForPreTraining", tokenizer=tokenizer,
                                   encoder="discriminator", rtd_head="discriminator_head"),
    }
