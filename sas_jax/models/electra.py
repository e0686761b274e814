"""ELECTRA pre-training model: a small generator and a discriminator sharing embeddings.

Shared (one copy, gradients from both losses): the word, position and token-type
tables and the embedding LayerNorm (`embeddings`). Each network has its own E→H
projection, encoder and head: `generator` + `generator_head` (MLM, LayerNorm eps
`layer_norm_eps` as HF, logits tied to the shared word table + own bias) and
`discriminator` + `discriminator_head` (RTD).

One jitted step can either call the two methods through `apply(...,
method=...)` (split the dropout key between the two calls), or run one
`__call__` with a `corrupt_fn` that turns the stop-gradient generator logits into
the discriminator's input ids.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import flax.linen as nn
import jax

from sas_jax.models.config import ModelConfig
from sas_jax.models.encoder import Embeddings, Encoder
from sas_jax.models.heads import MlmHead, RtdHead, gather_positions


def generator_config(cfg: ModelConfig) -> ModelConfig:
    """The generator's shape: H_g = round(H·ratio), heads max(1, H_g/64), FFN 4·H_g, same layers and E."""
    hidden = int(round(cfg.hidden_size * cfg.generator_ratio))
    heads = max(1, hidden // 64)
    if hidden % heads:
        raise ValueError(f"generator width {hidden} (= {cfg.hidden_size} x {cfg.generator_ratio}) "
                         f"is not divisible by its {heads} heads; pick another model.generator_ratio")
    return dataclasses.replace(cfg, hidden_size=hidden, num_heads=heads, head_dim=hidden // heads,
                               intermediate_size=4 * hidden)


class ElectraModel(nn.Module):
    """Generator (MLM at gathered slots) + discriminator (RTD everywhere), shared embeddings.

    `cfg` describes the discriminator; the generator is `generator_config(cfg)`.
    """

    cfg: ModelConfig

    def setup(self):
        c = self.cfg
        if c.disentangled:
            raise NotImplementedError(
                "ElectraModel supports attention_type='absolute' only: DeBERTa's embedding "
                "projection precedes the shared LayerNorm, so it cannot be per network")
        gen = generator_config(c)
        self.embeddings = Embeddings(c)
        self.generator = Encoder(gen)
        self.generator_head = MlmHead(gen, c.layer_norm_eps)
        self.discriminator = Encoder(c)
        self.discriminator_head = RtdHead(c)

    def _embed(self, input_ids, input_mask, token_type_ids, deterministic):
        return self.embeddings(input_ids, token_type_ids, deterministic=deterministic,
                               input_mask_BxL=input_mask)

    def generator_hidden(self, input_ids, input_mask, token_type_ids=None, *, deterministic: bool = True):
        """[B, L, H_g]: the generator's last hidden states."""
        emb = self._embed(input_ids, input_mask, token_type_ids, deterministic)
        return self.generator(emb, input_mask, deterministic=deterministic)

    def discriminator_hidden(self, input_ids, input_mask, token_type_ids=None, *, deterministic: bool = True):
        """[B, L, H]: the discriminator's last hidden states."""
        emb = self._embed(input_ids, input_mask, token_type_ids, deterministic)
        return self.discriminator(emb, input_mask, deterministic=deterministic)

    def generator_logits(self, input_ids, input_mask, mlm_positions, token_type_ids=None, *,
                         deterministic: bool = True):
        """[B, P, V] float32 MLM logits at the gathered slots `mlm_positions [B, P]`."""
        hidden = self.generator_hidden(input_ids, input_mask, token_type_ids, deterministic=deterministic)
        return self.generator_head(gather_positions(hidden, mlm_positions), self.embeddings.word_table())

    def discriminator_logits(self, input_ids, input_mask, token_type_ids=None, *, deterministic: bool = True):
        """[B, L] float32 replaced-token logits."""
        hidden = self.discriminator_hidden(input_ids, input_mask, token_type_ids, deterministic=deterministic)
        return self.discriminator_head(hidden)

    def __call__(self, input_ids, input_mask, mlm_positions=None, token_type_ids=None, *,
                 deterministic: bool = True,
                 corrupt_fn: Optional[Callable[[jax.Array], jax.Array]] = None):
        """Both networks in one apply (also what `init` traces).

        `corrupt_fn(stop_gradient(mlm_logits [B, P, V])) -> ids [B, L]` builds the
        discriminator's input (e.g. Gumbel-max sampling scattered into the masked
        slots); without it the discriminator reads `input_ids`.
        Returns dict(mlm_logits [B, P, V], rtd_logits [B, L], discriminator_ids [B, L]).
        """
        out = {}
        disc_ids = input_ids
        if mlm_positions is not None:
            out["mlm_logits"] = self.generator_logits(input_ids, input_mask, mlm_positions, token_type_ids,
                                                      deterministic=deterministic)
            if corrupt_fn is not None:
                disc_ids = jax.lax.stop_gradient(corrupt_fn(jax.lax.stop_gradient(out["mlm_logits"])))
        out["rtd_logits"] = self.discriminator_logits(disc_ids, input_mask, token_type_ids,
                                                      deterministic=deterministic)
        out["discriminator_ids"] = disc_ids
        return out
