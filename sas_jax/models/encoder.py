"""BERT/ELECTRA post-LayerNorm Transformer encoder with logical axis names.

Parameter names follow Hugging Face's where they can (query/key/value, LayerNorm)
so the converters in `sas_jax/convert` stay a flat table. Every parameter is
created with `nn.with_logical_partitioning`, and the main activations carry
`nn.with_logical_constraint`; the mapping to mesh axes lives in the config
(`sharding.SHARDING_RULES`), never here.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from sas_jax.models import disentangled
from sas_jax.models.attention import dot_product_attention
from sas_jax.models.config import ModelConfig

INIT = nn.initializers.normal(stddev=0.02)  # plain normal, as the reference (not truncated)


def gelu(x):
    return jax.nn.gelu(x, approximate=False)  # exact erf form; JAX's default is tanh


def dense(features: int, axes, *, dtype, name, use_bias=True):
    """A float32-parameter Dense whose kernel [in, out] and bias carry logical axes.

    Attention projections use merged head dims (`heads` names the whole
    heads×head_dim axis, split by heads in contiguous blocks) rather than
    DenseGeneral, whose reshaped init clashes with boxed logical metadata.
    """
    return nn.Dense(
        features,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=nn.with_logical_partitioning(INIT, axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes[-1],)),
        name=name,
    )


def layer_norm(eps, axis_name, *, dtype, name):
    return nn.LayerNorm(
        epsilon=eps,
        dtype=dtype,
        param_dtype=jnp.float32,
        use_fast_variance=False,  # two-pass variance, as torch: needed for parity
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, (axis_name,)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axis_name,)),
        name=name,
    )


def constrain(x, axes):
    return nn.with_logical_constraint(x, axes)


class Embeddings(nn.Module):
    """word (+ position) (+ token type), each of width E → LayerNorm → dropout.

    `absolute` configs (BERT/ELECTRA/SAS): all three tables, LayerNorm over E. The
    E→H projection belongs to each encoder (ELECTRA's generator and discriminator
    share these embeddings but project them differently), so it is not here.

    `disentangled` configs (DebertaV2): positions only if `position_biased_input`,
    token types only if `type_vocab_size > 0`, then `embed_proj` E→H *without*
    bias *before* the LayerNorm over H, then the rows are multiplied by the mask.

    `part` (disentangled configs only) splits the module where the width changes, for
    ELECTRA-DA (`models/electra.py`): "tables" owns only the E-wide tables (`lookup`),
    "projection" only `embed_proj` and the LayerNorm over H (`normalize`); "all" (the
    default, every other model) is both, `__call__ = normalize(lookup(...))`.
    """

    cfg: ModelConfig
    part: str = "all"  # all | tables | projection

    def setup(self):
        c = self.cfg
        if self.part not in ("all", "tables", "projection"):
            raise ValueError(f"Embeddings part={self.part!r}; use all, tables or projection")
        if self.part != "all" and not c.disentangled:
            raise ValueError("Embeddings can be split into tables and projection only for "
                             "attention_type='disentangled' (absolute models normalise over E)")
        if self.part != "projection":
            embed = functools.partial(nn.Embed, param_dtype=jnp.float32, dtype=c.compute_dtype)
            self.word_embeddings = embed(
                c.vocab_size, c.embedding_size,
                embedding_init=nn.with_logical_partitioning(INIT, ("vocab", "embed")))
            if c.position_biased_input:
                self.position_embeddings = embed(
                    c.max_position_embeddings, c.embedding_size,
                    embedding_init=nn.with_logical_partitioning(INIT, (None, "embed")))
            if c.type_vocab_size > 0:
                self.token_type_embeddings = embed(
                    c.type_vocab_size, c.embedding_size,
                    embedding_init=nn.with_logical_partitioning(INIT, (None, "embed")))
        if self.part != "tables":
            if c.disentangled and c.embedding_size != c.hidden_size:
                self.embed_proj = dense(c.hidden_size, ("embed", "hidden"), dtype=c.compute_dtype,
                                        use_bias=False, name="embed_proj")
            self.LayerNorm = layer_norm(c.layer_norm_eps, "embed", dtype=c.compute_dtype, name="LayerNorm")
            self.dropout = nn.Dropout(c.dropout_rate)

    def __call__(self, input_ids_BxL, token_type_ids_BxL=None, *, deterministic: bool,
                 input_mask_BxL=None):
        x = self.lookup(input_ids_BxL, token_type_ids_BxL)
        return self.normalize(x, deterministic=deterministic, input_mask_BxL=input_mask_BxL)

    def lookup(self, input_ids_BxL, token_type_ids_BxL=None, *, word_table_VxE=None):
        """[B, L, E]: word (+ position) (+ token type) rows, summed. `word_table_VxE`
        replaces the word table (ELECTRA-DA's GDES discriminator: sg(E_G) + E_delta)."""
        c = self.cfg
        length = input_ids_BxL.shape[1]
        if word_table_VxE is None:
            x = self.word_embeddings(input_ids_BxL)
        else:  # as nn.Embed: cast the table to the compute dtype, then gather
            x = jnp.take(word_table_VxE.astype(c.compute_dtype), input_ids_BxL, axis=0)
        if c.position_biased_input:
            x = x + self.position_embeddings(jnp.arange(length)[None, :])
        if c.type_vocab_size > 0:
            if token_type_ids_BxL is None:
                token_type_ids_BxL = jnp.zeros_like(input_ids_BxL)
            x = x + self.token_type_embeddings(token_type_ids_BxL)
        return x

    def normalize(self, x, *, deterministic: bool, input_mask_BxL=None):
        """(embed_proj E→H,) LayerNorm, pad rows zeroed (disentangled), dropout."""
        c = self.cfg
        if c.disentangled and c.embedding_size != c.hidden_size:
            x = self.embed_proj(x)
        x = self.LayerNorm(x)
        if c.disentangled and input_mask_BxL is not None:
            x = x * input_mask_BxL[..., None].astype(x.dtype)  # DeBERTa zeroes the pad rows
        x = self.dropout(x, deterministic=deterministic)
        return constrain(x, ("batch", "length", "act_embed"))

    def word_table(self):
        """The [V, E] word table, for tied output logits."""
        return self.word_embeddings.embedding


class EncoderLayer(nn.Module):
    """Post-LN BERT layer; with `disentangled` configs its scores gain c2p + p2c.

    `pre_layer_norm` (not the paper's recipe): x + Attn(LN(x)), then x + FFN(LN(x)),
    with the same LayerNorm parameter names; the Encoder then adds `final_LayerNorm`.

    `rel_table_WxH` is the encoder's LayerNormed relative table, already sliced
    to the rows this length uses (`disentangled.relative_index`); None for
    `absolute` configs.

    `query_BxLxH` (the Enhanced Mask Decoder, docs/reference.md §9.7): queries and
    the attention residual come from it, keys and values from `x_BxLxH` (c2p uses
    the queries, p2c the keys; same relative index). None: both from `x_BxLxH`.
    """

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxH, key_mask_BxL, deterministic: bool, rel_table_WxH=None, query_BxLxH=None):
        c = self.cfg
        dt = c.compute_dtype
        batch, length = x_BxLxH.shape[:2]
        qkv_axes = ("embed", "heads")

        def split_heads(t):  # [..., N*D] -> [..., N, D]; head n owns features [n*D, (n+1)*D)
            return t.reshape(*t.shape[:-1], c.num_heads, c.head_dim)

        query = dense(c.kqv_size, qkv_axes, dtype=dt, name="query")
        key = dense(c.kqv_size, qkv_axes, dtype=dt, name="key")
        value = dense(c.kqv_size, qkv_axes, dtype=dt, name="value")
        # Pre-LN (a documented departure from the paper's post-LN recipe): the attention reads
        # LayerNorm(x) and each sublayer adds to the raw residual; the same LayerNorm names are used.
        residual = x_BxLxH if query_BxLxH is None else query_BxLxH
        pre_ln = (layer_norm(c.layer_norm_eps, "embed", dtype=dt, name="attention_LayerNorm")
                  if c.pre_layer_norm else (lambda t: t))
        attn_in = pre_ln(x_BxLxH)
        query_in = attn_in if query_BxLxH is None else pre_ln(query_BxLxH)
        q, k, v = (constrain(split_heads(proj(t)), ("batch", "length", "act_heads", "act_kv"))
                   for proj, t in ((query, query_in), (key, attn_in), (value, attn_in)))
        bias, scale = None, None
        if c.disentangled:
            terms = c.pos_att_terms
            index, _, _ = disentangled.relative_index_for(c, length)
            # HF applies the hidden dropout to the shared table inside every layer.
            rel = nn.Dropout(c.dropout_rate)(rel_table_WxH, deterministic=deterministic)
            if c.share_att_key:
                pos_key, pos_query = key, query  # biases included, as HF
            else:
                pos_key = dense(c.kqv_size, qkv_axes, dtype=dt, name="pos_key_proj") if "c2p" in terms else None
                pos_query = dense(c.kqv_size, qkv_axes, dtype=dt, name="pos_query_proj") if "p2c" in terms else None
            scale = disentangled.score_scale(c, c.head_dim)
            # Projected once per layer and step ([W, N, D]), never per example.
            bias = disentangled.relative_bias(
                q, k,
                split_heads(pos_query(rel)) if "p2c" in terms else None,
                split_heads(pos_key(rel)) if "c2p" in terms else None,
                index, scale)
        use_dropout = not deterministic and c.attention_dropout_rate > 0
        ctx = dot_product_attention(
            q, k, v, key_mask_BxL,
            dropout_rate=c.attention_dropout_rate,
            dropout_rng=self.make_rng("dropout") if use_dropout else None,
            impl=c.attention_impl,
            bias_BxNxLxL=bias,
            scale=scale,
        )
        out = dense(c.hidden_size, ("heads", "embed"), dtype=dt,
                    name="attention_output")(ctx.reshape(batch, length, c.kqv_size))
        out = nn.Dropout(c.dropout_rate)(out, deterministic=deterministic)
        if c.pre_layer_norm:
            x = residual + out  # the sublayer read LayerNorm(x) (above); the residual stays unnormalised
        else:
            x = layer_norm(c.layer_norm_eps, "embed", dtype=dt, name="attention_LayerNorm")(residual + out)
        x = constrain(x, ("batch", "length", "act_embed"))

        ffn_in = layer_norm(c.layer_norm_eps, "embed", dtype=dt, name="output_LayerNorm")(x) if c.pre_layer_norm else x
        h = dense(c.intermediate_size, ("embed", "mlp"), dtype=dt, name="intermediate")(ffn_in)
        h = constrain(gelu(h), ("batch", "length", "act_mlp"))
        h = dense(c.hidden_size, ("mlp", "embed"), dtype=dt, name="output")(h)
        h = nn.Dropout(c.dropout_rate)(h, deterministic=deterministic)
        x = x + h if c.pre_layer_norm else layer_norm(c.layer_norm_eps, "embed", dtype=dt, name="output_LayerNorm")(x + h)
        return constrain(x, ("batch", "length", "act_embed"))


_REMAT_POLICIES = {
    "full": None,  # recompute everything in the backward pass
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


class Encoder(nn.Module):
    """Optional E→H projection (after the embedding LayerNorm, as ELECTRA) + layers.

    Disentangled configs instead own the relative table `rel_embeddings` [2S, H]
    and its LayerNorm; the normalised table is computed once per forward (only
    the rows this length reaches) and shared by all layers. Their E→H projection
    lives in `Embeddings` (DeBERTa order), so none is made here.

    `emd_positions_1xLxH` (the Enhanced Mask Decoder, docs/reference.md §9.7):
    also returns the EMD states, `(final, emd)`: with H_{L-1} the input of the
    last layer, q = H_{L-1} + positions, then twice q = last_layer(kv=H_{L-1},
    query=q) with the last layer's own weights (and `final_LayerNorm` when pre-LN).
    """

    cfg: ModelConfig

    @nn.compact
    def __call__(self, embedded_BxLxE, key_mask_BxL, *, deterministic: bool, emd_positions_1xLxH=None):
        c = self.cfg
        x = embedded_BxLxE
        rel = None
        if c.disentangled:
            table = self.param(
                "rel_embeddings", nn.with_logical_partitioning(INIT, (None, "embed")),
                (2 * c.relative_span, c.hidden_size), jnp.float32)
            _, lo, hi = disentangled.relative_index_for(c, x.shape[1])
            rel = table[lo:hi + 1].astype(c.compute_dtype)
            if c.norm_rel_ebd == "layer_norm":
                rel = layer_norm(c.layer_norm_eps, "embed", dtype=c.compute_dtype, name="rel_LayerNorm")(rel)
        elif c.embedding_size != c.hidden_size:
            x = dense(c.hidden_size, ("embed", "hidden"), dtype=c.compute_dtype,
                      name="embeddings_project")(x)
        layer_cls = EncoderLayer
        if c.remat != "none":
            layer_cls = nn.remat(EncoderLayer, policy=_REMAT_POLICIES[c.remat], static_argnums=(3,))
        layers = [layer_cls(c, name=f"layer_{i}") for i in range(c.num_layers)]
        below_last = x
        for layer in layers:
            below_last = x
            x = layer(x, key_mask_BxL, deterministic, rel)
        final = (layer_norm(c.layer_norm_eps, "embed", dtype=c.compute_dtype, name="final_LayerNorm")
                 if c.pre_layer_norm else (lambda t: t))  # pre-LN leaves the residual stream unnormalised
        x = final(x)
        if emd_positions_1xLxH is None:
            return x
        query = below_last + emd_positions_1xLxH.astype(below_last.dtype)
        for _ in range(2):  # the last layer again, shared weights: queries move, keys/values stay H_{L-1}
            query = layers[-1](below_last, key_mask_BxL, deterministic, rel, query)
        return x, final(query)
