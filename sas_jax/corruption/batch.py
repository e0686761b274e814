"""The one shape of every objective's host-side batch builder.

A builder turns corpus rows and their example ids into the step's batch:

    build(rows [B, L], example_ids [B], step) -> (batch, pending)
    write_back(pending, sampled [B, P])      # only builders with a store keep anything

The batch always has the keys of `BATCH_KEYS`: `input_ids`, `input_mask`
[B, L]; `mlm_positions`, `mlm_targets`, `mlm_weights` [B, P]; `rtd_labels` [B, L]
(1 = the input differs from the original). `store` is the `SampleStore` the builder
reads and writes (SAS), or None for objectives whose next visit does not depend on
this one (BERT, unigram/uniform, ELECTRA); the checkpoint saves it either way.
"""
from __future__ import annotations

import numpy as np

from sas_jax.corruption import keyed_random
from sas_jax.corruption.store import SampleStore

BATCH_KEYS = ("input_ids", "input_mask", "mlm_positions", "mlm_targets", "mlm_weights", "rtd_labels")


def assemble(x_BxL, inputs_BxL, input_mask_BxL, positions_BxP, valid_BxP) -> dict:
    """The batch dict (`BATCH_KEYS`) from the original rows, the model's inputs and the MLM slots:
    every builder's output and the held-out batches (`evaluation.corrupt`)."""
    return {
        "input_ids": np.asarray(inputs_BxL, np.int32),
        "input_mask": np.asarray(input_mask_BxL, np.int32),
        "mlm_positions": np.asarray(positions_BxP, np.int32),
        "mlm_targets": np.take_along_axis(x_BxL, positions_BxP, axis=1).astype(np.int32),
        "mlm_weights": np.asarray(valid_BxP, np.float32),
        "rtd_labels": (inputs_BxL != x_BxL).astype(np.int32),
    }


class BatchBuilder:
    """Tables, keyed host randomness and the (optional) store; `build` returns `assemble`'s dict."""

    # Mixed into the seed so the objectives draw independent host streams.
    stream_tag = 0

    def __init__(self, *, word_start_table, special_table, pad_id: int, mask_rate: float, max_predictions: int,
                 seed: int, mask_id: int = -1, vocab_size: int = 0, store: SampleStore | None = None):
        self.word_start_table = np.asarray(word_start_table, bool)
        self.special_table = np.asarray(special_table, bool)
        self.pad_id, self.mask_id, self.vocab_size = int(pad_id), int(mask_id), int(vocab_size)
        self.mask_rate, self.max_predictions, self.seed = mask_rate, max_predictions, seed
        self.store = store

    def streams(self, step: int, example_ids) -> keyed_random.Streams:
        """Host randomness keyed by (seed, step, example id): a resumed run, or one with
        another number of processes, corrupts every example identically."""
        return keyed_random.Streams(self.seed ^ self.stream_tag, step, example_ids)

    def build(self, rows_BxL: np.ndarray, example_ids: np.ndarray, step: int):
        raise NotImplementedError

    def write_back(self, pending, sampled_BxP) -> None:
        """Nothing to keep by default: the next visit does not depend on this one."""
