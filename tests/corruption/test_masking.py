import numpy as np
import pytest

from sas_jax.corruption import masking


def test_target_count_is_round_of_15_percent_with_cls():
    mask = np.ones((3, 128), bool)
    mask[1, 100:] = False  # 100 real tokens -> 15
    mask[2, 10:] = False  # 10 real tokens -> round(1.5) = 2 (half to even)
    assert masking.target_counts(mask, 0.15).tolist() == [19, 15, 2]


def test_word_ids_join_continuations_and_start_mid_word():
    starts = np.array([[1, 0, 1, 0, 0, 1, 1]], bool)
    eligible = np.array([[0, 1, 1, 1, 1, 1, 0]], bool)  # [CLS] first, special last
    # position 1 is a continuation piece but starts the row's first word
    assert masking.word_ids(starts, eligible).tolist() == [[-1, 0, 1, 1, 1, 2, -1]]


def test_selection_takes_whole_words_never_overshoots_and_hits_target():
    rng = np.random.default_rng(0)
    b, length = 256, 128
    starts = rng.random((b, length)) < 0.6
    eligible = np.ones((b, length), bool)
    eligible[:, 0] = False
    n = masking.target_counts(np.ones((b, length), bool), 0.15)
    sel = masking.select_whole_words(rng.random((b, length)), starts, eligible, n)
    counts = sel.sum(1)
    assert np.all(counts <= n)
    assert np.mean(counts == n) > 0.98  # almost always exactly n (19)
    assert not sel[:, 0].any()
    wid = masking.word_ids(starts, eligible)
    for r in range(16):  # every word is taken whole or not at all
        for w in np.unique(wid[r][wid[r] >= 0]):
            piece = sel[r][wid[r] == w]
            assert piece.all() or not piece.any()


def test_selection_matches_sequential_greedy_reference():
    """The vectorised greedy equals the reference's loop over shuffled words."""
    rng = np.random.default_rng(3)
    starts = rng.random((64, 40)) < 0.4
    eligible = rng.random((64, 40)) < 0.9
    n = rng.integers(1, 12, size=64)
    keys = np.random.default_rng(7).random((64, 40))
    sel = masking.select_whole_words(keys, starts, eligible, n)
    wid = masking.word_ids(starts, eligible)
    for r in range(64):
        words = [w for w in range(40) if np.any(wid[r] == w)]
        words.sort(key=lambda w: keys[r, w])
        total, chosen = 0, set()
        for w in words:
            size = int(np.sum(wid[r] == w))
            if total + size <= n[r]:
                chosen.add(w)
                total += size
        expect = np.isin(wid[r], list(chosen)) & (wid[r] >= 0)
        np.testing.assert_array_equal(sel[r], expect)


def test_blocked_words_are_never_selected():
    rng = np.random.default_rng(1)
    starts = np.ones((4, 20), bool)
    starts[:, 5] = False  # tokens 4,5 form one word
    eligible = np.ones((4, 20), bool)
    blocked = np.zeros((4, 20), bool)
    blocked[:, 5] = True
    for _ in range(20):
        sel = masking.select_whole_words(rng.random((4, 20)), starts, eligible, np.full(4, 10), blocked_BxL=blocked)
        assert not sel[:, 4].any() and not sel[:, 5].any()
        assert np.all(sel.sum(1) == 10)


def test_positions_from_mask_ascending_and_padded():
    mask = np.zeros((2, 10), bool)
    mask[0, [7, 2, 4]] = True
    pos, valid = masking.positions_from_mask(mask, 4)
    assert pos.tolist() == [[2, 4, 7, 0], [0, 0, 0, 0]]
    assert valid.tolist() == [[True, True, True, False], [False] * 4]
    with pytest.raises(ValueError, match="max_predictions"):
        masking.positions_from_mask(mask, 2)


def test_each_row_is_selected_independently_of_the_rest_of_the_batch():
    """Regression: the scan once stopped when the rows still scanning could not grow,
    cutting off rows whose scan had not started yet, so a row's selection depended on
    its batch mates (and on how many processes split the batch)."""
    rng = np.random.default_rng(11)
    starts = rng.random((32, 40)) < 0.5
    eligible = np.ones((32, 40), bool)
    n = np.full(32, 6)
    keys = rng.random((32, 40))
    together = masking.select_whole_words(keys, starts, eligible, n)
    for r in range(32):
        alone = masking.select_whole_words(keys[r:r + 1], starts[r:r + 1], eligible[r:r + 1], n[r:r + 1])
        np.testing.assert_array_equal(alone[0], together[r])
