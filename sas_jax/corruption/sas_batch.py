"""Builds the SAS batch of one step from corpus rows and the store (vectorised numpy).

First visit of an example (and every visit of the first `sas.cold_start_epochs`
epochs): whole-word positions filled by the cold start (`unigram` / `uniform`
draws, every position [MASK] for `mask`, BERT's 80/10/10 for `mlm`; RTD label
= input differs from the original). Later visits: the stored samples, turned into
positions by `position_policy` (docs/reference.md):

    official  positions = stored slots whose sample differs from the original
    keep      positions = every stored slot (hits: input = original, still targets)
    refill    carried non-hits + fresh whole words with cold-start draws up to n

Under every policy the model samples at every MLM slot of the visit and the
example's row is overwritten with those samples (`write_back`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sas_jax.corruption import masking
from sas_jax.corruption.batch import BatchBuilder, assemble
from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.corruption.store import SampleStore

POLICIES = ("official", "keep", "refill")
COLD_STARTS = ("unigram", "uniform", "mask", "mlm")
# The `mlm` cold start is BERT's split of the selected tokens: [MASK] / a uniform id / unchanged.
MLM_COLD_MASK_RATE, MLM_COLD_RANDOM_RATE = 0.8, 0.1


@dataclasses.dataclass
class PendingWrite:
    """What the host keeps of a step until its samples come back from the device."""

    example_ids: np.ndarray
    positions: np.ndarray  # [B, P]
    valid: np.ndarray  # [B, P] bool


class SasBatchBuilder(BatchBuilder):
    """SAS's builder: reads and overwrites the store rows of the examples it builds."""

    def __init__(self, *, store: SampleStore, sampler: ColdStartSampler | None, policy: str,
                 cold_start: str | None = None, cold_start_steps: int = 0, **kw):
        """`cold_start` (default: the sampler's kind) fills fresh positions: `unigram` /
        `uniform` draws of `sampler`, `mask` ([MASK] everywhere) or `mlm` (BERT's 80/10/10).
        Every row is cold (fresh positions, store ignored) while `step < cold_start_steps`,
        and any row the store has not seen yet is cold whatever the step."""
        if policy not in POLICIES:
            raise ValueError(f"sas.position_policy={policy!r}; use one of {', '.join(POLICIES)}")
        cold_start = cold_start or (sampler.kind if sampler is not None else None)
        if cold_start not in COLD_STARTS:
            raise ValueError(f"sas.cold_start={cold_start!r}; use one of {', '.join(COLD_STARTS)}")
        if cold_start in ("unigram", "uniform") and (sampler is None or sampler.kind != cold_start):
            raise ValueError(f"the {cold_start} cold start needs a ColdStartSampler({cold_start!r})")
        super().__init__(store=store, **kw)
        if cold_start in ("mask", "mlm") and (self.mask_id < 0 or self.vocab_size <= 0):
            raise ValueError(f"the {cold_start} cold start needs mask_id and vocab_size")
        self.sampler, self.policy = sampler, policy
        self.cold_start, self.cold_start_steps = cold_start, int(cold_start_steps)

    def cold_tokens(self, streams, x_BxL, fresh_BxL, step: int) -> np.ndarray:
        """The cold-start input tokens at the `fresh` positions (flat, in row-major order)."""
        length = x_BxL.shape[1]
        if self.cold_start == "mask":
            return np.full(int(fresh_BxL.sum()), self.mask_id, np.int32)
        u = streams.uniform(1, length)[fresh_BxL]
        if self.cold_start == "mlm":
            return masking.bert_replacements(u, streams.uniform(2, length)[fresh_BxL], x_BxL[fresh_BxL],
                                             mask_id=self.mask_id, vocab_size=self.vocab_size,
                                             mask_rate=MLM_COLD_MASK_RATE, random_rate=MLM_COLD_RANDOM_RATE)
        return self.sampler.tokens(u, step)

    def build(self, rows_BxL: np.ndarray, example_ids: np.ndarray, step: int):
        """(batch dict of numpy arrays for the device, PendingWrite)."""
        x = np.asarray(rows_BxL, np.int32)
        b, length = x.shape
        streams = self.streams(step, example_ids)
        input_mask = x != self.pad_id
        eligible = input_mask & ~self.special_table[x]
        starts = self.word_start_table[x]
        n = masking.target_counts(input_mask, self.mask_rate)

        pos_s, tok_s, count_s, visited = self.store.read(example_ids)
        if step < self.cold_start_steps:  # the cold phase: every row starts afresh
            visited = np.zeros_like(visited)
            count_s = np.zeros_like(count_s)
        slot_ok = np.arange(pos_s.shape[1])[None, :] < count_s[:, None]
        original_at_slot = np.take_along_axis(x, pos_s, axis=1)
        differs = slot_ok & (tok_s != original_at_slot)
        carried = differs if self.policy in ("official", "refill") else slot_ok

        # Token-level MLM mask and replacement tokens.
        mlm = np.zeros((b, length), bool)
        repl = x.copy()
        rb, rs = np.nonzero(carried)
        mlm[rb, pos_s[rb, rs]] = True
        repl[rb, pos_s[rb, rs]] = tok_s[rb, rs]

        # Fresh whole-word positions: every first visit, and topping up under refill.
        n_fresh = np.where(visited, 0, n)
        if self.policy == "refill":
            n_fresh = np.where(visited, np.maximum(n - carried.sum(axis=1), 0), n)
        if np.any(n_fresh > 0):
            fresh = masking.select_whole_words(streams.uniform(0, length), starts, eligible, n_fresh,
                                               blocked_BxL=mlm)
            fresh &= (n_fresh > 0)[:, None]
            repl[fresh] = self.cold_tokens(streams, x, fresh, step)
            mlm |= fresh

        inputs = np.where(mlm, repl, x)
        positions, valid = masking.positions_from_mask(mlm, self.max_predictions)
        batch = assemble(x, inputs, input_mask, positions, valid)
        return batch, PendingWrite(np.asarray(example_ids), positions, valid)

    def write_back(self, pending: PendingWrite, sampled_BxP: np.ndarray) -> None:
        self.store.write(pending.example_ids, pending.positions, np.asarray(sampled_BxP), pending.valid)
