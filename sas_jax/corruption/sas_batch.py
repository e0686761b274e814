"""Builds the SAS batch of one step from corpus rows and the store (vectorised numpy).

First visit of an example: whole-word positions filled with cold-start draws.
Later visits: the stored samples, turned into positions by `position_policy`
(sas_semantics.md §3):

    official  positions = stored slots whose sample differs from the original
    keep      positions = every stored slot (hits: input = original, still targets)
    refill    carried non-hits + fresh whole words with cold-start draws up to n

Under every policy the model samples at every MLM slot of the visit and the
example's row is overwritten with those samples (`write_back`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sas_jax.corruption import keyed_random, masking
from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.corruption.store import SampleStore

POLICIES = ("official", "keep", "refill")


@dataclasses.dataclass
class PendingWrite:
    """What the host keeps of a step until its samples come back from the device."""

    example_ids: np.ndarray
    positions: np.ndarray  # [B, P]
    valid: np.ndarray  # [B, P] bool


class SasBatchBuilder:
    def __init__(self, *, store: SampleStore, sampler: ColdStartSampler, word_start_table,
                 special_table, pad_id: int, policy: str, mask_rate: float, max_predictions: int,
                 seed: int, process_index: int = 0):
        if policy not in POLICIES:
            raise ValueError(f"sas.position_policy={policy!r}; use one of {', '.join(POLICIES)}")
        self.store, self.sampler, self.policy = store, sampler, policy
        self.word_start_table = np.asarray(word_start_table, bool)
        self.special_table = np.asarray(special_table, bool)
        self.pad_id, self.mask_rate, self.max_predictions = pad_id, mask_rate, max_predictions
        self.seed, self.process_index = seed, process_index


    def build(self, rows_BxL: np.ndarray, example_ids: np.ndarray, step: int):
        """(batch dict of numpy arrays for the device, PendingWrite)."""
        x = np.asarray(rows_BxL, np.int32)
        b, length = x.shape
        # Host randomness is keyed by (seed, step, example id): a resumed run, or one with
        # another number of processes, corrupts every example identically.
        streams = keyed_random.Streams(self.seed, step, example_ids)
        input_mask = x != self.pad_id
        eligible = input_mask & ~self.special_table[x]
        starts = self.word_start_table[x]
        n = masking.target_counts(input_mask, self.mask_rate)

        pos_s, tok_s, count_s, visited = self.store.read(example_ids)
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
            repl[fresh] = self.sampler.tokens(streams.uniform(1, length)[fresh], step)
            mlm |= fresh

        inputs = np.where(mlm, repl, x)
        positions, valid = masking.positions_from_mask(mlm, self.max_predictions)
        batch = {
            "input_ids": inputs,
            "input_mask": input_mask.astype(np.int32),
            "mlm_positions": positions,
            "mlm_targets": np.take_along_axis(x, positions, axis=1),
            "mlm_weights": valid.astype(np.float32),
            "rtd_labels": (inputs != x).astype(np.int32),
        }
        return batch, PendingWrite(np.asarray(example_ids), positions, valid)

    def write_back(self, pending: PendingWrite, sampled_BxP: np.ndarray) -> None:
        self.store.write(pending.example_ids, pending.positions, np.asarray(sampled_BxP), pending.valid)
