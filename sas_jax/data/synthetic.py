"""A learnable synthetic corpus held in memory, for tests and CPU benchmarks.

Rows are `[CLS]` + a stream from a sparse random Markov chain over the non-special
ids, so a model can learn to predict masked tokens from their neighbours.
"""
from __future__ import annotations

import dataclasses

import numpy as np

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
NUM_SPECIAL = 5


@dataclasses.dataclass
class SyntheticTokenizer:
    vocab_size: int
    word_start_table: np.ndarray
    special_table: np.ndarray
    pad_id: int = PAD
    unk_id: int = UNK
    cls_id: int = CLS
    sep_id: int = SEP
    mask_id: int = MASK
    fingerprint: str = "synthetic"

    def starts_word(self, ids):
        return self.word_start_table[ids]


class InMemoryCorpus:
    """The `Corpus` interface (rows, read, unigram_counts, tokenizer) over an array."""

    def __init__(self, rows: np.ndarray, tokenizer, unigram_counts: np.ndarray):
        self.rows, self.tokenizer, self.unigram_counts = rows, tokenizer, unigram_counts
        self.num_rows, self.seq_len = rows.shape
        self.vocab_size = tokenizer.vocab_size

    def read(self, ids) -> np.ndarray:
        return np.asarray(self.rows[np.asarray(ids)], np.int32)


def markov_corpus(num_rows: int, seq_len: int, vocab_size: int, *, seed: int = 0,
                  branching: int = 2, word_start_frac: float = 0.7) -> InMemoryCorpus:
    rng = np.random.default_rng(seed)
    ordinary = np.arange(NUM_SPECIAL, vocab_size)
    nxt = rng.choice(ordinary, size=(vocab_size, branching))  # each token has few successors
    stream = np.empty(num_rows * (seq_len - 1), np.int64)
    tok = rng.choice(ordinary)
    choices = rng.integers(0, branching, size=stream.size)
    for i in range(stream.size):  # built once per test corpus; small
        stream[i] = tok
        tok = nxt[tok, choices[i]]
    rows = np.concatenate([np.full((num_rows, 1), CLS), stream.reshape(num_rows, seq_len - 1)], 1)
    special = np.zeros(vocab_size, bool)
    special[[PAD, CLS, SEP, MASK]] = True
    starts = rng.random(vocab_size) < word_start_frac
    starts[special] = True
    tokenizer = SyntheticTokenizer(vocab_size, starts, special)
    counts = np.bincount(stream, minlength=vocab_size)
    return InMemoryCorpus(rows.astype(np.int32), tokenizer, counts)
