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

    def id_to_piece(self, i: int) -> str:
        return ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")[i] if i < NUM_SPECIAL else f"t{i}"

    def decode(self, ids) -> str:
        return " ".join(self.id_to_piece(int(i)) for i in ids)


class InMemoryCorpus:
    """The `Corpus` interface (rows, read, unigram_counts, tokenizer) over an array."""

    def __init__(self, rows: np.ndarray, tokenizer, unigram_counts: np.ndarray, successors=None):
        self.rows, self.tokenizer, self.unigram_counts = rows, tokenizer, unigram_counts
        self.successors = successors  # [V, branching] for Markov corpora: the allowed next tokens
        self.num_rows, self.seq_len = rows.shape
        self.vocab_size = tokenizer.vocab_size

    def read(self, ids) -> np.ndarray:
        return np.asarray(self.rows[np.asarray(ids)], np.int32)


def markov_corpus(num_rows: int, seq_len: int, vocab_size: int, *, seed: int = 0,
                  branching: int = 2, word_start_frac: float = 0.7, active_tokens: int = 0) -> InMemoryCorpus:
    """`active_tokens` > 0 limits the stream to that many ids (an easier, faster-learnt chain)."""
    rng = np.random.default_rng(seed)
    ordinary = np.arange(NUM_SPECIAL, vocab_size)
    if active_tokens:
        ordinary = rng.choice(ordinary, size=active_tokens, replace=False)
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
    return InMemoryCorpus(rows.astype(np.int32), tokenizer, counts, successors=nxt)


def topic_corpus(num_rows: int, seq_len: int, vocab_size: int, *, num_topics: int = 4, seed: int = 0,
                 word_start_frac: float = 0.7) -> InMemoryCorpus:
    """Rows whose tokens all come from one of `num_topics` disjoint id sets.

    Any visible token reveals the row's topic, so even a tiny encoder learns to
    predict (and sample) in-topic tokens within a few hundred steps, while
    context-free cold-start draws are mostly off-topic. `corpus.topic_of_token`
    and `corpus.topic_of_row` let tests judge a replacement's plausibility.
    """
    rng = np.random.default_rng(seed)
    ordinary = rng.permutation(np.arange(NUM_SPECIAL, vocab_size))
    topic_of_token = np.full(vocab_size, -1)
    groups = np.array_split(ordinary, num_topics)
    for t, ids in enumerate(groups):
        topic_of_token[ids] = t
    topic_of_row = rng.integers(0, num_topics, num_rows)
    body = np.empty((num_rows, seq_len - 1), np.int64)
    for t, ids in enumerate(groups):
        rows = np.flatnonzero(topic_of_row == t)
        weights = 1.0 / np.arange(1, ids.size + 1)  # Zipf-like within a topic
        body[rows] = rng.choice(ids, size=(rows.size, seq_len - 1), p=weights / weights.sum())
    rows = np.concatenate([np.full((num_rows, 1), CLS), body], 1).astype(np.int32)
    special = np.zeros(vocab_size, bool)
    special[[PAD, CLS, SEP, MASK]] = True
    starts = rng.random(vocab_size) < word_start_frac
    starts[special] = True
    corpus = InMemoryCorpus(rows, SyntheticTokenizer(vocab_size, starts, special),
                            np.bincount(body.ravel(), minlength=vocab_size))
    corpus.topic_of_token, corpus.topic_of_row = topic_of_token, topic_of_row
    return corpus
