"""Looking inside a pre-trained checkpoint: fill-mask from the MLM head, P(replaced)
from the RTD head. Used by `notebooks/evaluate.ipynb`.

    probe = load_probe("/ckpt/sas_small")                  # latest step
    fill_mask(probe, "to be or not to [MASK] , that is the question")
    ids, pieces, replaced = corrupt_words(probe.tokenizer, "the king is dead", {1: "cat"})
    rtd_probabilities(probe, ids)

Inputs are `[CLS] + tokens` as in pre-training. ELECTRA checkpoints use their
generator for fill-mask and their discriminator for RTD.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sas_jax import checkpointing
from sas_jax.models import ElectraModel, PretrainingModel


@dataclasses.dataclass
class Probe:
    cfg: object
    params: dict
    tokenizer: object
    source: dict

    @property
    def is_electra(self) -> bool:
        return "discriminator" in self.params

    @property
    def model(self):
        if self.is_electra:
            return ElectraModel(self.cfg)
        return PretrainingModel(self.cfg, use_mlm="mlm_head" in self.params, use_rtd="rtd_head" in self.params)


def load_probe(checkpoint_dir: str, step: int = -1, *, tokenizer: str = "") -> Probe:
    """The model and heads of a finished checkpoint (`step` < 0: the latest)."""
    ckpt = checkpointing.read_model(checkpoint_dir, step, tokenizer=tokenizer)
    return Probe(ckpt.cfg, ckpt.params, ckpt.tokenizer, ckpt.source)


def encode_masked(tokenizer, text: str) -> np.ndarray:
    """[CLS] + tokens of `text`, each literal "[MASK]" becoming the mask id."""
    ids = [tokenizer.cls_id]
    for i, part in enumerate(text.split("[MASK]")):
        if i:
            ids.append(tokenizer.mask_id)
        if part.strip():
            ids += tokenizer.encode(part.strip())
    return np.asarray(ids, np.int32)


def _forward(probe: Probe, head: str):
    """A jitted (params, ids [1, L], positions [1, P]) → logits function, one per probe and head."""
    cache = probe.__dict__.setdefault("_jitted", {})
    if head not in cache:
        model = probe.model
        if head == "mlm" and not (probe.is_electra or "mlm_head" in probe.params):
            raise ValueError("this checkpoint has no MLM head")
        if head == "rtd" and not (probe.is_electra or "rtd_head" in probe.params):
            raise ValueError("this checkpoint has no RTD head")

        def fn(params, ids, pos):
            v, mask = {"params": params}, jnp.ones_like(ids)
            if probe.is_electra:
                if head == "mlm":
                    return model.apply(v, ids, mask, pos, method=ElectraModel.generator_logits)
                return model.apply(v, ids, mask, method=ElectraModel.discriminator_logits)
            return model.apply(v, ids, mask, pos)[f"{head}_logits"]

        cache[head] = jax.jit(fn)
    return cache[head]


def mlm_logits(probe: Probe, ids, positions) -> np.ndarray:
    """[P, V] MLM logits at `positions` of one row of ids."""
    out = _forward(probe, "mlm")(probe.params, jnp.asarray(ids, jnp.int32)[None],
                                 jnp.asarray(positions, jnp.int32)[None])
    return np.asarray(out[0], np.float64)


def fill_mask(probe: Probe, text: str, top_k: int = 5) -> list:
    """[{"position", "top": [(piece, prob), ...]}] for each [MASK] in `text`."""
    ids = encode_masked(probe.tokenizer, text)
    positions = np.flatnonzero(ids == probe.tokenizer.mask_id)
    if not positions.size:
        raise ValueError('put at least one "[MASK]" in the text')
    logits = mlm_logits(probe, ids, positions)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = []
    for pos, p in zip(positions, probs):
        top = np.argsort(-p)[:top_k]
        out.append({"position": int(pos), "top": [(probe.tokenizer.id_to_piece(int(i)), float(p[i])) for i in top]})
    return out


def corrupt_words(tokenizer, text: str, replacements: dict) -> tuple:
    """(ids, pieces, replaced) of `[CLS] + text` with some words swapped.

    `replacements` maps a word index (0-based, whitespace split) to its new word;
    every token of a swapped word is flagged as replaced, and [CLS] is not.
    """
    words = text.split()
    ids, replaced = [tokenizer.cls_id], [False]
    for i, w in enumerate(words):
        new = replacements.get(i, w)
        toks = tokenizer.encode(new)
        ids += toks
        replaced += [i in replacements and new != w] * len(toks)
    pieces = [tokenizer.id_to_piece(int(i)) for i in ids]
    return np.asarray(ids, np.int32), pieces, np.asarray(replaced)


def rtd_probabilities(probe: Probe, ids) -> np.ndarray:
    """P(replaced) for every position of one row of ids ([CLS] first)."""
    ids = jnp.asarray(ids, jnp.int32)[None]
    logits = _forward(probe, "rtd")(probe.params, ids, jnp.zeros((1, 1), jnp.int32))
    return np.asarray(jax.nn.sigmoid(logits[0]), np.float64)
