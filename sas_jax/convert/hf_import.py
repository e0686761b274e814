"""Hugging Face checkpoints (folder or state_dict) → our ModelConfig + params.

    cfg, params = import_hf("path/to/electra-small-discriminator")
    model = PretrainingModel(cfg, use_mlm="mlm_head" in params, use_rtd="rtd_head" in params)

`import_electra_pair` builds `ElectraModel` params from the two HF checkpoints;
`import_sas` reads back a folder written by `hf_export.export_sas`. Params come
back as a nested dict of float32 numpy arrays (unboxed), checked against the
shapes the Flax model expects.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sas_jax.convert import hf_config as hfc
from sas_jax.convert import hf_keys
from sas_jax.models.config import ModelConfig
from sas_jax.models import electra
from sas_jax.models.electra import ElectraModel
from sas_jax.models.pretraining import PretrainingModel

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ reading


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor (any dtype, incl. bfloat16)
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def load_state_dict(folder: str) -> dict[str, np.ndarray]:
    """The weights of an HF folder: model.safetensors, its sharded index, or pytorch_model.bin."""
    from safetensors.numpy import load_file

    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(single):
        return dict(load_file(single))
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        out = {}
        for name in files:
            out.update(load_file(os.path.join(folder, name)))
        return out
    binary = os.path.join(folder, "pytorch_model.bin")
    if os.path.exists(binary):
        import torch

        return {k: _to_numpy(v) for k, v in torch.load(binary, map_location="cpu", weights_only=True).items()}
    raise FileNotFoundError(f"no model.safetensors, safetensors index or pytorch_model.bin in {folder}")


def load_folder(folder: str) -> tuple[dict, dict[str, np.ndarray]]:
    with open(os.path.join(folder, "config.json")) as f:
        return json.load(f), load_state_dict(folder)


# ------------------------------------------------------------------ mapping


def _set(tree: dict, path: tuple, value):
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def _detect_prefix(state_dict: Mapping, fam: hf_keys.Family) -> str:
    """`electra.`-style prefix if the keys carry one (head classes), else ""."""
    probe = "embeddings.word_embeddings.weight"
    for prefix in (fam.prefix, {"electra": "electra.", "bert": "bert.", "deberta-v2": "deberta."}[fam.model_type], ""):
        if prefix + probe in state_dict:
            return prefix
    raise KeyError(f"no '{probe}' (with or without a base prefix) in the state_dict: not a "
                   f"{fam.architecture} checkpoint?")


def params_from_state_dict(state_dict: Mapping[str, Any], cfg: ModelConfig, architecture: str, *,
                           heads=None, strict: bool = True, **names) -> dict:
    """Our params for the entries of `architecture` (see `hf_keys.key_map`).

    Missing keys raise. Keys left over are logged (and raise with `strict`),
    except pooler / `mask_predictions` ones. Tied keys, when present, must equal
    what they are tied to (our model can only represent tied weights).
    """
    sd = {k: _to_numpy(v) for k, v in state_dict.items()}
    fam = hf_keys.family(architecture)
    prefix = _detect_prefix(sd, fam)
    entries = hf_keys.key_map(cfg, architecture, prefix=prefix, heads=heads, **names)
    missing = [hf for _, hf, _ in entries if hf not in sd]
    if missing:
        raise KeyError(f"{architecture}: {len(missing)} keys missing from the state_dict, e.g. {missing[:5]}")
    params: dict = {}
    used = set()
    for ours, hf, transpose in entries:
        value = np.asarray(sd[hf], np.float32)
        _set(params, ours, np.ascontiguousarray(value.T) if transpose else value)
        used.add(hf)
    for head in ([fam.head] if heads is None else heads):
        for key, source in hf_keys.TIED.get(head, {}).items():
            used.add(key)
            if key in sd:
                src = sd[prefix + "embeddings.word_embeddings.weight"] if source == "WORD" else sd[source]
                if sd[key].shape != src.shape or not np.array_equal(sd[key], src):
                    raise ValueError(f"{key} differs from {source}: untied output weights cannot be imported")
    left = sorted(k for k in sd if k not in used and not k.startswith(hf_keys.IGNORABLE_PREFIXES))
    if left:
        msg = f"{architecture}: {len(left)} unused keys, e.g. {left[:5]}"
        if strict:
            raise ValueError(msg + " (pass strict=False to drop them)")
        log.warning(msg)
    return params


def check_params(params, model: nn.Module, seq_len: int = 8, max_predictions: int = 2):
    """Raises unless `params` has exactly the tree and shapes `model.init` makes."""
    ids = jnp.zeros((1, seq_len), jnp.int32)
    pos = jnp.zeros((1, max_predictions), jnp.int32)
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), ids, jnp.ones_like(ids), pos))
    want = nn.meta.unbox(abstract["params"])
    got_paths = {jax.tree_util.keystr(p): np.shape(x) for p, x in jax.tree_util.tree_leaves_with_path(params)}
    want_paths = {jax.tree_util.keystr(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(want)}
    if got_paths != want_paths:
        extra = sorted(set(got_paths) - set(want_paths))
        lack = sorted(set(want_paths) - set(got_paths))
        shape = sorted(k for k in set(got_paths) & set(want_paths) if got_paths[k] != want_paths[k])
        raise ValueError(f"params do not fit {type(model).__name__}: unexpected {extra[:5]}, "
                         f"missing {lack[:5]}, wrong shape {[(k, got_paths[k], want_paths[k]) for k in shape[:5]]}")


# ------------------------------------------------------------------ entry points


def _source(source, hf_config=None):
    if isinstance(source, (str, os.PathLike)):
        config, sd = load_folder(os.fspath(source))
        return (hf_config or config), sd, os.fspath(source)
    if hf_config is None:
        raise ValueError("importing from a state_dict needs hf_config= (a config.json dict or transformers config)")
    return hf_config, source, None


def import_hf(source, *, hf_config=None, architecture: str | None = None, strict: bool = True,
              **config_overrides) -> tuple[ModelConfig, dict]:
    """(ModelConfig, params for PretrainingModel) from an HF folder or state_dict.

    The heads of `architecture` become `mlm_head` / `rtd_head`; build the model
    with `use_mlm="mlm_head" in params`, `use_rtd="rtd_head" in params`. A DA
    folder written by `export_sas` also brings back its RTD head.
    """
    config, sd, folder = _source(source, hf_config)
    if not isinstance(config, Mapping):
        config = config.to_dict()
    architecture = architecture or (config.get("architectures") or [None])[0]
    if architecture == "DebertaV2ForMaskedLM" and not config.get("legacy", True):
        raise ValueError("DebertaV2ForMaskedLM with legacy=False (lm_predictions.* head) is not supported; "
                         "import the encoder with architecture='DebertaV2Model'")
    cfg = hfc.from_hf_config(config, architecture, **config_overrides)
    heads = [hf_keys.family(architecture).head]
    sd = dict(sd)
    if folder and os.path.exists(os.path.join(folder, hf_keys.RTD_SIDECAR)):
        from safetensors.numpy import load_file

        sd.update(load_file(os.path.join(folder, hf_keys.RTD_SIDECAR)))
        heads.append("rtd")
    heads = [h for h in heads if h is not None]
    params = params_from_state_dict(sd, cfg, architecture, heads=heads, strict=strict)
    check_params(params, PretrainingModel(cfg, use_mlm="mlm_head" in params, use_rtd="rtd_head" in params))
    return cfg, params


def import_sas(folder: str, *, strict: bool = True) -> tuple[ModelConfig, dict]:
    """Reads back `export_sas` output: one encoder with both heads.

    Absolute models: `discriminator/` (ElectraForPreTraining) gives the encoder
    and the RTD head, `generator/` (ElectraForMaskedLM, same encoder) the MLM
    head. DA models: the DebertaV2ForMaskedLM folder plus its RTD sidecar.
    """
    disc = os.path.join(folder, "discriminator")
    if not os.path.isdir(disc):
        return import_hf(folder, strict=strict)
    cfg, params = import_hf(disc, strict=strict)
    gen_config, gen_sd = load_folder(os.path.join(folder, "generator"))
    gen_cfg = hfc.from_hf_config(gen_config)
    if not hfc.same_encoder_shape(cfg, gen_cfg):
        raise ValueError(f"{folder}: generator and discriminator differ in shape (an ELECTRA pair? "
                         "use import_electra_pair)")
    gen = params_from_state_dict(gen_sd, gen_cfg, "ElectraForMaskedLM", strict=False)
    same = jax.tree_util.tree_map(np.array_equal, {k: params[k] for k in ("embeddings", "encoder")},
                                  {k: gen[k] for k in ("embeddings", "encoder")})
    if not all(jax.tree_util.tree_leaves(same)):
        log.warning("%s: the generator folder's encoder differs from the discriminator's; "
                    "keeping the discriminator's encoder and the generator's MLM head", folder)
    params["mlm_head"] = gen["mlm_head"]
    cfg = dataclasses.replace(cfg, mlm_layer_norm_eps=gen_cfg.mlm_layer_norm_eps)
    check_params(params, PretrainingModel(cfg))
    return cfg, params


def import_electra_pair(generator, discriminator, *, generator_hf_config=None, discriminator_hf_config=None,
                        embeddings_from: str = "discriminator", strict: bool = True) -> tuple[ModelConfig, dict]:
    """(ModelConfig, ElectraModel params) from HF ElectraForMaskedLM + ElectraForPreTraining.

    Each network's `embeddings_project` and encoder come from its own checkpoint;
    the shared embeddings (tables + LayerNorm) from `embeddings_from`. The
    generator width must follow `generator_config` (ratio = H_g / H).

    An ELECTRA-DA export (DebertaV2ForMaskedLM + DebertaV2Model with the RTD sidecar) is
    read back too: each network's `embed_proj`, LayerNorm and encoder from its own folder,
    the shared tables from `embeddings_from`; with `sas_jax.embedding_sharing = gdes` the word
    table E_G from the generator and E_delta = (discriminator's table) − E_G.
    """
    if embeddings_from not in ("generator", "discriminator"):
        raise ValueError("embeddings_from must be 'generator' or 'discriminator'")
    d_conf, d_sd, d_folder = _source(discriminator, discriminator_hf_config)
    g_conf, g_sd, _ = _source(generator, generator_hf_config)
    if not isinstance(d_conf, Mapping):
        d_conf = d_conf.to_dict()
    if not isinstance(g_conf, Mapping):
        g_conf = g_conf.to_dict()
    if d_conf.get("model_type") == "deberta-v2":
        return _import_electra_da_pair(g_conf, g_sd, d_conf, d_sd, d_folder, embeddings_from, strict)
    d_cfg = hfc.from_hf_config(d_conf, "ElectraForPreTraining")
    g_hf = hfc.from_hf_config(g_conf, "ElectraForMaskedLM")
    cfg = dataclasses.replace(d_cfg, generator_ratio=g_hf.hidden_size / d_cfg.hidden_size)
    g_cfg = electra.generator_config(cfg)
    for k in ("hidden_size", "num_heads", "intermediate_size", "num_layers", "embedding_size", "vocab_size"):
        if getattr(g_cfg, k) != getattr(g_hf, k):
            raise ValueError(f"the generator's {k}={getattr(g_hf, k)} does not follow the sizing rule "
                             f"(expected {getattr(g_cfg, k)} for ratio {cfg.generator_ratio})")
    d = params_from_state_dict(d_sd, d_cfg, "ElectraForPreTraining", strict=strict,
                               encoder="discriminator", rtd_head="discriminator_head")
    g = params_from_state_dict(g_sd, g_cfg, "ElectraForMaskedLM", strict=strict,
                               encoder="generator", mlm_head="generator_head")
    params = {"embeddings": (d if embeddings_from == "discriminator" else g)["embeddings"],
              "generator": g["generator"], "generator_head": g["generator_head"],
              "discriminator": d["discriminator"], "discriminator_head": d["discriminator_head"]}
    check_params(params, ElectraModel(cfg))
    return cfg, params


def _import_electra_da_pair(g_conf, g_sd, d_conf, d_sd, d_folder, embeddings_from, strict):
    """`import_electra_pair` for an ELECTRA-DA export (see there)."""
    if g_conf.get("model_type") != "deberta-v2":
        raise ValueError(f"the discriminator is DebertaV2 but the generator is {g_conf.get('model_type')!r}; "
                         "pass the generator folder of the same ELECTRA-DA export")
    sharing = (d_conf.get(hfc.EXTRA_KEY) or {}).get("embedding_sharing", "shared")
    d_cfg = hfc.from_hf_config(d_conf, "DebertaV2Model")
    g_hf = hfc.from_hf_config(g_conf, "DebertaV2ForMaskedLM")
    cfg = dataclasses.replace(d_cfg, generator_ratio=g_hf.hidden_size / d_cfg.hidden_size, embedding_sharing=sharing)
    g_cfg = electra.generator_config(cfg)
    for k in ("hidden_size", "num_heads", "intermediate_size", "num_layers", "embedding_size", "vocab_size"):
        if getattr(g_cfg, k) != getattr(g_hf, k):
            raise ValueError(f"the generator's {k}={getattr(g_hf, k)} does not follow the sizing rule "
                             f"(expected {getattr(g_cfg, k)} for ratio {cfg.generator_ratio})")
    d_sd = dict(d_sd)
    sidecar = os.path.join(d_folder, hf_keys.RTD_SIDECAR) if d_folder else ""
    if not (sidecar and os.path.exists(sidecar)):
        raise FileNotFoundError(f"no {hf_keys.RTD_SIDECAR} (the discriminator's RTD head) in "
                                f"{d_folder or 'the input'}; pass the discriminator folder of an ELECTRA-DA export")
    from safetensors.numpy import load_file

    d_sd.update(load_file(sidecar))
    d = params_from_state_dict(d_sd, d_cfg, "DebertaV2Model", heads=["rtd"], strict=strict)
    g = params_from_state_dict(g_sd, g_cfg, "DebertaV2ForMaskedLM", strict=strict)
    own = ("embed_proj", "LayerNorm")
    tables = {k: v for k, v in (d if embeddings_from == "discriminator" else g)["embeddings"].items() if k not in own}
    params = {"embeddings": tables,
              "generator_embeddings": {k: v for k, v in g["embeddings"].items() if k in own},
              "generator": g["encoder"], "generator_head": g["mlm_head"],
              "discriminator_embeddings": {k: v for k, v in d["embeddings"].items() if k in own},
              "discriminator": d["encoder"], "discriminator_head": d["rtd_head"]}
    if sharing == "gdes":
        e_g = g["embeddings"]["word_embeddings"]["embedding"]
        params["embeddings"] = {**tables, "word_embeddings": {"embedding": e_g}}
        params["discriminator_word_delta"] = d["embeddings"]["word_embeddings"]["embedding"] - e_g
    check_params(params, ElectraModel(cfg))
    return cfg, params
