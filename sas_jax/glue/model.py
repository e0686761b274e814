"""The fine-tuning model and the loaders of pre-trained encoders.

`GlueModel` = our `Embeddings` + `Encoder` + `ClassificationHead` (the reference
head: [CLS] → dropout → dense H→H → exact GELU → dropout → dense H→num_labels; one
output and MSE for STS-B). Its params are {'embeddings', 'encoder', 'classifier'}.

Pre-trained weights come from one of
- our pre-training checkpoints, read by `sas_jax.checkpointing.read_model` (only
  `state.params`, as numpy; the shape from the run's config, the tokenizer from its
  corpus). ELECTRA checkpoints give their discriminator as the encoder.
- a Hugging Face folder, through `sas_jax.convert.import_hf`.
The MLM and RTD heads are dropped on purpose; `Pretrained.dropped` and `.missing`
name what was left out and what the head adds, and both are logged.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sas_jax import checkpoint_damage, checkpointing
from sas_jax.errors import UserError
from sas_jax.models.config import ModelConfig
from sas_jax.models.electra import network_params
from sas_jax.models.encoder import INIT, Embeddings, Encoder, gelu

log = logging.getLogger("sas_jax.glue")


# ----------------------------------------------------------------------------- model
class ClassificationHead(nn.Module):
    """[CLS] → dropout → dense H→H → GELU → dropout → dense H→num_labels (float32 out)."""

    hidden_size: int
    num_labels: int
    dropout_rate: float = 0.1

    @nn.compact
    def __call__(self, hidden_BxLxH, *, deterministic: bool):
        x = hidden_BxLxH[:, 0].astype(jnp.float32)
        x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        x = gelu(nn.Dense(self.hidden_size, kernel_init=INIT, name="dense")(x))
        x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        return nn.Dense(self.num_labels, kernel_init=INIT, name="out_proj")(x)


class GlueModel(nn.Module):
    cfg: ModelConfig
    num_labels: int
    head_dropout_rate: float = 0.1

    @nn.compact
    def __call__(self, input_ids, input_mask, token_type_ids=None, *, deterministic: bool = True):
        emb = Embeddings(self.cfg, name="embeddings")(input_ids, token_type_ids, deterministic=deterministic,
                                                      input_mask_BxL=input_mask)
        hidden = Encoder(self.cfg, name="encoder")(emb, input_mask, deterministic=deterministic)
        return ClassificationHead(self.cfg.hidden_size, self.num_labels, self.head_dropout_rate,
                                  name="classifier")(hidden, deterministic=deterministic)


def init_params(model: GlueModel, rng, seq_len: int = 8) -> dict:
    """Fresh (unboxed) params of `model`: what a run starts from before loading."""
    ids = jnp.zeros((1, seq_len), jnp.int32)
    variables = jax.jit(lambda r: model.init({"params": r, "dropout": r}, ids, jnp.ones_like(ids), ids))(rng)
    return nn.meta.unbox(variables["params"])


# ----------------------------------------------------------------------------- pre-trained
@dataclasses.dataclass
class Pretrained:
    """An encoder to fine-tune: its shape, its params and its tokenizer."""

    cfg: ModelConfig
    params: dict  # {'embeddings', 'encoder'}: numpy arrays
    tokenizer: object  # sas_jax.data.tokenizer.Tokenizer
    source: dict  # where it came from (written into every result)
    dropped: list = dataclasses.field(default_factory=list)  # checkpoint params not used
    heads: dict = dataclasses.field(default_factory=dict)  # the dropped heads, for probing


def _name(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/")


def _flat_names(tree) -> list:
    return sorted(_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree))


def split_encoder(params: dict) -> tuple:
    """(encoder params {'embeddings','encoder'}, the rest) of pre-training params.

    SAS/BERT: 'encoder'; ELECTRA: its 'discriminator' becomes the encoder. ELECTRA-DA: the
    discriminator's embeddings are the shared tables joined with its own projection and
    LayerNorm (`discriminator_embeddings`), its word table E_G + E_delta under gdes
    (`models.electra.network_params`); the generator's parts are the rest.
    """
    params = dict(params)
    if "encoder" not in params and "discriminator_embeddings" in params:
        disc = network_params(params, "discriminator")
        for k in ("embeddings", "discriminator", "discriminator_embeddings", "discriminator_word_delta"):
            params.pop(k, None)
        params["embeddings"], params["encoder"] = disc["embeddings"], disc["encoder"]
    if "encoder" not in params and "discriminator" in params:
        params["encoder"] = params.pop("discriminator")
    missing = [k for k in ("embeddings", "encoder") if k not in params]
    if missing:
        raise UserError(f"the checkpoint has no {' or '.join(missing)} params (it has "
                        f"{sorted(params)}); is it a pre-training checkpoint of this package?")
    enc = {k: params.pop(k) for k in ("embeddings", "encoder")}
    return enc, params


def _hf_tokenizer(folder: str, override: str = ""):
    from sas_jax.data.tokenizer import load_tokenizer  # noqa: PLC0415

    if override:
        return load_tokenizer(override)
    lowercase = True
    tok_cfg = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(tok_cfg):
        with open(tok_cfg) as f:
            lowercase = bool(json.load(f).get("do_lower_case", True))  # cased BERT/ELECTRA folders say False
    for name in ("vocab.txt", "spiece.model", "spm.model", "tokenizer.model"):
        if os.path.isfile(os.path.join(folder, name)):
            return load_tokenizer(os.path.join(folder, name), lowercase=lowercase)
    raise UserError(f"{folder} has no vocab.txt or SentencePiece .model; pass "
                    "init_from.tokenizer=<path>")


def load_pretrained(init_from) -> Pretrained:
    """The encoder named by an `init_from` block (checkpoint_dir/step, or hf_folder).

    Heads are dropped (kept aside in `.heads`); the dropped and the missing
    parameter names are logged. `init_from.init == "random"`: the no-pre-training
    baseline (`glue.random_init`: the shape and tokenizer only, no weights).
    """
    from sas_jax.glue import random_init  # noqa: PLC0415

    if random_init.is_random(init_from):
        return random_init.random_encoder(init_from)
    hf_folder = init_from.get("hf_folder", "") or ""
    tok_override = init_from.get("tokenizer", "") or ""
    if hf_folder:
        from sas_jax.convert import import_hf  # noqa: PLC0415

        if not os.path.isfile(os.path.join(hf_folder, "config.json")):
            raise UserError(f"{hf_folder} is not a Hugging Face model folder (no config.json)")
        try:
            cfg, params = import_hf(hf_folder, strict=False)
        except (KeyError, ValueError, FileNotFoundError) as e:
            raise UserError(f"{hf_folder} cannot be imported: {' '.join(str(e).split())[:300]}") from None
        tok = _hf_tokenizer(hf_folder, tok_override)
        source = {"kind": "hf", "hf_folder": os.path.abspath(hf_folder)}
    elif init_from.get("checkpoint_dir", ""):
        step = int(init_from.get("step", -1))
        with checkpoint_damage.explained(init_from["checkpoint_dir"], step):  # damaged files: one line
            ckpt = checkpointing.read_model(init_from["checkpoint_dir"], step, tokenizer=tok_override)
        cfg, params, tok, source = ckpt.cfg, ckpt.params, ckpt.tokenizer, ckpt.source
    else:
        raise UserError("init_from is empty; set init_from.checkpoint_dir=<pre-training workdir> "
                        "(and init_from.step) or init_from.hf_folder=<HF folder>")
    enc, rest = split_encoder(params)
    if tok.vocab_size > cfg.vocab_size:
        raise UserError(f"the tokenizer has {tok.vocab_size} tokens but the model's word table "
                        f"{cfg.vocab_size}; pass the tokenizer the model was trained with")
    dropped = _flat_names(rest)
    if dropped:
        log.info("init_from: dropped %d pre-training head params: %s", len(dropped), ", ".join(dropped))
    return Pretrained(cfg, enc, tok, source, dropped, rest)


def merge_pretrained(fresh: dict, pretrained: dict) -> tuple:
    """(params, missing, unexpected): `fresh` with every pre-trained leaf copied in.

    Shapes must match; `missing` are fresh leaves not in the checkpoint (the new
    head), `unexpected` checkpoint leaves the model has no place for.
    """
    flat_new = {_name(p): x for p, x in jax.tree_util.tree_leaves_with_path(fresh)}
    flat_pre = {_name(p): x for p, x in jax.tree_util.tree_leaves_with_path(pretrained)}
    bad = [(k, np.shape(flat_pre[k]), np.shape(x)) for k, x in flat_new.items()
           if k in flat_pre and np.shape(flat_pre[k]) != np.shape(x)]
    if bad:
        raise UserError(f"pre-trained {bad[0][0]} has shape {bad[0][1]}, the model wants {bad[0][2]}")
    merged = jax.tree_util.tree_map_with_path(
        lambda p, x: np.asarray(flat_pre.get(_name(p), x)), fresh)
    missing = sorted(set(flat_new) - set(flat_pre))
    unexpected = sorted(set(flat_pre) - set(flat_new))
    if missing:
        log.info("init_from: %d params not in the checkpoint (newly initialised): %s",
                 len(missing), ", ".join(missing))
    if unexpected:
        log.warning("init_from: %d checkpoint params unused: %s", len(unexpected), ", ".join(unexpected))
    return merged, missing, unexpected


def random_pretrained(cfg: ModelConfig, tokenizer, seed: int = 0) -> Pretrained:
    """A randomly initialised encoder: the 'no pre-training' baseline (and tests)."""
    params = init_params(GlueModel(cfg, 2), jax.random.key(seed))
    enc = jax.tree.map(np.asarray, {k: params[k] for k in ("embeddings", "encoder")})
    return Pretrained(cfg, enc, tokenizer, {"kind": "random", "seed": seed})
