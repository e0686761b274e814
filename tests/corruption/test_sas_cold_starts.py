"""SAS's other cold starts (`mask`, `mlm`) and `cold_start_epochs`, on hand-made rows.

The reference semantics: a cold row gets fresh whole-word positions filled by the
cold start; MLM targets are the originals at every selected position; RTD label =
the input differs from the original; the model's samples are stored on every
visit, and only after the cold phase do they become the inputs.
"""
import numpy as np
import pytest

from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.corruption.sas_batch import SasBatchBuilder
from sas_jax.corruption.store import SampleStore

V, L, P, B = 60, 32, 6, 512
PAD, CLS, MASK = 0, 2, 4


def make(cold_start, cold_start_steps=0, b=B):
    rng = np.random.default_rng(0)
    rows = rng.integers(5, V, size=(b, L))
    rows[:, 0] = CLS
    special = np.zeros(V, bool)
    special[[PAD, CLS, 3, MASK]] = True
    starts = np.ones(V, bool)  # every token is a word: positions are single tokens
    sampler = ColdStartSampler(cold_start, V, np.bincount(rows.ravel(), minlength=V)) \
        if cold_start in ("unigram", "uniform") else None
    builder = SasBatchBuilder(store=SampleStore(np.arange(b), max_predictions=P, seq_len=L, vocab_size=V),
                              sampler=sampler, cold_start=cold_start, cold_start_steps=cold_start_steps,
                              word_start_table=starts, special_table=special, pad_id=PAD, mask_id=MASK,
                              vocab_size=V, policy="official", mask_rate=0.15, max_predictions=P, seed=0)
    return builder, rows


def selected(batch):
    m = np.zeros(batch["input_ids"].shape, bool)
    rb, rs = np.nonzero(batch["mlm_weights"] > 0)
    m[rb, batch["mlm_positions"][rb, rs]] = True
    return m


def test_mask_cold_start_masks_every_selected_position_and_labels_it_replaced():
    builder, rows = make("mask", b=4)
    batch, _ = builder.build(rows, np.arange(4), step=0)
    sel = selected(batch)
    assert np.all(sel.sum(1) == round(0.15 * L))  # 5 whole words of one token
    np.testing.assert_array_equal(batch["input_ids"], np.where(sel, MASK, rows))
    np.testing.assert_array_equal(batch["rtd_labels"], sel.astype(np.int32))  # every [MASK] is "replaced"
    np.testing.assert_array_equal(batch["mlm_targets"], np.take_along_axis(rows, batch["mlm_positions"], 1))


def test_mlm_cold_start_is_berts_80_10_10_with_targets_everywhere():
    builder, rows = make("mlm")
    batch, _ = builder.build(rows, np.arange(B), step=0)
    sel = selected(batch)
    inputs = batch["input_ids"][sel]
    original = rows[sel]
    total = sel.sum()
    masked = (inputs == MASK).mean()
    unchanged = (inputs == original).mean()
    random = 1.0 - masked - unchanged
    sd = np.sqrt(0.25 / total)
    # Unchanged = the 10% kept + random draws that hit the original (1/V of 10%).
    assert abs(masked - 0.8) < 5 * sd and abs(unchanged - (0.1 + 0.1 / V)) < 5 * sd
    assert abs(random - 0.1 * (1 - 1 / V)) < 5 * sd
    assert not np.any(batch["input_ids"][~sel] != rows[~sel])  # nothing else is touched
    np.testing.assert_array_equal(batch["mlm_weights"].sum(1), np.full(B, 5.0))  # unchanged ones are targets
    np.testing.assert_array_equal(batch["rtd_labels"], (batch["input_ids"] != rows).astype(np.int32))


@pytest.mark.parametrize("cold_start", ["unigram", "mask", "mlm"])
def test_cold_start_epochs_keep_every_visit_cold_then_the_samples_take_over(cold_start):
    steps_per_epoch = 1
    builder, rows = make(cold_start, cold_start_steps=2 * steps_per_epoch, b=8)
    ids = np.arange(8)
    visits = []
    for step in range(3):  # epochs 0, 1 cold; epoch 2 reads the samples of epoch 1
        batch, pending = builder.build(rows, ids, step)
        samples = (batch["mlm_targets"] + 1 + step) % V  # fake model samples, never a hit
        samples = np.where(samples < 5, 5 + step, samples)
        builder.write_back(pending, samples)
        visits.append((batch, samples))
    (b0, s0), (b1, s1), (b2, _) = visits
    # Epoch 1 is a fresh cold start: exactly the batch of a builder whose store is empty
    # (new positions keyed by the step, cold-start inputs), not epoch 0's samples.
    fresh, _ = make(cold_start, b=8)[0].build(rows, ids, 1)
    for key in b1:
        np.testing.assert_array_equal(b1[key], fresh[key], err_msg=key)
    assert not np.array_equal(selected(b0), selected(b1))
    # Epoch 2: positions are epoch 1's, inputs are epoch 1's samples (official: all non-hits).
    np.testing.assert_array_equal(selected(b2), selected(b1))
    expect = rows.copy()
    rb, rs = np.nonzero(b1["mlm_weights"] > 0)
    expect[rb, b1["mlm_positions"][rb, rs]] = s1[rb, rs]
    np.testing.assert_array_equal(b2["input_ids"], expect)
    np.testing.assert_array_equal(b2["rtd_labels"], selected(b2).astype(np.int32))


def test_a_row_the_store_has_not_seen_is_cold_after_the_cold_phase():
    builder, rows = make("mask", cold_start_steps=1, b=4)
    batch, _ = builder.build(rows, np.arange(4), step=5)  # never written back: still a first visit
    sel = selected(batch)
    np.testing.assert_array_equal(batch["input_ids"], np.where(sel, MASK, rows))


def test_bad_cold_starts_are_refused():
    with pytest.raises(ValueError, match="sas.cold_start='bert'"):
        make("bert")
    store = SampleStore(np.arange(2), max_predictions=P, seq_len=L, vocab_size=V)
    with pytest.raises(ValueError, match="needs mask_id and vocab_size"):
        SasBatchBuilder(store=store, sampler=None, cold_start="mask", word_start_table=np.ones(V, bool),
                        special_table=np.zeros(V, bool), pad_id=0, policy="official", mask_rate=0.15,
                        max_predictions=P, seed=0)
