"""Model-free corruption (bert / unigram / uniform) and ELECTRA's masking: statistics.

Large synthetic batches with fixed seeds; tolerances are ~4-5 sigma (or chi-square
p-values above 1e-4), so a correct implementation fails with negligible probability.
"""
import numpy as np
import pytest
from scipy import stats

from sas_jax.corruption import masking
from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.corruption.static_batch import ElectraBatchBuilder, StaticBatchBuilder, electra_budget

PAD, CLS, SEP, MASK = 0, 2, 3, 4
V = 200


def tables(seed=0, starts_frac=0.6):
    rng = np.random.default_rng(seed)
    special = np.zeros(V, bool)
    special[[PAD, CLS, SEP, MASK]] = True
    starts = rng.random(V) < starts_frac
    starts[special] = True
    return dict(word_start_table=starts, special_table=special, pad_id=PAD, mask_id=MASK, vocab_size=V)


def corpus_rows(b, length, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.integers(5, V, size=(b, length))
    rows[:, 0] = CLS
    return rows


def zipf_counts():
    counts = np.zeros(V, np.int64)
    counts[5:] = (1e6 / np.arange(1, V - 4)).astype(np.int64)
    counts[1] = 500  # [UNK] can be drawn
    return counts


def builder(kind, sampler=None, max_predictions=20, **kw):
    return StaticBatchBuilder(kind=kind, sampler=sampler, mask_rate=0.15, max_predictions=max_predictions,
                              seed=0, **tables(), **kw)


def selected_map(batch):
    m = np.zeros(batch["input_ids"].shape, bool)
    rb, rs = np.nonzero(batch["mlm_weights"] > 0)
    m[rb, batch["mlm_positions"][rb, rs]] = True
    return m


def assert_rate(count, total, p, sigmas=5.0):
    sd = np.sqrt(p * (1 - p) / total)
    assert abs(count / total - p) < sigmas * sd, (count / total, p, sd)


def test_bert_80_10_10_split_on_whole_word_positions():
    rows = corpus_rows(4096, 128)
    batch, pending = builder("bert").build(rows, np.arange(len(rows)), step=7)
    assert pending is None
    sel = selected_map(batch)
    n = masking.target_counts(rows != PAD, 0.15)  # 19 at L = 128
    assert np.all(sel.sum(1) <= n) and sel.sum(1).mean() > 18.9
    assert not np.any(sel[:, 0])  # [CLS] never selected
    inputs = batch["input_ids"]
    assert np.all(inputs[~sel] == rows[~sel])  # only selected positions change
    x, y = rows[sel], inputs[sel]
    total = x.size
    # Per selected token: [MASK] 0.8 (+0.1/V: a random draw of [MASK]), unchanged 0.1 (+0.1/V), other random.
    assert_rate((y == MASK).sum(), total, 0.8 + 0.1 / V)
    assert_rate((y == x).sum(), total, 0.1 + 0.1 / V)
    random = y[(y != MASK) & (y != x)]
    assert_rate(random.size, total, 0.1 * (V - 2) / V)
    # The random tokens are uniform over the full vocabulary (specials included).
    hist = np.bincount(random, minlength=V)
    ids = np.setdiff1d(np.arange(V), [MASK])  # a random [MASK] is indistinguishable from a masked one
    assert stats.chisquare(hist[ids]).pvalue > 1e-4
    assert hist[[PAD, CLS, SEP]].sum() > 0
    # Targets at every selected position (unchanged ones included); RTD labels = input != original.
    np.testing.assert_array_equal(batch["mlm_targets"], np.take_along_axis(rows, batch["mlm_positions"], 1))
    np.testing.assert_array_equal(batch["rtd_labels"], (inputs != rows).astype(np.int32))


def test_static_positions_are_fresh_every_visit_and_a_function_of_the_step():
    rows = corpus_rows(64, 128)
    b = builder("bert")
    a0, _ = b.build(rows, np.arange(64), step=0)
    a1, _ = b.build(rows, np.arange(64), step=1)
    again, _ = builder("bert").build(rows, np.arange(64), step=0)
    assert not np.array_equal(selected_map(a0), selected_map(a1))  # no positions carried over
    for k in a0:
        np.testing.assert_array_equal(a0[k], again[k])
    b.write_back(None, np.zeros((64, 20)))  # a no-op: nothing is kept between visits
    assert b.store is None


@pytest.mark.parametrize("step,warm", [(50, False), (2, True)])
def test_unigram_draws_match_the_corpus_counts(step, warm):
    counts = zipf_counts()
    sampler = ColdStartSampler("unigram", V, counts, warmup_steps=10)
    rows = corpus_rows(4096, 128)
    batch, _ = builder("unigram", sampler).build(rows, np.arange(len(rows)), step=step)
    sel = selected_map(batch)
    draws = batch["input_ids"][sel]
    p = np.sqrt(counts) if warm else counts.astype(np.float64)
    p = p / p.sum()
    hist = np.bincount(draws, minlength=V)
    assert hist[p == 0].sum() == 0  # never [PAD]/[CLS]/[SEP]/[MASK] or unseen ids
    keep = p > 0
    assert stats.chisquare(hist[keep], p[keep] * draws.size).pvalue > 1e-4
    # Hits stay targets; RTD labels mark only the changed tokens.
    assert np.all(batch["mlm_weights"].sum(1) == sel.sum(1))
    np.testing.assert_array_equal(batch["rtd_labels"], (batch["input_ids"] != rows).astype(np.int32))
    assert (draws == rows[sel]).any()  # some hits exist, and they are still targets


def test_uniform_draws_cover_the_whole_vocabulary():
    rows = corpus_rows(4096, 128)
    batch, _ = builder("uniform", ColdStartSampler("uniform", V)).build(rows, np.arange(len(rows)), step=3)
    draws = batch["input_ids"][selected_map(batch)]
    assert stats.chisquare(np.bincount(draws, minlength=V)).pvalue > 1e-4


def test_static_builder_refuses_bad_settings():
    with pytest.raises(ValueError, match="ColdStartSampler"):
        builder("unigram")
    with pytest.raises(ValueError, match="takes bert, unigram, uniform"):
        builder("sas")
    with pytest.raises(ValueError, match="summing to at most 1"):
        builder("bert", mask_token_rate=0.95, random_token_rate=0.1)


# ----------------------------------------------------------------------------- ELECTRA
def electra_rows(b=4096, length=128, seed=1):
    """Rows of varying real length, with a few [SEP]/[MASK] tokens inside (never candidates)."""
    rng = np.random.default_rng(seed)
    rows = corpus_rows(b, length, seed)
    real = np.where(rng.random(b) < 0.5, length, rng.integers(2, length, b))
    rows[np.arange(length)[None, :] >= real[:, None]] = PAD
    inner = (rng.random((b, length)) < 0.03) & (rows != PAD) & (np.arange(length)[None, :] > 0)
    rows[inner] = np.where(rng.random(inner.sum()) < 0.5, SEP, MASK)
    return rows, real


def electra(max_predictions=20):
    return ElectraBatchBuilder(mask_token_rate=0.85, mask_rate=0.15, max_predictions=max_predictions, seed=0,
                               **tables())


def test_electra_budget_candidates_and_counts():
    assert electra_budget(0.15, 128) == 19 and electra_budget(0.15, 512) == 79 and electra_budget(0.15, 32) == 4
    rows, real = electra_rows()
    batch, pending = electra().build(rows, np.arange(len(rows)), step=0)
    assert pending is None
    w = batch["mlm_weights"] > 0
    assert batch["mlm_positions"].shape == (len(rows), 20) and not w[:, 19:].any()  # N = 19 of P = 20 slots
    want = np.maximum(1, np.minimum(19, np.round(0.15 * real)))
    no_candidate = np.isin(rows, [PAD, CLS, SEP, MASK]).all(1)
    assert 0 < no_candidate.sum() < 10  # e.g. [CLS] [SEP]: nothing to predict, no slot
    np.testing.assert_array_equal(w.sum(1), np.where(no_candidate, 0, want))  # fixed count, duplicates included
    pos = batch["mlm_positions"]
    picked = np.take_along_axis(rows, pos, 1)[w]
    assert not np.isin(picked, [PAD, CLS, SEP, MASK]).any()  # candidates: real, not [CLS]/[SEP]/[MASK]
    np.testing.assert_array_equal(batch["mlm_targets"][w], picked)


def test_electra_positions_are_uniform_with_replacement():
    rows = corpus_rows(4096, 128, seed=2)  # every position 1..127 is a candidate
    batch, _ = electra().build(rows, np.arange(len(rows)), step=1)
    pos = batch["mlm_positions"][:, :19]
    assert stats.chisquare(np.bincount(pos.ravel(), minlength=128)[1:]).pvalue > 1e-4
    # With replacement: distinct positions per row ~ c(1 - (1 - 1/c)^N), c = 127 candidates.
    distinct = np.array([np.unique(r).size for r in pos])
    expect = 127 * (1 - (1 - 1 / 127) ** 19)  # ≈ 17.7
    assert abs(distinct.mean() - expect) < 0.05
    assert (distinct < 19).mean() > 0.5  # duplicates are common, not an edge case


def test_electra_85_percent_mask_no_random_tokens():
    rows, _ = electra_rows(seed=3)
    batch, _ = electra().build(rows, np.arange(len(rows)), step=2)
    w = batch["mlm_weights"] > 0
    pos, inputs = batch["mlm_positions"], batch["input_ids"]
    sel = selected_map(batch)
    assert np.all(inputs[~sel] == rows[~sel])
    assert np.all(np.isin(inputs[sel], [MASK]) | (inputs[sel] == rows[sel]))  # no random replacements
    # How many valid slots point at each position.
    hits = np.zeros(rows.shape, np.int64)
    rb, rs = np.nonzero(w)
    np.add.at(hits, (rb, pos[rb, rs]), 1)
    masked = inputs == MASK
    once, twice = (hits == 1) & (rows != MASK), (hits == 2) & (rows != MASK)
    assert_rate(masked[once].sum(), once.sum(), 0.85)
    assert_rate(masked[twice].sum(), twice.sum(), 1 - 0.15**2)  # [MASK] if either slot drew it
    np.testing.assert_array_equal(batch["rtd_labels"], (inputs != rows).astype(np.int32))


def test_electra_refuses_a_budget_beyond_the_slots():
    with pytest.raises(ValueError, match=r"\)\*L\)=19 exceeds sas.max_predictions=18"):
        electra(max_predictions=18).build(corpus_rows(2, 128), np.arange(2), step=0)
