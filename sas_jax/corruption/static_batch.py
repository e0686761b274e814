"""Batch builders whose corruption never reads the model's past samples (no store).

The shape of `corruption/batch.py` (`build(rows, ids, step) -> (batch, None)`, no
store), so the trainer does not care which objective it runs.

`StaticBatchBuilder` (`bert`, `unigram`, `uniform`): fresh whole-word positions on
every visit, the reference's fixed count n = max(1, round(rate · #non-pad)) (as
SAS's first visit, `masking.select_whole_words`), MLM targets at every selected
position (unchanged ones and cold-start hits included).

- `bert`: each selected token independently becomes [MASK] (`mask_token_rate`,
  0.8), a uniform id over the *full* vocabulary (`random_token_rate`, 0.1; as
  BERT's `create_pretraining_data.py` and HF's collator, specials included), or
  stays unchanged (the rest).
- `unigram` / `uniform`: each selected token is an i.i.d. context-free draw of the
  `ColdStartSampler` (unigram with the sqrt-unigram warm-up, or uniform), as SAS's
  cold start, but on every visit.

`ElectraBatchBuilder`: ELECTRA's masking (docs/reference.md §8.6). N =
int((rate + 0.005) · L) slots; row b predicts max(1, min(N, round(rate · #real)))
of them; slot positions are drawn uniformly over the candidates (real tokens that
are not [CLS]/[SEP]/[MASK]) *with replacement*; each valid slot draws [MASK] with
`mask_token_rate` (0.85), else keeps the original; no random tokens. A position
drawn by several slots is [MASK] if any of its slots drew [MASK] (ELECTRA's
`scatter_update`), and every valid slot is an MLM term (duplicates included, as
the reference). `input_ids` is the generator's input; the step rebuilds the
original ids from the slot targets and samples the discriminator's input on the
device, so `rtd_labels` here (the [MASK]ed positions) is not used by the step.
"""
from __future__ import annotations

import numpy as np

from sas_jax.corruption import masking
from sas_jax.corruption.batch import BatchBuilder, assemble
from sas_jax.corruption.cold_start import ColdStartSampler

STATIC_KINDS = ("bert", "unigram", "uniform")


def electra_budget(mask_rate: float, seq_len: int) -> int:
    """N = int((rate + 0.005) · L): ELECTRA's `max_predictions_per_seq` (19 at L = 128)."""
    return int((mask_rate + 0.005) * seq_len)


class StaticBatchBuilder(BatchBuilder):
    stream_tag = 0x57A

    def __init__(self, *, kind: str, sampler: ColdStartSampler | None = None, mask_token_rate: float = 0.8,
                 random_token_rate: float = 0.1, **kw):
        super().__init__(**kw)
        if kind not in STATIC_KINDS:
            raise ValueError(f"objective.corruption={kind!r}; the static builder takes {', '.join(STATIC_KINDS)}")
        if kind != "bert" and (sampler is None or sampler.kind != kind):
            raise ValueError(f"the {kind} corruption needs a ColdStartSampler({kind!r})")
        if min(mask_token_rate, random_token_rate) < 0.0 or mask_token_rate + random_token_rate > 1.0:
            raise ValueError(f"objective.mask_token_rate={mask_token_rate} + random_token_rate="
                             f"{random_token_rate} must be rates summing to at most 1")
        self.kind, self.sampler = kind, sampler
        self.mask_token_rate, self.random_token_rate = mask_token_rate, random_token_rate

    def build(self, rows_BxL: np.ndarray, example_ids: np.ndarray, step: int):
        """(batch dict of numpy arrays for the device, None)."""
        x = np.asarray(rows_BxL, np.int32)
        length = x.shape[1]
        streams = self.streams(step, example_ids)
        input_mask = x != self.pad_id
        eligible = input_mask & ~self.special_table[x]
        n = masking.target_counts(input_mask, self.mask_rate)
        selected = masking.select_whole_words(streams.uniform(0, length), self.word_start_table[x], eligible, n)
        if self.kind == "bert":
            tokens = masking.bert_replacements(streams.uniform(1, length)[selected],
                                               streams.uniform(2, length)[selected], x[selected],
                                               mask_id=self.mask_id, vocab_size=self.vocab_size,
                                               mask_rate=self.mask_token_rate, random_rate=self.random_token_rate)
        else:
            tokens = self.sampler.tokens(streams.uniform(1, length)[selected], step)
        inputs = x.copy()
        inputs[selected] = tokens
        positions, valid = masking.positions_from_mask(selected, self.max_predictions)
        return assemble(x, inputs, input_mask, positions, valid), None


class ElectraBatchBuilder(BatchBuilder):
    stream_tag = 0xE1E

    def __init__(self, *, mask_token_rate: float = 0.85, **kw):
        super().__init__(**kw)
        if not 0.0 <= mask_token_rate <= 1.0:
            raise ValueError(f"objective.mask_token_rate={mask_token_rate} must be in [0, 1]")
        self.mask_token_rate = mask_token_rate

    def build(self, rows_BxL: np.ndarray, example_ids: np.ndarray, step: int):
        """(batch dict of numpy arrays for the device, None); slot positions may repeat."""
        x = np.asarray(rows_BxL, np.int32)
        b, length = x.shape
        streams = self.streams(step, example_ids)
        budget = electra_budget(self.mask_rate, length)
        if budget > self.max_predictions:
            raise ValueError(f"ELECTRA's budget int((mask_rate+0.005)*L)={budget} exceeds sas.max_predictions="
                             f"{self.max_predictions}; raise sas.max_predictions")
        input_mask = x != self.pad_id
        candidates = input_mask & ~self.special_table[x]  # real tokens but [CLS], [SEP], [MASK]
        num_cand = candidates.sum(axis=1)
        num = np.minimum(budget, masking.target_counts(input_mask, self.mask_rate))
        # A uniform categorical over each row's candidates, with replacement.
        cand_pos = np.argsort(~candidates, axis=1, kind="stable")  # candidates first, ascending
        pick = np.minimum((streams.uniform(0, budget) * num_cand[:, None]).astype(np.int64),
                          np.maximum(num_cand - 1, 0)[:, None])
        valid = (np.arange(budget)[None, :] < num[:, None]) & (num_cand[:, None] > 0)
        slots = np.where(valid, np.take_along_axis(cand_pos, pick, axis=1), 0)
        to_mask = valid & (streams.uniform(1, budget) < self.mask_token_rate)
        inputs = x.copy()
        rb, rs = np.nonzero(to_mask)
        inputs[rb, slots[rb, rs]] = self.mask_id  # a repeated position: [MASK] if any slot says so
        positions = np.zeros((b, self.max_predictions), np.int32)
        weights = np.zeros((b, self.max_predictions), bool)
        positions[:, :budget], weights[:, :budget] = slots, valid
        return assemble(x, inputs, input_mask, positions, weights), None
