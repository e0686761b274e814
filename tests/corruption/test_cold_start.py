import numpy as np
import pytest

from sas_jax.corruption.cold_start import ColdStartSampler


def test_unigram_draws_match_counts_and_never_draw_zero_count_tokens():
    counts = np.array([0, 0, 5, 10, 85, 0])
    s = ColdStartSampler("unigram", 6, counts, warmup_steps=0)
    draws = s.draw(np.random.default_rng(0), 200_000, step=10)
    freq = np.bincount(draws, minlength=6) / draws.size
    np.testing.assert_allclose(freq, counts / counts.sum(), atol=3e-3)
    assert freq[[0, 1, 5]].sum() == 0


def test_sqrt_unigram_during_warmup_then_unigram():
    counts = np.array([1, 4, 16, 0])
    s = ColdStartSampler("unigram", 4, counts, warmup_steps=100)
    np.testing.assert_allclose(s.distribution(99), np.sqrt(counts) / np.sqrt(counts).sum())
    np.testing.assert_allclose(s.distribution(100), counts / counts.sum())
    d = s.draw(np.random.default_rng(0), 100_000, step=5)
    np.testing.assert_allclose(np.bincount(d, minlength=4) / d.size, [1 / 7, 2 / 7, 4 / 7, 0], atol=5e-3)


def test_uniform_covers_every_id_including_specials():
    s = ColdStartSampler("uniform", 7)
    d = s.draw(np.random.default_rng(0), 70_000, step=0)
    np.testing.assert_allclose(np.bincount(d, minlength=7) / d.size, np.full(7, 1 / 7), atol=5e-3)


def test_bad_kind_and_counts_are_refused():
    with pytest.raises(ValueError, match="cold_start"):
        ColdStartSampler("zipf", 4)
    with pytest.raises(ValueError, match="unigram counts"):
        ColdStartSampler("unigram", 4, np.zeros(4))
