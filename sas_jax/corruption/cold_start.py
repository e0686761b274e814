"""Cold-start replacement distributions of the first visit: unigram (with a
sqrt-unigram warm-up) or uniform. Draws are i.i.d. and context-free."""
from __future__ import annotations

import numpy as np


class ColdStartSampler:
    """Draws token ids on the host by inverse-CDF lookup (no per-call normalisation)."""

    def __init__(self, kind: str, vocab_size: int, unigram_counts=None, warmup_steps: int = 0):
        if kind not in ("unigram", "uniform"):
            raise ValueError(f"sas.cold_start={kind!r}; use unigram or uniform")
        self.kind, self.vocab_size, self.warmup_steps = kind, int(vocab_size), int(warmup_steps)
        if kind == "unigram":
            if unigram_counts is None:
                raise ValueError("the unigram cold start needs the corpus' unigram counts")
            counts = np.asarray(unigram_counts, np.float64)
            if counts.shape != (vocab_size,) or counts.sum() <= 0:
                raise ValueError(f"unigram counts must be a positive [{vocab_size}] vector, got "
                                 f"shape {counts.shape}")
            self.probs = counts / counts.sum()
            sqrt = np.sqrt(counts)
            self.warmup_probs = sqrt / sqrt.sum()
            self._cdf = np.cumsum(self.probs)
            self._warmup_cdf = np.cumsum(self.warmup_probs)

    def distribution(self, step: int) -> np.ndarray:
        if self.kind == "uniform":
            return np.full(self.vocab_size, 1.0 / self.vocab_size)
        return self.warmup_probs if step < self.warmup_steps else self.probs

    def tokens(self, u: np.ndarray, step: int) -> np.ndarray:
        """Token ids for uniforms `u` in [0, 1) (inverse CDF), same shape as `u`."""
        u = np.asarray(u, np.float64)
        if self.kind == "uniform":
            return np.minimum((u * self.vocab_size).astype(np.int64), self.vocab_size - 1).astype(np.int32)
        cdf = self._warmup_cdf if step < self.warmup_steps else self._cdf
        return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), self.vocab_size - 1).astype(np.int32)

    def draw(self, rng: np.random.Generator, size, step: int) -> np.ndarray:
        return self.tokens(rng.random(size), step)
