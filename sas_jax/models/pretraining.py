"""The SAS/BERT-shaped pre-training model: one encoder, an MLM head and an RTD head."""
from __future__ import annotations

import flax.linen as nn

from sas_jax.models.config import ModelConfig
from sas_jax.models.encoder import Embeddings, Encoder
from sas_jax.models.heads import MlmHead, RtdHead, gather_positions


class PretrainingModel(nn.Module):
    """One encoder forward feeding the heads named in `use_mlm` / `use_rtd`.

    The MLM head runs only at the gathered slots `mlm_positions [B, P]`; the RTD
    head at every position. With `cfg.attention_type == "disentangled"` the same
    model is SASDA's (DebertaV2-form encoder). A BERT MLM model is this with
    E = H, `mlm_layer_norm_eps = 1e-12` and `use_rtd=False` (BERT's
    `cls.predictions.transform` is dense H→H, GELU, LayerNorm).
    """

    cfg: ModelConfig
    use_mlm: bool = True
    use_rtd: bool = True

    def setup(self):
        self.embeddings = Embeddings(self.cfg)
        self.encoder = Encoder(self.cfg)
        if self.use_mlm:
            self.mlm_head = MlmHead(self.cfg, self.cfg.mlm_layer_norm_eps)
        if self.use_rtd:
            self.rtd_head = RtdHead(self.cfg)

    def __call__(self, input_ids, input_mask, mlm_positions=None, token_type_ids=None,
                 *, deterministic: bool = True):
        emb = self.embeddings(input_ids, token_type_ids, deterministic=deterministic,
                              input_mask_BxL=input_mask)
        hidden = self.encoder(emb, input_mask, deterministic=deterministic)
        out = {"hidden": hidden}
        if self.use_mlm and mlm_positions is not None:
            out["mlm_logits"] = self.mlm_head(gather_positions(hidden, mlm_positions),
                                              self.embeddings.word_table())
        if self.use_rtd:
            out["rtd_logits"] = self.rtd_head(hidden)
        return out
