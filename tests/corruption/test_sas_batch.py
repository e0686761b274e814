import numpy as np
import pytest

from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.corruption.sas_batch import SasBatchBuilder
from sas_jax.corruption.store import SampleStore

V, L, P, B = 60, 32, 6, 16


def make(policy, *, starts_frac=1.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.integers(5, V, size=(B, L))
    rows[:, 0] = 2  # [CLS]
    special = np.zeros(V, bool)
    special[[0, 2, 3, 4]] = True
    starts = rng.random(V) < starts_frac
    starts[special] = True
    store = SampleStore(np.arange(B), max_predictions=P, seq_len=L, vocab_size=V)
    counts = np.bincount(rows[:, 1:].ravel(), minlength=V)
    b = SasBatchBuilder(store=store, sampler=ColdStartSampler("unigram", V, counts), word_start_table=starts,
                        special_table=special, pad_id=0, policy=policy, mask_rate=0.15,
                        max_predictions=P, seed=seed)
    return b, rows


def samples_with_hits(batch, rows, hit_every=3, seed=1):
    """Fake model samples: the original token at every `hit_every`-th slot, else a new id."""
    rng = np.random.default_rng(seed)
    targets = batch["mlm_targets"]
    other = (targets + rng.integers(1, V - 5, targets.shape)) % V
    hits = (np.arange(P)[None, :] % hit_every == 0) & (batch["mlm_weights"] > 0)
    return np.where(hits, targets, other), hits


def test_first_visit_whole_words_cold_start_and_labels():
    b, rows = make("official")
    batch, _ = b.build(rows, np.arange(B), step=0)
    n = round(0.15 * L)  # 5
    w = batch["mlm_weights"]
    assert np.all(w.sum(1) == n)  # every selected position is an MLM target, hits included
    pos = batch["mlm_positions"]
    np.testing.assert_array_equal(batch["mlm_targets"], np.take_along_axis(rows, pos, 1))
    changed = batch["input_ids"] != rows
    at_slots = np.zeros_like(changed)
    np.put_along_axis(at_slots, pos, w > 0, axis=1)
    assert not np.any(changed & ~at_slots)  # only MLM positions are touched
    np.testing.assert_array_equal(batch["rtd_labels"], changed.astype(np.int32))  # hit -> label 0
    assert np.all(batch["input_ids"][:, 0] == 2) and not np.any(at_slots[:, 0])  # [CLS] untouched


def second_visit(policy):
    b, rows = make(policy)
    first, pending = b.build(rows, np.arange(B), step=0)
    sampled, hits = samples_with_hits(first, rows)
    b.write_back(pending, sampled)
    second, _ = b.build(rows, np.arange(B), step=1)
    return b, rows, first, sampled, hits, second


def stored_maps(first, sampled):
    """Token-level maps of the first visit's slots and samples."""
    where = np.zeros((B, L), bool)
    tok = np.full((B, L), -1)
    valid = first["mlm_weights"] > 0
    rb, rs = np.nonzero(valid)
    where[rb, first["mlm_positions"][rb, rs]] = True
    tok[rb, first["mlm_positions"][rb, rs]] = sampled[rb, rs]
    return where, tok


def mlm_map(batch):
    m = np.zeros((B, L), bool)
    rb, rs = np.nonzero(batch["mlm_weights"] > 0)
    m[rb, batch["mlm_positions"][rb, rs]] = True
    return m


def test_official_later_visit_uses_samples_and_drops_hits():
    _, rows, first, sampled, hits, second = second_visit("official")
    where, tok = stored_maps(first, sampled)
    nonhit = where & (tok != rows)
    np.testing.assert_array_equal(mlm_map(second), nonhit)
    np.testing.assert_array_equal(second["input_ids"], np.where(nonhit, tok, rows))
    np.testing.assert_array_equal(second["rtd_labels"], nonhit.astype(np.int32))
    assert np.all(second["mlm_weights"].sum(1) == first["mlm_weights"].sum(1) - hits.sum(1))


def test_keep_later_visit_keeps_hits_as_targets_with_original_input():
    _, rows, first, sampled, _, second = second_visit("keep")
    where, tok = stored_maps(first, sampled)
    np.testing.assert_array_equal(mlm_map(second), where)
    np.testing.assert_array_equal(second["input_ids"], np.where(where, tok, rows))
    np.testing.assert_array_equal(second["rtd_labels"], (where & (tok != rows)).astype(np.int32))
    assert np.all(second["mlm_weights"].sum(1) == round(0.15 * L))


def test_refill_carries_nonhits_and_tops_up_with_fresh_words():
    b, rows, first, sampled, _, second = second_visit("refill")
    where, tok = stored_maps(first, sampled)
    nonhit = where & (tok != rows)
    m = mlm_map(second)
    assert np.all(m[nonhit])  # carried positions stay, with the samples as inputs
    np.testing.assert_array_equal(second["input_ids"][nonhit], tok[nonhit])
    assert np.all(second["mlm_weights"].sum(1) == round(0.15 * L))  # back to the budget
    fresh = m & ~nonhit
    assert fresh.any()
    np.testing.assert_array_equal(second["rtd_labels"], (second["input_ids"] != rows).astype(np.int32))


@pytest.mark.parametrize("policy", ["official", "keep", "refill"])
def test_store_round_trips_the_samples_of_every_slot(policy):
    b, rows, first, sampled, _, second = second_visit(policy)
    pos, tok, count, visited = b.store.read(np.arange(B))
    assert visited.all()
    valid = first["mlm_weights"] > 0
    assert count.tolist() == valid.sum(1).tolist()
    for r in range(B):
        k = count[r]
        np.testing.assert_array_equal(pos[r, :k], first["mlm_positions"][r][valid[r]])
        np.testing.assert_array_equal(tok[r, :k], sampled[r][valid[r]])


def test_official_set_shrinks_with_the_hit_rate():
    b, rows = make("official", seed=4)
    counts = []
    rng = np.random.default_rng(0)
    for visit in range(4):
        batch, pending = b.build(rows, np.arange(B), step=visit)
        counts.append(batch["mlm_weights"].sum())
        hit = rng.random(batch["mlm_targets"].shape) < 0.25
        b.write_back(pending, np.where(hit, batch["mlm_targets"], (batch["mlm_targets"] + 1) % V))
    # E[count_t] = count_{t-1} * (1 - h) after the first visit (hits kept on visit 1)
    assert counts[0] == B * 5
    assert counts[1] < counts[0] and counts[2] < counts[1] and counts[3] < counts[2]
    assert abs(counts[2] / counts[1] - 0.75) < 0.2


def test_batches_are_a_function_of_step_so_resume_replays_them():
    b1, rows = make("official")
    b2, _ = make("official")
    x1, _ = b1.build(rows, np.arange(B), step=7)
    x2, _ = b2.build(rows, np.arange(B), step=7)
    for k in x1:
        np.testing.assert_array_equal(x1[k], x2[k])


@pytest.mark.parametrize("policy", ["official", "refill"])
def test_two_process_halves_build_the_same_rows_as_one_process(policy):
    """Corruption is keyed by example id, not by process: split a batch in two and
    every row comes out the same (what lets N processes match 1, and N→M resume)."""
    b, rows = make(policy)
    whole, pending = b.build(rows, np.arange(B), step=0)
    b.write_back(pending, samples_with_hits(whole, rows)[0])
    whole2, _ = b.build(rows, np.arange(B), step=1)
    for step, ref in ((0, whole), (1, whole2)):
        if step == 0:
            fresh, _ = make(policy)
        halves = [fresh.build(rows[s], np.arange(B)[s], step=step)[0] for s in (slice(0, 6), slice(6, B))]
        for k in ref:
            np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]), ref[k])
        if step == 0:
            for s, h in zip((slice(0, 6), slice(6, B)), halves):
                fresh.write_back(type(pending)(np.arange(B)[s], h["mlm_positions"], h["mlm_weights"] > 0),
                                 samples_with_hits(whole, rows)[0][s])
