"""FLOPs accounting in two conventions (docs/reference.md §12 paper, §13 live MFU).

1. **Paper convention ("Train FLOPs").** ELECTRA's counting rules, reused by the
   SAS paper's tables: forward FLOPs per token of the input embedding, every
   layer and the heads, with elementwise ops charged per element and lookups as
   dense one-hot matmuls; `train = 2 × batch × steps × seq × forward_per_token`.
   Each rule is a function returning a dict of named per-unit terms
   (`layer_flops`, `embedding_flops`, `mlm_head_flops`, `rtd_head_flops`,
   `disentangled_layer_flops`); `forward_components(config)` composes them from
   the config alone (sizes, E, generator ratio, seq_len, objective; with
   `model.enhanced_mask_decoder`, the component `mlm_emd`: two more passes of
   one layer on the MLM path), and
   `train_flops(config)` gives the total. Reproduces the paper's BERT-Small
   1.274e18, ELECTRA-Small 1.294e18 and DeBERTa-Small 1.381e18.

2. **Live MFU convention.** Matmul FLOPs, forward + backward (6 per parameter
   use): `model_flops_per_token(config)`, `model_flops_per_step(config)`,
   `device_peak_flops(device_kind)` and `mfu(...)`. Never compare numbers across
   the two conventions.

CLI (the last line is the paper-convention total, `train FLOPs (paper
convention): 1.274e+18`, always in that format)::

    python -m sas_jax.flops --config=configs/sas_small.py [--config.seq_len=512] [--vocab_size=32000]

A config whose `model.vocab_size` is -1 ("from the tokenizer") is costed with
`vocab_size=` if given, else with the paper's 30522 (the CLI prints a note).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Optional

from sas_jax import objectives
from sas_jax.errors import UserError
from sas_jax.models import disentangled
from sas_jax.models.config import ModelConfig
from sas_jax.models.electra import generator_config

PAPER_VOCAB_SIZE = 30522  # BERT's uncased WordPiece vocabulary, used by the paper's tables
OUTPUT_FRAC = 20 / 128  # MLM head charged on 0.15625 of positions (ELECTRA: 80 per 512)
TRAIN_FACTOR = 2  # paper convention: backward costs the same as forward

# Elementwise costs per element (docs/reference.md §12.1).
DROPOUT, LAYER_NORM, GELU, SOFTMAX = 4, 5, 8, 5
# DeBERTa's calibrated allowance (docs/reference.md §12.3): 11 per (head, query, key) score, 11 per hidden unit.
DA_SCORE_ALLOWANCE = SOFTMAX + DROPOUT + 1 + 1  # softmax, dropout, scale, add
DA_HIDDEN_ALLOWANCE = 1 + DROPOUT + 1 + LAYER_NORM  # bias, dropout, residual, LayerNorm


# ------------------------------------------------------------ paper convention: rules


def layer_flops(hidden: int, ffn: int, heads: int, kqv: int, seq_len: int, *,
                layer_norm_fix: bool = True) -> dict:
    """One encoder layer, forward FLOPs per token (docs/reference.md §12.2).

    `layer_norm_fix=False` charges the post-attention LayerNorm as the public
    ELECTRA script does (5 per token instead of 5·h); only for tests of the rule.
    The output projection is charged `2·h²` and probabilities × V `2·h·s`, as the
    rules write them (kqv = h in every paper configuration).
    """
    h, f, H, s = hidden, ffn, heads, seq_len
    return {
        "qkv": 3 * 2 * h * kqv + 3 * kqv,
        "scores": 2 * kqv * s,
        "score_softmax_dropout_scale": (SOFTMAX + DROPOUT + 1) * H * s,
        "probs_x_v": 2 * h * s,
        "attention_output": 2 * h * h + h + DROPOUT * h + h,
        "attention_layer_norm": LAYER_NORM * h if layer_norm_fix else LAYER_NORM,
        "ffn_in": 2 * h * f + f + GELU * f,
        "ffn_out": 2 * h * f + h + DROPOUT * h + h + LAYER_NORM * h,
    }


def embedding_flops(embedding: int, hidden: int, vocab_size: int, seq_len: int) -> dict:
    """Input embedding, forward FLOPs per token (docs/reference.md §12.2): lookups as dense one-hot matmuls.

    Position and token-type lookups are always charged (`2·e·(s + 2)`), also for
    disentangled models (the rules cost DeBERTa as the BERT-style model).
    """
    e, h, V, s = embedding, hidden, vocab_size, seq_len
    out = {
        "token_lookup": 2 * e * V,
        "position_type_lookup": 2 * e * (s + 2),
        "embedding_sum": 2 * e,
        "layer_norm": LAYER_NORM * e,
        "dropout": DROPOUT * e,
    }
    if e != h:
        out["projection"] = 2 * e * h + h
    return out


def mlm_head_flops(hidden: int, embedding: int, vocab_size: int) -> dict:
    """MLM head, forward FLOPs per *predicted position* (docs/reference.md §12.2); charge × `OUTPUT_FRAC`."""
    h, e, V = hidden, embedding, vocab_size
    return {
        "dense": 2 * h * e + e,
        "gelu": GELU * e,
        "layer_norm": LAYER_NORM * e,
        "logits": 2 * e * V,
        "softmax": SOFTMAX * V,
        "target": 2 * V,
    }


def rtd_head_flops(hidden: int) -> dict:
    """RTD head, forward FLOPs per token, at every position (docs/reference.md §12.2)."""
    h = hidden
    return {"dense": 2 * h * h + h, "gelu": GELU * h, "logit": 2 * h}


def disentangled_layer_flops(hidden: int, heads: int, kqv: int, seq_len: int, *,
                             terms=("c2p", "p2c"), allowance: bool = True,
                             project_relative: bool = False) -> dict:
    """What disentangled attention adds to one layer, forward FLOPs per token (docs/reference.md §12.3).

    The relative span is `2k = 2·s` (k, the largest relative distance, = seq_len).
    Each score term in `terms` (c2p `Q_c·(P·W_k)ᵀ`, p2c `K_c·(P·W_q)ᵀ`) costs
    `2·kqv·2k`. `allowance` adds the calibrated `11·H·s + 11·h`.
    `project_relative=True` also charges the projection of the `2k × h` relative
    table per example (not the paper's convention: overshoots by ~15 %).
    """
    h, H, s = hidden, heads, seq_len
    span = 2 * s
    out = {}
    for t in terms:
        out[t] = 2 * kqv * span
    if project_relative:
        for t in terms:  # 2k×h table times an h×kqv matrix, per example, spread over s tokens
            out[f"{t}_relative_projection"] = 2 * span * h * kqv / s
    if allowance:
        out["da_allowance_scores"] = DA_SCORE_ALLOWANCE * H * s
        out["da_allowance_hidden"] = DA_HIDDEN_ALLOWANCE * h
    return out


# ------------------------------------------------------------ paper convention: composition


@dataclasses.dataclass(frozen=True)
class Component:
    """One part of the forward pass: `terms` per unit, `count` units per token."""

    name: str  # e.g. "embedding", "layer", "generator.mlm_head"
    terms: Mapping[str, float]  # named forward FLOPs per unit
    count: float  # units per token: 1, n_layers, or OUTPUT_FRAC (predicted positions)
    unit: str = "token"  # what one unit is

    @property
    def per_unit(self) -> float:
        return float(sum(self.terms.values()))

    @property
    def per_token(self) -> float:
        return self.per_unit * self.count


def resolve_vocab_size(config, vocab_size: Optional[int] = None) -> tuple:
    """(V, note): `vocab_size` if given, else config.model.vocab_size; -1 → 30522 with a note."""
    if vocab_size is not None:
        if vocab_size <= 0:
            raise ValueError(f"vocab_size={vocab_size} must be positive")
        return int(vocab_size), None
    v = int(config.model.vocab_size)
    if v > 0:
        return v, None
    return PAPER_VOCAB_SIZE, (f"model.vocab_size={v} means 'from the tokenizer'; costed with the paper's "
                              f"V={PAPER_VOCAB_SIZE} (pass --vocab_size for the real one)")


def model_config(config, vocab_size: Optional[int] = None) -> ModelConfig:
    """The validated `ModelConfig` of `config.model`, with the vocabulary resolved."""
    v, _ = resolve_vocab_size(config, vocab_size)
    return ModelConfig.from_config(config.model, vocab_size=v)


def _model_config(config, vocab_size: Optional[int], model_cfg: Optional[ModelConfig]) -> ModelConfig:
    """`model_cfg` when the caller has it (built once, e.g. `objectives.Objective.model_config`), else built."""
    return model_cfg if model_cfg is not None else model_config(config, vocab_size)


def _encoder_components(cfg: ModelConfig, seq_len: int, prefix: str, *, layer_norm_fix: bool,
                        da_allowance: bool, da_project_relative: bool) -> list:
    layer = layer_flops(cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, cfg.kqv_size, seq_len,
                        layer_norm_fix=layer_norm_fix)
    if cfg.disentangled:
        layer.update(disentangled_layer_flops(cfg.hidden_size, cfg.num_heads, cfg.kqv_size, seq_len,
                                              terms=cfg.pos_att_terms, allowance=da_allowance,
                                              project_relative=da_project_relative))
    return [
        Component(prefix + "embedding",
                  embedding_flops(cfg.embedding_size, cfg.hidden_size, cfg.vocab_size, seq_len), 1),
        Component(prefix + "layer", layer, cfg.num_layers, "layer"),
    ]


def forward_components(config, *, vocab_size: Optional[int] = None, model_cfg: Optional[ModelConfig] = None,
                       output_frac: float = OUTPUT_FRAC, layer_norm_fix: bool = True, da_allowance: bool = True,
                       da_project_relative: bool = False) -> list:
    """The forward pass of `config`'s pre-training model as a list of `Component`s.

    - sas / bert / unigram / uniform: embedding + layers, + MLM head (at
      `output_frac` of positions) if `objective.mlm`, + RTD head if `objective.rtd`.
    - electra: the discriminator's embedding + layers (+ RTD head if
      `objective.rtd`), plus the generator's own embedding (lookup charged again,
      with its own projection E→H_gen), layers and MLM head; the generator's shape is
      `models.electra.generator_config`.
    - disentangled attention: every layer adds `disentangled_layer_flops`; for electra
      (ELECTRA-DA) the generator's layers too, at its own width. Its shared word table is
      still charged per network, as ELECTRA's; GDES's table sum (`sg(E_G) + E_delta`) is
      once per step, not per token, and is not charged.
    - `model.enhanced_mask_decoder` (with an MLM head): `mlm_emd`, the last layer
      run twice more over every position (docs/reference.md §9.7), each pass
      charged as one layer; the absolute position lookup is already in the
      embedding's charge (the BERT-style rule), the addition (h) is not charged.

    `model_cfg`, the resolved `ModelConfig` of `config.model` where the caller has it,
    is used instead of building it again (`vocab_size` is then unused). The other
    keyword options switch single rules away from the paper's convention (for tests
    and what-ifs); the defaults are the paper's.
    """
    cfg = _model_config(config, vocab_size, model_cfg)
    s = int(config.seq_len)
    heads = objectives.heads(config)
    mlm, rtd, electra = heads.mlm, heads.rtd, heads.generator
    opts = dict(layer_norm_fix=layer_norm_fix, da_allowance=da_allowance,
                da_project_relative=da_project_relative)
    prefix = "discriminator." if electra else ""
    comps = _encoder_components(cfg, s, prefix, **opts)
    if mlm and not electra and cfg.enhanced_mask_decoder:
        layer = comps[-1]
        comps.append(Component(prefix + "mlm_emd", dict(layer.terms), 2, "layer pass"))
    if mlm and not electra:
        comps.append(Component(prefix + "mlm_head", mlm_head_flops(cfg.hidden_size, cfg.embedding_size,
                                                                    cfg.vocab_size),
                               output_frac, "predicted position"))
    if rtd:
        comps.append(Component(prefix + "rtd_head", rtd_head_flops(cfg.hidden_size), 1))
    if electra:
        gen = generator_config(cfg)
        comps += _encoder_components(gen, s, "generator.", **opts)
        comps.append(Component("generator.mlm_head", mlm_head_flops(gen.hidden_size, gen.embedding_size,
                                                                     gen.vocab_size),
                               output_frac, "predicted position"))
    return comps


def forward_flops_per_token(config, **options) -> float:
    """Paper convention: forward FLOPs per token (options as `forward_components`)."""
    return float(sum(c.per_token for c in forward_components(config, **options)))


def train_flops(config, *, train_factor: float = TRAIN_FACTOR, **options) -> float:
    """Paper convention: `train_factor × batch × steps × seq × forward_per_token` (factor 2)."""
    tokens = int(config.batch_size) * int(config.num_train_steps) * int(config.seq_len)
    return float(train_factor * tokens * forward_flops_per_token(config, **options))


# ------------------------------------------------------------ live MFU convention


def matmul_params(cfg: ModelConfig) -> int:
    """N_mm: non-embedding matmul parameters of one encoder (Q, K, V, O, FFN; + E→H projection)."""
    per_layer = 4 * cfg.hidden_size * cfg.kqv_size + 2 * cfg.hidden_size * cfg.intermediate_size
    proj = cfg.embedding_size * cfg.hidden_size if cfg.embedding_size != cfg.hidden_size else 0
    return cfg.num_layers * per_layer + proj


def relative_rows(cfg: ModelConfig, seq_len: int) -> int:
    """R: rows of the relative table the implementation multiplies at this length.

    Taken from `models.disentangled.relative_index` (the slice the encoder uses):
    2L − 1 while every distance keeps its own bucket (L ≤ 129 with 256 buckets),
    fewer beyond, where log buckets merge distances.
    """
    _, lo, hi = disentangled.relative_index_for(cfg, seq_len)
    return hi - lo + 1


def _live_encoder(cfg: ModelConfig, seq_len: int, prefix: str) -> dict:
    out = {
        prefix + "encoder_matmuls": 6 * matmul_params(cfg),
        prefix + "attention": 12 * cfg.num_layers * seq_len * cfg.kqv_size,
    }
    if cfg.disentangled and cfg.pos_att_terms:
        # forward 2·kqv·R per term, ×3 for fwd+bwd. The per-step projection of the
        # (sliced) relative table is left out: ~0.05 % at Small shapes.
        out[prefix + "relative_attention"] = (6 * len(cfg.pos_att_terms) * cfg.kqv_size
                                              * relative_rows(cfg, seq_len) * cfg.num_layers)
    return out


def _live_emd(cfg: ModelConfig, seq_len: int) -> float:
    """The Enhanced Mask Decoder: two more passes of one layer at every position (fwd + bwd)."""
    per_layer = 6 * (4 * cfg.hidden_size * cfg.kqv_size + 2 * cfg.hidden_size * cfg.intermediate_size)
    per_layer += 12 * seq_len * cfg.kqv_size
    if cfg.disentangled and cfg.pos_att_terms:
        per_layer += 6 * len(cfg.pos_att_terms) * cfg.kqv_size * relative_rows(cfg, seq_len)
    return 2 * per_layer


def _live_mlm(cfg: ModelConfig, predictions: int, seq_len: int) -> float:
    return 6 * (cfg.hidden_size * cfg.embedding_size + cfg.embedding_size * cfg.vocab_size) * predictions / seq_len


def model_flops_components(config, *, vocab_size: Optional[int] = None,
                           model_cfg: Optional[ModelConfig] = None) -> dict:
    """Live MFU convention: named model FLOPs per token (fwd + bwd, matmuls only).

    The MLM head is charged at the static slots `P = config.sas.max_predictions`
    per row (every objective gathers that many, valid or not), spread over `s`;
    `mlm_emd` (with `model.enhanced_mask_decoder`) two more layer passes per token.
    `model_cfg` as in `forward_components`.
    """
    cfg = _model_config(config, vocab_size, model_cfg)
    s = int(config.seq_len)
    p = int(config.sas.max_predictions)
    heads = objectives.heads(config)
    mlm, rtd, electra = heads.mlm, heads.rtd, heads.generator
    prefix = "discriminator." if electra else ""
    out = _live_encoder(cfg, s, prefix)
    if mlm and not electra and cfg.enhanced_mask_decoder:
        out[prefix + "mlm_emd"] = _live_emd(cfg, s)
    if mlm and not electra:
        out[prefix + "mlm_head"] = _live_mlm(cfg, p, s)
    if rtd:
        out[prefix + "rtd_head"] = 6 * (cfg.hidden_size ** 2 + cfg.hidden_size)
    if electra:
        gen = generator_config(cfg)
        out.update(_live_encoder(gen, s, "generator."))
        out["generator.mlm_head"] = _live_mlm(gen, p, s)
    return {k: float(v) for k, v in out.items()}


def model_flops_per_token(config, *, vocab_size: Optional[int] = None,
                          model_cfg: Optional[ModelConfig] = None) -> float:
    """Live MFU convention: `6·N_mm + 12·n_layers·s·kqv + heads` (+ generator, + DA terms)."""
    return float(sum(model_flops_components(config, vocab_size=vocab_size, model_cfg=model_cfg).values()))


def model_flops_per_step(config, *, vocab_size: Optional[int] = None,
                         model_cfg: Optional[ModelConfig] = None) -> float:
    """Live MFU convention: model FLOPs of one optimizer step (global batch × seq_len tokens)."""
    return (model_flops_per_token(config, vocab_size=vocab_size, model_cfg=model_cfg)
            * int(config.batch_size) * int(config.seq_len))


def xla_cost(compiled) -> dict:
    """XLA's cost analysis of a compiled executable as one dict (`flops`, `bytes accessed`, ...).

    `Compiled.cost_analysis()` returns a dict in newer jax and a list of one dict per
    program in older ones (and None where the backend has none); the lists are summed.
    """
    raw = compiled.cost_analysis()
    if raw is None:
        return {}
    parts = [raw] if isinstance(raw, dict) else [p for p in raw if p]
    out: dict = {}
    for part in parts:
        for k, v in part.items():
            if isinstance(v, (int, float)):
                out[k] = out.get(k, 0.0) + float(v)
    return out


def compiled_step_flops(trainer, batch=None) -> dict:
    """XLA's count of the trainer's compiled train step beside the live-convention one.

    Lowers and compiles `trainer.step_fn` at the trainer's state and a batch of step 0;
    the cost analysis is of the per-device program, so it is multiplied by the mesh's
    devices. Returns {xla_flops_per_step, model_flops_per_step, ratio (xla / model),
    bytes_accessed}. XLA counts what the live convention leaves out: the elementwise
    work (GELU, LayerNorm, softmax, dropout, the loss and the sampler), the optimizer
    update, and every matmul at 2·M·N·K (docs/benchmarks.md, "XLA's FLOPs").
    """
    if batch is None:
        batch, _ = trainer.make_batch(0)
    compiled = trainer.step_fn.lower(trainer.state, batch, trainer.step_key).compile()
    cost = xla_cost(compiled)
    devices = int(trainer.mesh.size)
    xla = cost.get("flops", 0.0) * devices
    model = float(trainer.flops_per_step)
    return {"xla_flops_per_step": xla, "model_flops_per_step": model, "ratio": xla / model if model else None,
            "bytes_accessed": cost.get("bytes accessed", 0.0) * devices}


# Dense bf16 peaks per device (never the structured-sparsity figures). V100 has no
# bf16: its entry is the fp16 tensor-core peak (SXM2 125, PCIe 112).
DEVICE_PEAK_BF16_FLOPS = {
    "H100 SXM": 989e12,
    "H100 PCIe": 756e12,
    "H200": 989e12,
    "A100": 312e12,
    "V100 SXM2": 125e12,
    "V100 PCIe": 112e12,
    "TPU v4": 275e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
}

# `jax.devices()[0].device_kind` patterns, tried in order; a None entry means "known
# to be some other part" (e.g. H100 NVL, GH200, TPU v4 lite), so it is not guessed.
_DEVICE_PATTERNS = (
    (r"\bNVL\b", None),
    (r"\bGH200\b", None),
    (r"\bH100\b.*\bPCIe\b", "H100 PCIe"),
    (r"\bH100\b", "H100 SXM"),  # "NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 ..."
    (r"\bH200\b", "H200"),
    (r"\bA100\b", "A100"),  # SXM4 and PCIe share the dense bf16 peak
    (r"\bV100S\b", None),
    (r"\bV100\b.*\bPCIE\b", "V100 PCIe"),
    (r"\bV100\b", "V100 SXM2"),
    (r"^TPU v4$", "TPU v4"),
    (r"^TPU v5 ?(lite|e)$", "TPU v5e"),
    (r"^TPU v5p?$", "TPU v5p"),  # JAX names a v5p chip "TPU v5"
)


def device_family(device_kind: str) -> Optional[str]:
    """The `DEVICE_PEAK_BF16_FLOPS` key for a `device_kind` string, or None if unknown."""
    kind = " ".join(str(device_kind).split())
    for pattern, family in _DEVICE_PATTERNS:
        if re.search(pattern, kind, flags=re.IGNORECASE):
            return family
    return None


def device_peak_flops(device_kind: str) -> Optional[float]:
    """Dense bf16 peak FLOP/s of one device, or None for a device not in the table."""
    family = device_family(device_kind)
    return None if family is None else DEVICE_PEAK_BF16_FLOPS[family]


def mfu(flops_per_step: float, step_seconds: float, num_devices: int, device_kind: str) -> Optional[float]:
    """Model FLOPs utilisation: flops_per_step / step_seconds / (num_devices × peak); None if the peak is unknown."""
    if step_seconds <= 0 or num_devices <= 0:
        raise ValueError(f"step_seconds={step_seconds} and num_devices={num_devices} must be positive")
    peak = device_peak_flops(device_kind)
    if peak is None:
        return None
    return flops_per_step / step_seconds / (num_devices * peak)


# ------------------------------------------------------------ report / CLI


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def format_report(config, *, vocab_size: Optional[int] = None, terms: bool = False, name: str = "") -> str:
    """The CLI's text; its last line is `train FLOPs (paper convention): <x.xxxe+NN>`."""
    v, note = resolve_vocab_size(config, vocab_size)
    cfg = model_config(config, v)  # built once, passed to every rule below
    heads = objectives.heads(config)
    corruption, mlm, rtd = heads.corruption, heads.mlm, heads.rtd
    s, b, steps = int(config.seq_len), int(config.batch_size), int(config.num_train_steps)
    lines = []
    if name:
        lines.append(f"config: {name}")
    lines.append(f"objective: corruption={corruption} mlm={mlm} rtd={rtd}; attention={cfg.attention_type}")
    lines.append(f"shape: layers={cfg.num_layers} h={cfg.hidden_size} f={cfg.intermediate_size} "
                 f"heads={cfg.num_heads} kqv={cfg.kqv_size} e={cfg.embedding_size} V={cfg.vocab_size}; "
                 f"batch={b} seq={s} steps={steps}")
    if heads.generator:
        g = generator_config(cfg)
        lines.append(f"generator: layers={g.num_layers} h={g.hidden_size} f={g.intermediate_size} "
                     f"heads={g.num_heads} (ratio {cfg.generator_ratio:g})")
    if note:
        lines.append(f"note: {note}")

    comps = forward_components(config, model_cfg=cfg)
    total = sum(c.per_token for c in comps)
    lines.append("")
    lines.append("Paper convention: forward FLOPs per token (ELECTRA's rules, docs/reference.md §12)")
    lines.append(f"  {'component':<26}{'per unit':>16}  {'x count':<10}{'per token':>18}{'share':>9}")
    for c in comps:
        lines.append(f"  {c.name:<26}{_fmt(c.per_unit):>16}  {c.count:<10g}{_fmt(c.per_token):>18}"
                     f"{100 * c.per_token / total:>8.2f}%")
        if terms:
            for k, x in c.terms.items():
                lines.append(f"      {k:<30}{_fmt(x):>16}")
    lines.append(f"  {'forward per token':<26}{'':>16}  {'':<10}{_fmt(total):>18}{100:>8.2f}%")
    train = train_flops(config, model_cfg=cfg)
    lines.append(f"  train = {TRAIN_FACTOR} x {b} x {steps} x {s} x forward = {train:.5e}")

    live = model_flops_components(config, model_cfg=cfg)
    live_total = sum(live.values())
    lines.append("")
    lines.append("Live MFU convention: model FLOPs per token, fwd+bwd, matmuls only "
                 "(docs/reference.md §13); not comparable")
    for k, x in live.items():
        lines.append(f"  {k:<34}{_fmt(x):>18}{100 * x / live_total:>8.2f}%")
    lines.append(f"  {'model FLOPs per token':<34}{_fmt(live_total):>18}")
    lines.append(f"  {'model FLOPs per step':<34}{model_flops_per_step(config, model_cfg=cfg):>18.4e}"
                 f"  ({b} x {s} tokens)")
    lines.append("")
    lines.append(f"train FLOPs (paper convention): {train:.3e}")
    return "\n".join(lines)


def main(argv=None) -> int:  # pragma: no cover - exercised through a subprocess in the tests
    """The CLI (module docstring); a bad config, override or flag is one line and exit 2 (`sas_jax.cli`)."""
    from absl import flags  # noqa: PLC0415 (flags are defined here, not at import: sas_jax.main has --config too)

    from sas_jax import cli, config_lib  # noqa: PLC0415

    flags.DEFINE_string("config", None, "Experiment config file (path[:variant], or a name of configs/); "
                        "override any field with --config.KEY=VALUE.")
    vocab_flag = flags.DEFINE_integer("vocab_size", None, "Vocabulary size (for configs with model.vocab_size=-1).")
    terms_flag = flags.DEFINE_bool("terms", False, "Also list the named terms of every component.")
    flags.mark_flags_as_required(["config"])

    def run(args, overrides):
        if len(args) > 1:
            raise UserError(f"unexpected arguments {args[1:]}; config overrides look like --config.KEY=VALUE")
        spec = flags.FLAGS.config
        config = config_lib.load_config(spec, overrides)
        if vocab_flag.value is not None and vocab_flag.value <= 0:
            raise UserError(f"--vocab_size={vocab_flag.value} must be a positive vocabulary size, e.g. 30522")
        try:
            model_config(config, vocab_flag.value)  # validates the shape: its ValueErrors are the config's
        except ValueError as e:
            raise UserError(f"{spec}: {e}") from None
        print(format_report(config, vocab_size=vocab_flag.value, terms=terms_flag.value, name=spec))

    return cli.entry_point(cli.run_absl)(run, argv, prog="python -m sas_jax.flops")


if __name__ == "__main__":
    raise SystemExit(main())
