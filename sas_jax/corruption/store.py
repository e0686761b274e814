"""The self-augmentation store: the model's samples of the last visit, per example.

Host-side numpy, preallocated for the examples this process owns and keyed by
global example id. Per example it keeps P positions, P sampled tokens and a
count, in the smallest dtypes that fit the sequence length and vocabulary:

    positions  [N, P]  uint8 (L <= 256) or uint16
    tokens     [N, P]  uint16 (V <= 65536) or int32
    count      [N]     uint8; NOT_VISITED (255) until the example's first write

The first `count` slots of a row are valid. Rows are overwritten on every visit.
"""
from __future__ import annotations

import numpy as np

NOT_VISITED = 255


def _smallest_uint(limit: int):
    for dt in (np.uint8, np.uint16, np.uint32):
        if limit <= np.iinfo(dt).max + 1:
            return dt
    raise ValueError(f"no unsigned dtype holds {limit} values")


class SampleStore:
    def __init__(self, example_ids, *, max_predictions: int, seq_len: int, vocab_size: int):
        ids = np.asarray(example_ids, np.int64)
        if ids.ndim != 1 or (ids.size > 1 and np.any(np.diff(ids) <= 0)):
            raise ValueError("SampleStore needs strictly increasing example ids")
        if max_predictions >= NOT_VISITED:
            raise ValueError(f"max_predictions={max_predictions} must be < {NOT_VISITED}")
        self.example_ids = ids
        self.max_predictions, self.seq_len, self.vocab_size = max_predictions, seq_len, vocab_size
        n, p = ids.size, max_predictions
        self.positions = np.zeros((n, p), _smallest_uint(seq_len))
        self.tokens = np.zeros((n, p), np.uint16 if vocab_size <= 65536 else np.int32)
        self.count = np.full((n,), NOT_VISITED, np.uint8)
        # Contiguous ids (the usual case) map to rows by subtraction, not a search.
        self._offset = int(ids[0]) if n and ids[-1] - ids[0] == n - 1 else None

    # ------------------------------------------------------------------ layout
    @property
    def bytes_per_example(self) -> int:
        p = self.max_predictions
        return p * self.positions.itemsize + p * self.tokens.itemsize + self.count.itemsize

    @property
    def nbytes(self) -> int:
        return self.positions.nbytes + self.tokens.nbytes + self.count.nbytes

    def describe(self) -> str:
        return (f"self-augmentation store: {self.example_ids.size:,} examples x "
                f"{self.bytes_per_example} B = {self.nbytes / 2**20:.1f} MiB "
                f"(positions {self.positions.dtype}, tokens {self.tokens.dtype}, count uint8)")

    def rows_of(self, ids) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        if self._offset is not None:
            rows = ids - self._offset
            ok = (rows >= 0) & (rows < self.example_ids.size)
        else:
            rows = np.searchsorted(self.example_ids, ids)
            ok = (rows < self.example_ids.size) & (self.example_ids[np.minimum(rows, self.example_ids.size - 1)] == ids)
        if not np.all(ok):
            raise KeyError(f"example ids not held by this store: {ids[~ok][:5].tolist()}")
        return rows

    # ------------------------------------------------------------------ access
    def read(self, ids):
        """(positions [B,P] int32, tokens [B,P] int32, count [B] int32, visited [B] bool)."""
        rows = self.rows_of(ids)
        count = self.count[rows].astype(np.int32)
        visited = count != NOT_VISITED
        return (self.positions[rows].astype(np.int32), self.tokens[rows].astype(np.int32),
                np.where(visited, count, 0), visited)

    def write(self, ids, positions_BxP, tokens_BxP, valid_BxP):
        """Overwrites the rows of `ids` with the valid slots, compacted to the front."""
        rows = self.rows_of(ids)
        valid = np.asarray(valid_BxP, bool)
        order = np.argsort(~valid, axis=1, kind="stable")
        self.positions[rows] = np.take_along_axis(np.asarray(positions_BxP), order, 1)
        self.tokens[rows] = np.take_along_axis(np.asarray(tokens_BxP), order, 1)
        self.count[rows] = valid.sum(axis=1)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"example_ids": self.example_ids, "positions": self.positions,
                "tokens": self.tokens, "count": self.count}

    def clear(self) -> None:
        """Every row back to "never visited" (before a restore)."""
        self.positions[...] = 0
        self.tokens[...] = 0
        self.count[...] = NOT_VISITED

    def load_rows(self, state: dict) -> int:
        """Copies in the rows of `state` whose ids this store holds (any partition).

        Returns how many rows were taken; ids this store does not hold are ignored,
        so a store saved by N processes re-partitions onto M by id.
        """
        src_ids = np.asarray(state["example_ids"], np.int64)
        if np.asarray(state["positions"]).shape[1:] != self.positions.shape[1:]:
            raise ValueError(f"saved store has {np.asarray(state['positions']).shape[1]} slots per example, "
                             f"this run {self.max_predictions}; sas.max_predictions must match the checkpoint")
        dst = np.searchsorted(self.example_ids, src_ids)
        dst_c = np.minimum(dst, max(self.example_ids.size - 1, 0))
        hit = (dst < self.example_ids.size) & (self.example_ids[dst_c] == src_ids) if self.example_ids.size else np.zeros(src_ids.shape, bool)
        self.positions[dst[hit]] = np.asarray(state["positions"])[hit]
        self.tokens[dst[hit]] = np.asarray(state["tokens"])[hit]
        self.count[dst[hit]] = np.asarray(state["count"])[hit]
        return int(hit.sum())
