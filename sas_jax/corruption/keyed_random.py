"""Counter-based host randomness keyed by (seed, step, example id, position, stream).

Every random number of a batch's corruption is a pure function of these keys, so
the same example at the same step is corrupted identically whatever the number
of processes, the batch slice a process holds, or whether the run was resumed.
A vectorised splitmix64 finaliser (Steele et al.) turns the keys into uniforms.
"""
from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def uniform(seed: int, step: int, example_ids, width: int, stream: int) -> np.ndarray:
    """[len(example_ids), width] float64 uniforms in [0, 1)."""
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(seed) * _GOLDEN + np.uint64(stream))
        base = _mix(base ^ (np.uint64(step) * _GOLDEN))
        rows = _mix(base ^ (np.asarray(example_ids, np.uint64) * _GOLDEN))[:, None]
        x = _mix(rows ^ (np.arange(width, dtype=np.uint64)[None, :] * _GOLDEN + _GOLDEN))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


class Streams:
    """The uniforms of one step's rows: `uniform(stream, width)` → [B, width]."""

    def __init__(self, seed: int, step: int, example_ids):
        self.seed, self.step, self.example_ids = int(seed), int(step), np.asarray(example_ids)

    def uniform(self, stream: int, width: int) -> np.ndarray:
        return uniform(self.seed, self.step, self.example_ids, width, stream)
