"""Whole-word position selection with a fixed count, vectorised over the batch.

Reference semantics (docs/reference.md §2.3): skip special tokens, group pieces
into words (a continuation piece joins the previous word; a row starting inside
a word starts a word), shuffle the words, add them greedily without overshooting
n = max(1, round(rate · #non-pad tokens)), so the count never exceeds n.
"""
from __future__ import annotations

import numpy as np


def target_counts(input_mask_BxL: np.ndarray, rate: float) -> np.ndarray:
    """n = max(1, round(rate · non-pad tokens)); numpy rounds halves to even, as Python."""
    return np.maximum(1, np.round(rate * input_mask_BxL.sum(axis=1))).astype(np.int32)


def bert_replacements(u, u_random, original, *, mask_id: int, vocab_size: int, mask_rate: float,
                      random_rate: float) -> np.ndarray:
    """BERT's split of the selected tokens (flat arrays of uniforms and original ids): [MASK] where
    `u < mask_rate`, a uniform id over the *full* vocabulary (from `u_random`) where
    `u < mask_rate + random_rate`, else unchanged. The `bert` corruption and SAS's `mlm` cold start."""
    random_ids = np.minimum((u_random * vocab_size).astype(np.int64), vocab_size - 1).astype(np.int32)
    return np.where(u < mask_rate, mask_id,
                    np.where(u < mask_rate + random_rate, random_ids, original)).astype(np.int32)


def word_ids(starts_BxL: np.ndarray, eligible_BxL: np.ndarray) -> np.ndarray:
    """0-based word index of each eligible token in its row; -1 elsewhere."""
    prev = np.zeros_like(eligible_BxL)
    prev[:, 1:] = eligible_BxL[:, :-1]
    new_word = eligible_BxL & (starts_BxL | ~prev)
    ids = np.cumsum(new_word, axis=1, dtype=np.int32) - 1
    return np.where(eligible_BxL, ids, -1)


def select_whole_words(keys_BxL: np.ndarray, starts_BxL, eligible_BxL, n_B,
                       blocked_BxL=None) -> np.ndarray:
    """Boolean [B, L] mask of the selected tokens, at most n_B[b] per row.

    `keys_BxL` are uniforms in [0, 1): word w of a row is shuffled by the key of
    index w (so the same keys give the same selection, whatever the batch).

    `blocked_BxL` marks tokens whose whole word must not be chosen (e.g. carried
    positions under the `refill` policy).
    """
    b, length = eligible_BxL.shape
    wid = word_ids(starts_BxL, eligible_BxL)
    flat = (np.arange(b)[:, None] * length + wid)[wid >= 0]
    lengths = np.bincount(flat, minlength=b * length).reshape(b, length)
    if blocked_BxL is not None:
        blocked = blocked_BxL[wid >= 0].astype(np.int64)
        lengths[np.bincount(flat, weights=blocked, minlength=b * length).reshape(b, length) > 0] = 0
    keys = np.array(keys_BxL, np.float64, copy=True)
    keys[lengths == 0] = 2.0  # non-words sort last
    order = np.argsort(keys, axis=1)
    lens = np.take_along_axis(lengths, order, axis=1)
    n = np.asarray(n_B, np.int64)[:, None]

    # Greedy without overshoot: the leading run that fits is taken in one pass...
    csum = np.cumsum(lens, axis=1)
    take = csum <= n
    first_miss = np.where(take.all(axis=1), length, np.argmin(take, axis=1))
    take &= np.arange(length)[None, :] < first_miss[:, None]
    total = np.where(first_miss > 0, np.take_along_axis(csum, np.maximum(first_miss - 1, 0)[:, None], 1)[:, 0], 0)
    # ...then smaller words may still fill the remainder: scan on while any row
    # has a later word short enough for its remaining capacity.
    inf = np.iinfo(np.int64).max
    suffix_min = np.minimum.accumulate(np.where(lens > 0, lens, inf)[:, ::-1], axis=1)[:, ::-1]
    start = int(first_miss.min()) if b else length
    rows = np.arange(b)
    for r in range(start, length):
        cap = n[:, 0] - total
        # A row can still grow if some word from where its scan stands on fits.
        if not np.any((first_miss < length) & (cap >= suffix_min[rows, np.maximum(r, first_miss).clip(max=length - 1)])):
            break
        fits = (r >= first_miss) & (lens[:, r] > 0) & (lens[:, r] <= cap)
        take[:, r] |= fits
        total = total + np.where(fits, lens[:, r], 0)
    chosen_words = np.zeros((b, length), bool)
    np.put_along_axis(chosen_words, order, take, axis=1)
    return (wid >= 0) & np.take_along_axis(chosen_words, np.maximum(wid, 0), axis=1)


def positions_from_mask(mask_BxL: np.ndarray, max_predictions: int):
    """The True positions of each row, ascending, padded to P slots: (positions, valid)."""
    counts = mask_BxL.sum(axis=1)
    if counts.size and counts.max() > max_predictions:
        raise ValueError(f"a row selects {counts.max()} positions but sas.max_predictions="
                         f"{max_predictions}; raise sas.max_predictions to at least round(mask_rate*seq_len)")
    order = np.argsort(~mask_BxL, axis=1, kind="stable")[:, :max_predictions]
    valid = np.take_along_axis(mask_BxL, order, axis=1)
    return np.where(valid, order, 0).astype(np.int32), valid
