"""What `config.objective` means: the one home of the model and batch-builder factories.

Every system of the paper is a setting of `config.objective` (corruption, heads),
`config.sas` (cold start, λ schedule, position budget) and `config.model`
(attention type, generator ratio), not a code path:

| corruption | builder (host) | model | step |
|---|---|---|---|
| `sas` | `SasBatchBuilder` (its `store`: a `SampleStore`) | `PretrainingModel` | samples the MLM head for the store |
| `bert`, `unigram`, `uniform` | `StaticBatchBuilder` | `PretrainingModel` | no sampling |
| `electra` | `ElectraBatchBuilder` | `ElectraModel` | generator → Gumbel-max → discriminator |

`objective.mlm` / `objective.rtd` decide which heads (and losses) exist; the
step's metrics carry exactly those losses (`train_step.StepSettings`).
"""
from __future__ import annotations

import numpy as np

from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.corruption.sas_batch import COLD_STARTS, SasBatchBuilder
from sas_jax.corruption.static_batch import STATIC_KINDS, ElectraBatchBuilder, StaticBatchBuilder, electra_budget
from sas_jax.corruption.store import SampleStore
from sas_jax.errors import UserError
from sas_jax.models import ElectraModel, ModelConfig, PretrainingModel

CORRUPTIONS = ("sas", *STATIC_KINDS, "electra")


def check_objective(config) -> None:
    """Refuses objective settings that name no well-defined system (one-line UserError)."""
    o = config.objective
    if o.corruption not in CORRUPTIONS:
        raise UserError(f"objective.corruption={o.corruption!r} is unknown; use one of {', '.join(CORRUPTIONS)}")
    if not (o.mlm or o.rtd):
        raise UserError("objective.mlm and objective.rtd are both False: there is no loss; enable one")
    if o.corruption == "sas" and not o.mlm:
        raise UserError("objective.corruption=sas samples the MLM head: set objective.mlm=True")
    if config.model.get("enhanced_mask_decoder", False):  # docs/reference.md §9.7
        if o.corruption == "electra":
            raise UserError("model.enhanced_mask_decoder=True is not available for objective.corruption=electra "
                            "(absolute attention); set model.enhanced_mask_decoder=False")
        if config.model.attention_type != "disentangled":
            raise UserError("model.enhanced_mask_decoder=True needs model.attention_type=disentangled (absolute "
                            "models already see positions at the input); set model.enhanced_mask_decoder=False")
        if not o.mlm:
            raise UserError("model.enhanced_mask_decoder=True feeds the MLM head: set objective.mlm=True")
    s = config.sas
    if s.cold_start not in COLD_STARTS:
        raise UserError(f"sas.cold_start={s.cold_start!r} is unknown; use one of {', '.join(COLD_STARTS)}")
    if int(s.cold_start_epochs) < 1:
        raise UserError(f"sas.cold_start_epochs={s.cold_start_epochs} must be at least 1 (the first visit "
                        "has no stored sample to read)")
    if o.corruption == "electra":
        if not (o.mlm and o.rtd):
            raise UserError("objective.corruption=electra trains a generator (MLM) and a discriminator (RTD): "
                            "set objective.mlm=True and objective.rtd=True")
        if o.random_token_rate:
            raise UserError("objective.random_token_rate is BERT's; ELECTRA keeps the unmasked 15% unchanged: "
                            "set it to 0")
        if config.model.attention_type != "absolute":
            raise UserError("objective.corruption=electra needs model.attention_type=absolute (the generator and "
                            "discriminator share the embedding LayerNorm)")
        need = electra_budget(config.sas.mask_rate, config.seq_len)
        if config.sas.max_predictions < need:
            raise UserError(f"sas.max_predictions={config.sas.max_predictions} < ELECTRA's budget "
                            f"int((mask_rate+0.005)*seq_len)={need}; raise sas.max_predictions")


def make_model(config, vocab_size: int):
    """The Flax module of the row: `ElectraModel` for electra, else `PretrainingModel` with its heads."""
    cfg = ModelConfig.from_config(config.model, vocab_size=vocab_size)
    if config.objective.corruption == "electra":
        return ElectraModel(cfg)
    return PretrainingModel(cfg, use_mlm=bool(config.objective.mlm), use_rtd=bool(config.objective.rtd))


def make_batch_builder(config, corpus, vocab_size: int, example_ids, steps_per_epoch: int = 1):
    """The row's batch builder for the example ids this process owns.

    Only `sas` keeps samples: its builder's `store` holds a row per owned example;
    every other builder's `store` is None.
    """
    o, s, tok = config.objective, config.sas, corpus.tokenizer
    common = dict(word_start_table=tok.word_start_table, special_table=tok.special_table, pad_id=tok.pad_id,
                  mask_id=tok.mask_id, vocab_size=vocab_size, mask_rate=s.mask_rate,
                  max_predictions=s.max_predictions, seed=config.seed)
    if o.corruption == "sas":
        store = SampleStore(example_ids, max_predictions=s.max_predictions, seq_len=config.seq_len,
                            vocab_size=vocab_size)
        sampler = (cold_start_sampler(s.cold_start, config, corpus, vocab_size)
                   if s.cold_start in ("unigram", "uniform") else None)
        return SasBatchBuilder(store=store, sampler=sampler, policy=s.position_policy, cold_start=s.cold_start,
                               cold_start_steps=cold_start_steps(config, steps_per_epoch), **common)
    if o.corruption == "electra":
        return ElectraBatchBuilder(mask_token_rate=o.mask_token_rate, **common)
    sampler = None if o.corruption == "bert" else cold_start_sampler(o.corruption, config, corpus, vocab_size)
    return StaticBatchBuilder(kind=o.corruption, sampler=sampler, mask_token_rate=o.mask_token_rate,
                              random_token_rate=o.random_token_rate, **common)


def cold_start_steps(config, steps_per_epoch: int) -> int:
    """Steps of the cold phase: every visit of the first `sas.cold_start_epochs` epochs is cold."""
    return int(config.sas.cold_start_epochs) * int(steps_per_epoch)


def rtd_off_steps(config, steps_per_epoch: int) -> int:
    """Steps without RTD loss: SAS's `mlm` cold phase (BERT masking has no replaced-token task)."""
    if config.objective.corruption == "sas" and config.sas.cold_start == "mlm":
        return cold_start_steps(config, steps_per_epoch)
    return 0


def cold_start_sampler(kind: str, config, corpus, vocab_size: int) -> ColdStartSampler:
    """Unigram (sqrt-unigram for the first `sas.warmup_steps`) or uniform context-free draws."""
    counts = None
    if kind == "unigram":
        counts = np.zeros(vocab_size, np.int64)
        corpus_counts = np.asarray(corpus.unigram_counts)
        counts[: corpus_counts.size] = corpus_counts  # a model vocab larger than the tokenizer's
    return ColdStartSampler(kind, vocab_size, counts, config.sas.warmup_steps)
