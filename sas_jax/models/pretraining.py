"""The SAS/BERT-shaped pre-training model: one encoder, an MLM head and an RTD head."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from sas_jax.models.config import ModelConfig
from sas_jax.models.encoder import INIT, Embeddings, Encoder
from sas_jax.models.heads import MlmHead, RtdHead, gather_positions


class PretrainingModel(nn.Module):
    """One encoder forward feeding the heads named in `use_mlm` / `use_rtd`.

    The MLM head runs only at the gathered slots `mlm_positions [B, P]`; the RTD
    head at every position. With `cfg.attention_type == "disentangled"` the same
    model is SASDA's (DebertaV2-form encoder). A BERT MLM model is this with
    E = H, `mlm_layer_norm_eps = 1e-12` and `use_rtd=False` (BERT's
    `cls.predictions.transform` is dense H→H, GELU, LayerNorm).

    `cfg.enhanced_mask_decoder` (DA only, docs/reference.md §9.7): the model owns
    `emd_position_embeddings` [max_position_embeddings, H]; the MLM head reads
    the Enhanced Mask Decoder's states (`Encoder` with `emd_positions_1xLxH`:
    H_{L-1} + positions as queries, the last layer run twice over keys/values
    H_{L-1}); `hidden` and the RTD head stay the plain final encoder output.
    """

    cfg: ModelConfig
    use_mlm: bool = True
    use_rtd: bool = True

    def setup(self):
        c = self.cfg
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        if self.use_mlm:
            self.mlm_head = MlmHead(c, c.mlm_layer_norm_eps)
            if c.enhanced_mask_decoder:
                self.emd_position_embeddings = self.param(
                    "emd_position_embeddings", nn.with_logical_partitioning(INIT, (None, "embed")),
                    (c.max_position_embeddings, c.hidden_size), jnp.float32)
        if self.use_rtd:
            self.rtd_head = RtdHead(c)

    def __call__(self, input_ids, input_mask, mlm_positions=None, token_type_ids=None,
                 *, deterministic: bool = True):
        c = self.cfg
        emb = self.embeddings(input_ids, token_type_ids, deterministic=deterministic,
                              input_mask_BxL=input_mask)
        mlm = self.use_mlm and mlm_positions is not None
        if mlm and c.enhanced_mask_decoder:
            length = input_ids.shape[1]
            if length > c.max_position_embeddings:
                raise ValueError(f"sequence length {length} > model.max_position_embeddings="
                                 f"{c.max_position_embeddings} (the enhanced mask decoder's position table)")
            positions = self.emd_position_embeddings[None, :length].astype(c.compute_dtype)
            hidden, mlm_hidden = self.encoder(emb, input_mask, deterministic=deterministic,
                                              emd_positions_1xLxH=positions)
        else:
            hidden = mlm_hidden = self.encoder(emb, input_mask, deterministic=deterministic)
        out = {"hidden": hidden}
        if mlm:
            out["mlm_logits"] = self.mlm_head(gather_positions(mlm_hidden, mlm_positions),
                                              self.embeddings.word_table())
        if self.use_rtd:
            out["rtd_logits"] = self.rtd_head(hidden)
        return out
