"""ELECTRA pre-training model: a small generator and a discriminator sharing embeddings.

Absolute attention (`model.attention_type=absolute`, ELECTRA as published). Shared (one
copy, gradients from both losses): the word, position and token-type tables and the
embedding LayerNorm (`embeddings`, all E wide). Each network has its own E→H
projection, encoder and head: `generator` + `generator_head` (MLM, LayerNorm eps
`layer_norm_eps` as HF, logits tied to the shared word table + own bias) and
`discriminator` + `discriminator_head` (RTD).

Disentangled attention (ELECTRA-DA, DeBERTa-V3's replaced-token detection; docs/reference.md
§9.8). DeBERTa projects E→H *before* its embedding LayerNorm, which is over H, so
what can be shared ends at the E-wide tables:

- shared, `embeddings` (a `part="tables"` `Embeddings`): the word table [V, E] (and
  the position / token-type tables, which the DA rows do not have). The generator's
  MLM logits stay tied to it.
- per network, because their widths differ: `generator_embeddings` /
  `discriminator_embeddings` (`part="projection"`: `embed_proj` E→H_g or E→H and the
  LayerNorm over that width), and each `Encoder`'s relative table `rel_embeddings`
  [2S, H_g or H] with its LayerNorm.
- `cfg.embedding_sharing`: "shared" (the default) lets both losses update the word
  table E_G. "gdes" (gradient-disentangled embedding sharing) gives the discriminator
  the table `stop_gradient(E_G) + E_delta`, with `discriminator_word_delta` [V, E]
  initialised to zeros: the MLM loss alone updates E_G, the RTD loss alone E_delta.
  `discriminator_word_table` is that sum; an export writes it (E_G + E_delta) as the
  discriminator's word table.

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
import jax.numpy as jnp
import numpy as np

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
        if c.enhanced_mask_decoder:
            raise ValueError("ElectraModel has no enhanced mask decoder; set model.enhanced_mask_decoder=False")
        gen = generator_config(c)
        if c.disentangled:  # the module docstring: shared E-wide tables, per-network projection + LayerNorm
            self.embeddings = Embeddings(c, part="tables")
            self.generator_embeddings = Embeddings(gen, part="projection")
            self.discriminator_embeddings = Embeddings(c, part="projection")
            if c.embedding_sharing == "gdes":
                self.discriminator_word_delta = self.param(
                    "discriminator_word_delta", nn.with_logical_partitioning(nn.initializers.zeros, ("vocab", "embed")),
                    (c.vocab_size, c.embedding_size), jnp.float32)
        else:
            self.embeddings = Embeddings(c)
        self.generator = Encoder(gen)
        self.generator_head = MlmHead(gen, c.layer_norm_eps)
        self.discriminator = Encoder(c)
        self.discriminator_head = RtdHead(c)

    def discriminator_word_table(self):
        """[V, E] float32: the word table the discriminator reads (E_G, or sg(E_G) + E_delta with gdes)."""
        table = self.embeddings.word_table()
        if self.cfg.disentangled and self.cfg.embedding_sharing == "gdes":
            return jax.lax.stop_gradient(table) + self.discriminator_word_delta
        return table

    def _embed(self, input_ids, input_mask, token_type_ids, deterministic, network: str):
        if not self.cfg.disentangled:
            return self.embeddings(input_ids, token_type_ids, deterministic=deterministic,
                                   input_mask_BxL=input_mask)
        if network == "generator":
            word, own = None, self.generator_embeddings
        else:
            gdes = self.cfg.embedding_sharing == "gdes"
            word, own = (self.discriminator_word_table() if gdes else None), self.discriminator_embeddings
        x = self.embeddings.lookup(input_ids, token_type_ids, word_table_VxE=word)
        return own.normalize(x, deterministic=deterministic, input_mask_BxL=input_mask)

    def generator_hidden(self, input_ids, input_mask, token_type_ids=None, *, deterministic: bool = True):
        """[B, L, H_g]: the generator's last hidden states."""
        emb = self._embed(input_ids, input_mask, token_type_ids, deterministic, "generator")
        return self.generator(emb, input_mask, deterministic=deterministic)

    def discriminator_hidden(self, input_ids, input_mask, token_type_ids=None, *, deterministic: bool = True):
        """[B, L, H]: the discriminator's last hidden states."""
        emb = self._embed(input_ids, input_mask, token_type_ids, deterministic, "discriminator")
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



def network_params(params, network: str) -> dict:
    """One network of ElectraModel `params` in `PretrainingModel`'s layout, for its own config
    (`generator_config(cfg)` or `cfg`): {"embeddings", "encoder", "mlm_head" | "rtd_head"}.

    On the host (numpy), for what the HF export writes and GLUE fine-tunes; read from the tree
    alone. Disentangled (a `<network>_embeddings` subtree): the shared tables joined with the
    network's own `embed_proj` and LayerNorm, and, with gdes (`discriminator_word_delta`), the
    discriminator's word table folded: E_G + E_delta in float32, the sum its lookup reads.
    Absolute: the shared `embeddings` as they are.
    """
    if network not in ("generator", "discriminator"):
        raise ValueError(f"network={network!r}; use generator or discriminator")
    params = nn.meta.unbox(params)
    head = {"generator": "mlm_head", "discriminator": "rtd_head"}[network]
    embeddings = params["embeddings"]
    if f"{network}_embeddings" in params:
        embeddings = {**embeddings, **params[f"{network}_embeddings"]}
        if network == "discriminator" and "discriminator_word_delta" in params:
            table = embeddings["word_embeddings"]["embedding"]
            folded = np.asarray(table, np.float32) + np.asarray(params["discriminator_word_delta"], np.float32)
            embeddings = {**embeddings, "word_embeddings": {"embedding": folded}}
    return {"embeddings": embeddings, "encoder": params[network], head: params[f"{network}_head"]}
