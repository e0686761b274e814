"""What `config.objective` means: the one chooser of the model, batch builder and step settings.

`build(config, vocab_size) -> Objective` makes every choice a run needs in one call
(as nanodo's `get_model_and_loss`): `objective.model` (and its `model_config`),
`objective.make_builder(corpus, example_ids, steps_per_epoch)` and
`objective.step_settings(steps_per_epoch)`; `heads(config)` is the part of it
that `flops.py` costs. Nothing else reads `config.objective` to choose.

Every system of the paper is a setting of `config.objective` (corruption, heads),
`config.sas` (cold start, λ schedule, position budget) and `config.model`
(attention type, generator ratio), not a code path:

| corruption | builder (host) | model | step |
|---|---|---|---|
| `sas` | `SasBatchBuilder` (its `store`: a `SampleStore`) | `PretrainingModel` | samples the MLM head for the store |
| `bert`, `unigram`, `uniform` | `StaticBatchBuilder` | `PretrainingModel` | no sampling |
| `electra` | `ElectraBatchBuilder` | `ElectraModel` | generator → Gumbel-max → discriminator |

`electra` runs on either attention type: absolute (ELECTRA) or disentangled (ELECTRA-DA,
with `model.embedding_sharing` shared or gdes; docs/reference.md §9.8).

`objective.mlm` / `objective.rtd` decide which heads (and losses) exist; the
step's metrics carry exactly those losses (`train_step.StepSettings`, filled here).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import numpy as np

from sas_jax.corruption.batch import BatchBuilder
from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.corruption.sas_batch import COLD_STARTS, SasBatchBuilder
from sas_jax.corruption.static_batch import STATIC_KINDS, ElectraBatchBuilder, StaticBatchBuilder, electra_budget
from sas_jax.corruption.store import SampleStore
from sas_jax.errors import UserError
from sas_jax.models import ElectraModel, ModelConfig, PretrainingModel
from sas_jax.models.config import EMBEDDING_SHARING
from sas_jax.train_step import StepSettings

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
                            "(the generator/discriminator pair has none); set model.enhanced_mask_decoder=False")
        if config.model.attention_type != "disentangled":
            raise UserError("model.enhanced_mask_decoder=True needs model.attention_type=disentangled (absolute "
                            "models already see positions at the input); set model.enhanced_mask_decoder=False")
        if not o.mlm:
            raise UserError("model.enhanced_mask_decoder=True feeds the MLM head: set objective.mlm=True")
    sharing = config.model.get("embedding_sharing", "shared")
    if sharing not in EMBEDDING_SHARING:
        raise UserError(f"model.embedding_sharing={sharing!r} is unknown; use one of {', '.join(EMBEDDING_SHARING)}")
    if sharing == "gdes" and (o.corruption != "electra" or config.model.attention_type != "disentangled"):
        raise UserError("model.embedding_sharing=gdes splits the word table between ELECTRA's generator and "
                        "discriminator on disentangled attention (objective.corruption=electra, "
                        "model.attention_type=disentangled, e.g. configs/electra_da_small.py); "
                        "set model.embedding_sharing=shared")
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
        need = electra_budget(config.sas.mask_rate, config.seq_len)
        if config.sas.max_predictions < need:
            raise UserError(f"sas.max_predictions={config.sas.max_predictions} < ELECTRA's budget "
                            f"int((mask_rate+0.005)*seq_len)={need}; raise sas.max_predictions")


@dataclasses.dataclass(frozen=True)
class Heads:
    """Which networks and losses a row trains: read by the model, the step and `flops.py`."""

    corruption: str = "sas"
    mlm: bool = True  # MLM head and loss (ELECTRA: the generator's)
    rtd: bool = True  # RTD head and loss (ELECTRA: the discriminator's)

    @property
    def generator(self) -> bool:
        """ELECTRA: a generator network feeds the discriminator on the device."""
        return self.corruption == "electra"

    @property
    def sample(self) -> bool:
        """SAS: the step samples the MLM head for the store."""
        return self.corruption == "sas"


def heads(config) -> Heads:
    """The `Heads` of `config.objective` (a config without one, e.g. an old run's: SAS's)."""
    o = config.get("objective") if hasattr(config, "get") else getattr(config, "objective", None)
    if o is None:
        return Heads()
    return Heads(str(o.corruption), bool(o.mlm), bool(o.rtd))


@dataclasses.dataclass(frozen=True, eq=False)
class Objective:
    """What a run of `config` trains, chosen once by `build`: the model, its batch builder and
    its step settings (the last two need the data order's `steps_per_epoch`)."""

    config: Any  # the run's ConfigDict; read only here
    heads: Heads
    model_config: ModelConfig  # vocabulary resolved
    model: nn.Module  # `ElectraModel` for electra, else `PretrainingModel` with the row's heads
    builder_class: type[BatchBuilder]  # `SasBatchBuilder`, `StaticBatchBuilder` or `ElectraBatchBuilder`

    @property
    def vocab_size(self) -> int:
        return self.model_config.vocab_size

    def make_builder(self, corpus, example_ids, steps_per_epoch: int = 1) -> BatchBuilder:
        """The row's batch builder for the example ids this process owns.

        Only `sas` keeps samples: its builder's `store` holds a row per owned example;
        every other builder's `store` is None.
        """
        config, vocab_size = self.config, self.vocab_size
        o, s, tok = config.objective, config.sas, corpus.tokenizer
        common = dict(word_start_table=tok.word_start_table, special_table=tok.special_table, pad_id=tok.pad_id,
                      mask_id=tok.mask_id, vocab_size=vocab_size, mask_rate=s.mask_rate,
                      max_predictions=s.max_predictions, seed=config.seed)
        if self.builder_class is SasBatchBuilder:
            store = SampleStore(example_ids, max_predictions=s.max_predictions, seq_len=config.seq_len,
                                vocab_size=vocab_size)
            sampler = (cold_start_sampler(s.cold_start, config, corpus, vocab_size)
                       if s.cold_start in ("unigram", "uniform") else None)
            return SasBatchBuilder(store=store, sampler=sampler, policy=s.position_policy, cold_start=s.cold_start,
                                   cold_start_steps=cold_start_steps(config, steps_per_epoch), **common)
        if self.builder_class is ElectraBatchBuilder:
            return ElectraBatchBuilder(mask_token_rate=o.mask_token_rate, **common)
        sampler = None if o.corruption == "bert" else cold_start_sampler(o.corruption, config, corpus, vocab_size)
        return StaticBatchBuilder(kind=o.corruption, sampler=sampler, mask_token_rate=o.mask_token_rate,
                                  random_token_rate=o.random_token_rate, **common)

    def step_settings(self, steps_per_epoch: int) -> StepSettings:
        """The static pieces of the row bound into the jitted step."""
        config, h = self.config, self.heads
        num_epochs = max(1, -(-int(config.num_train_steps) // int(steps_per_epoch)))
        s = config.sas
        return StepSettings(use_mlm=h.mlm, use_rtd=h.rtd, sample=h.sample, generator=h.generator,
                            temperature=float(s.temperature), lambda_schedule=s.lambda_schedule,
                            lambda_start=float(s.lambda_start), lambda_end=float(s.lambda_end),
                            steps_per_epoch=int(steps_per_epoch), num_epochs=num_epochs,
                            rtd_off_steps=rtd_off_steps(config, steps_per_epoch))


def build(config, vocab_size: int) -> Objective:
    """The one chooser of `config.objective`: model (and its `ModelConfig`), builder class, heads."""
    h = heads(config)
    cfg = ModelConfig.from_config(config.model, vocab_size=vocab_size)
    if h.generator:
        return Objective(config, h, cfg, ElectraModel(cfg), ElectraBatchBuilder)
    model = PretrainingModel(cfg, use_mlm=h.mlm, use_rtd=h.rtd)
    builder_class = SasBatchBuilder if h.corruption == "sas" else StaticBatchBuilder
    return Objective(config, h, cfg, model, builder_class)


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
