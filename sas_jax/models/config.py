"""`ModelConfig`: the frozen, validated form of `config.model` used by the modules.

`attention_type` picks the encoder family:

- `absolute` (BERT/ELECTRA/SAS): word + position + type tables of width E, LayerNorm
  over E, and, when E != H, a biased E->H projection *after* that LayerNorm
  (`Encoder/embeddings_project`).
- `disentangled` (DebertaV2 form): relative c2p/p2c attention over a shared,
  LayerNormed table of 2S relative embeddings; the embeddings add absolute
  positions only if `position_biased_input`, token types only if
  `type_vocab_size > 0`, project E->H *without* bias *before* the LayerNorm
  (`Embeddings/embed_proj`), and zero the pad rows. DA configs set
  `layer_norm_eps = 1e-7`, `position_biased_input = False`, `type_vocab_size = 0`,
  so nothing sees absolute positions unless `enhanced_mask_decoder` (docs/reference.md §9.7).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
EMBEDDING_SHARING = ("shared", "gdes")  # ELECTRA's word table: plainly shared, or DeBERTa-V3's GDES


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    embedding_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.1
    layer_norm_eps: float = 1e-12
    mlm_layer_norm_eps: float = 1e-5
    dtype: str = "float32"
    attention_impl: str = "xla"
    remat: str = "none"
    pre_layer_norm: bool = False  # True: pre-LN layers + a final LayerNorm (not the paper's post-LN recipe)
    # Disentangled attention (DebertaV2). Ignored when attention_type == "absolute".
    attention_type: str = "absolute"  # absolute | disentangled
    position_biased_input: bool = True  # add absolute position embeddings at the input
    position_buckets: int = 256  # log-bucketed relative span S (<= 0: no buckets)
    max_relative_positions: int = -1  # M of the buckets; < 1 means max_position_embeddings
    share_att_key: bool = True  # rel table projected by the layer's own query/key
    pos_att_type: str = "c2p|p2c"  # relative terms, "|"-separated subset of c2p, p2c
    norm_rel_ebd: str = "layer_norm"  # layer_norm | none: LayerNorm on the relative table
    # DA only: the MLM head reads the Enhanced Mask Decoder (absolute positions + the last layer twice).
    enhanced_mask_decoder: bool = False
    # ELECTRA: generator width H_g = round(H * ratio), heads max(1, H_g/64), FFN 4*H_g.
    generator_ratio: float = 0.25
    # ELECTRA with disentangled attention: how the discriminator reads the shared word table
    # (shared: E_G itself; gdes: stop_gradient(E_G) + its own zero-initialised E_delta). docs/reference.md §9.8
    embedding_sharing: str = "shared"

    def __post_init__(self):
        if self.dtype not in _DTYPES:
            raise ValueError(f"model.dtype={self.dtype!r} is not supported; use one of {sorted(_DTYPES)}")
        if self.attention_impl not in ("xla", "cudnn", "auto"):
            raise ValueError(f"model.attention_impl={self.attention_impl!r}; use xla, cudnn or auto")
        if self.remat not in ("none", "full", "dots"):
            raise ValueError(f"model.remat={self.remat!r}; use none, full or dots")
        if self.attention_type not in ("absolute", "disentangled"):
            raise ValueError(f"model.attention_type={self.attention_type!r}; use absolute or disentangled")
        if self.norm_rel_ebd not in ("layer_norm", "none"):
            raise ValueError(f"model.norm_rel_ebd={self.norm_rel_ebd!r}; use layer_norm or none")
        terms = self.pos_att_terms
        if len(set(terms)) != len(terms) or not set(terms) <= {"c2p", "p2c"}:
            raise ValueError(f"model.pos_att_type={self.pos_att_type!r}; use a '|'-separated subset of c2p, p2c")
        if self.enhanced_mask_decoder and not self.disentangled:
            raise ValueError("model.enhanced_mask_decoder=True needs model.attention_type=disentangled "
                             "(absolute models already see positions at the input)")
        if self.type_vocab_size < 0:
            raise ValueError("model.type_vocab_size must be >= 0 (0 = no token-type table)")
        if self.embedding_sharing not in EMBEDDING_SHARING:
            raise ValueError(f"model.embedding_sharing={self.embedding_sharing!r}; use one of "
                             f"{', '.join(EMBEDDING_SHARING)}")
        if self.embedding_sharing == "gdes" and not self.disentangled:
            raise ValueError("model.embedding_sharing=gdes needs model.attention_type=disentangled (absolute "
                             "ELECTRA shares its whole embedding module); set model.embedding_sharing=shared")
        if not 0.0 < self.generator_ratio <= 1.0:
            raise ValueError(f"model.generator_ratio={self.generator_ratio}; use a value in (0, 1]")
        if self.vocab_size <= 0:
            raise ValueError("model.vocab_size must be set (or -1 resolved from the corpus) before building the model")

    @property
    def compute_dtype(self):
        return _DTYPES[self.dtype]

    @property
    def kqv_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def disentangled(self) -> bool:
        return self.attention_type == "disentangled"

    @property
    def pos_att_terms(self) -> tuple:
        """The relative terms, e.g. ("c2p", "p2c"); empty = content-only attention."""
        return tuple(t.strip() for t in self.pos_att_type.lower().split("|") if t.strip())

    @property
    def max_relative(self) -> int:
        """M: the largest relative distance the buckets are fitted to (HF fallback rule)."""
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

    @property
    def relative_span(self) -> int:
        """S: the relative table has 2S rows."""
        return self.position_buckets if self.position_buckets > 0 else self.max_relative

    @classmethod
    def from_config(cls, model_cfg, **overrides) -> "ModelConfig":
        """Builds from a `config.model` ConfigDict; `overrides` fill derived values (vocab)."""
        values = dict(model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else model_cfg)
        values.update(overrides)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known: {sorted(names)}")
        return cls(**values)
