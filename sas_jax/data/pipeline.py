"""Input pipeline: example order, per-process slices, SAS batches, prefetch to device.

Order: one global permutation P of the row ids from the seed. Global batch k of
every epoch is P[k·B:(k+1)·B] (the reference reads the same shuffled order every
epoch, so a stored sample is exactly one epoch old); process i takes its
contiguous slice of each global batch, so it owns a fixed set of example ids
(and their store rows) whatever the epoch, and the global batches do not depend
on the number of processes. `shuffle="per_epoch"` re-permutes each process's
own ids every epoch (a deliberate deviation: staleness then varies).

Rows held out for evaluation (`data.eval_rows`, `sas_jax/evaluation.py`) are left
out of the permutation: training never reads them.

The iterator state is only the step: everything else derives from (seed, step).
"""
from __future__ import annotations

import queue
import threading

import jax
import numpy as np

from sas_jax.errors import UserError


class ExampleOrder:
    def __init__(self, num_rows: int, global_batch: int, *, seed: int, shuffle: str = "once",
                 process_index: int = 0, process_count: int = 1, held_out=()):
        if shuffle not in ("once", "per_epoch"):
            raise UserError(f"data.shuffle={shuffle!r} is unknown; use once or per_epoch")
        if global_batch % process_count:
            raise UserError(f"batch_size={global_batch} is not divisible by the {process_count} "
                            "processes; pick a multiple of the process count")
        held_out = np.asarray(held_out, np.int64)
        num_train = num_rows - held_out.size
        if num_train < global_batch:
            raise UserError(f"the corpus has {num_train} training rows ({num_rows} less {held_out.size} held out), "
                            f"fewer than one global batch of {global_batch}; use a bigger corpus, a smaller "
                            "--config.batch_size or fewer --config.data.eval_rows")
        self.num_rows, self.global_batch, self.seed, self.shuffle = num_rows, global_batch, seed, shuffle
        self.process_index, self.process_count = process_index, process_count
        self.local_batch = global_batch // process_count
        self.steps_per_epoch = num_train // global_batch
        dtype = np.int32 if num_rows < 2**31 else np.int64
        perm = np.random.default_rng([seed, 0x0D0]).permutation(num_train).astype(dtype)
        if held_out.size:  # the same draw, over the training ids only
            perm = np.setdiff1d(np.arange(num_rows, dtype=dtype), held_out)[perm]
        used = perm[: self.steps_per_epoch * global_batch].reshape(self.steps_per_epoch, global_batch)
        lo = process_index * self.local_batch
        self._local = np.ascontiguousarray(used[:, lo : lo + self.local_batch])  # [steps, local_B]
        self.example_ids = np.sort(self._local.ravel()).astype(np.int64)  # owned by this process
        self._epoch_cache: tuple[int, np.ndarray] | None = None

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def batch_ids(self, step: int) -> np.ndarray:
        """Global example ids of this process's rows at `step`."""
        epoch, k = divmod(step, self.steps_per_epoch)
        if self.shuffle == "once":
            return self._local[k].astype(np.int64)
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch, self.process_index, 0x0E0])
            self._epoch_cache = (epoch, rng.permutation(self._local.ravel()))
        order = self._epoch_cache[1]
        return order[k * self.local_batch : (k + 1) * self.local_batch].astype(np.int64)

    def state(self, step: int) -> dict:
        return {"step": int(step), "epoch": self.epoch_of(step),
                "position": int(step % self.steps_per_epoch), "seed": self.seed,
                "shuffle": self.shuffle, "num_rows": self.num_rows}


def to_global(batch: dict, shardings: dict) -> dict:
    """Local numpy rows → global jax.Arrays (each process passes only its rows)."""
    return {k: jax.make_array_from_process_local_data(shardings[k], v) for k, v in batch.items()}


class Prefetcher:
    """Builds batches for steps [start, stop) in a thread, `depth` ahead, on device.

    Each item is (step, device batch, pending write). The trainer runs one
    prefetcher per epoch and flushes the store's writes between epochs, so no
    batch is built from a row whose new samples have not yet arrived.
    """

    def __init__(self, make_batch, start: int, stop: int, depth: int):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make_batch, start, stop), daemon=True)
        self._thread.start()

    def _run(self, make_batch, start, stop):
        try:
            for step in range(start, stop):
                item = (step, *make_batch(step))
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as e:  # surface errors in the consumer
            self._q.put(e)

    def get(self):
        item = self._q.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
