"""Checkpoints: orbax CheckpointManager with three items per step.

    state   the TrainState (params, optimizer, step), async, re-shardable
    meta    JSON: config, data-iterator state, parameter shapes (checked on resume)
    store   the self-augmentation store, one .npz per process, keyed by example id

Orbax writes each step into a temporary directory and renames it when complete,
so a failed or interrupted save never damages the previous checkpoint.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from sas_jax.corruption.store import SampleStore
from sas_jax.errors import UserError


class StoreHandler(ocp.CheckpointHandler):
    """Writes this process's store rows (with their example ids) to its own file."""

    def save(self, directory: epath.Path, args: "StoreSave"):
        name = f"process_{jax.process_index():05d}_of_{jax.process_count():05d}.npz"
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / name).open("wb") as f:
            np.savez(f, **args.state)

    def restore(self, directory: epath.Path, args: "StoreRestore"):
        """Loads every process file and keeps the rows this store holds (any N → M)."""
        taken = 0
        for path in sorted(directory.glob("process_*.npz")):
            with path.open("rb") as f, np.load(f) as z:
                taken += args.store.load_rows({k: z[k] for k in z.files})
        return taken


@ocp.args.register_with_handler(StoreHandler, for_save=True)
@dataclasses.dataclass
class StoreSave(ocp.args.CheckpointArgs):
    state: dict


@ocp.args.register_with_handler(StoreHandler, for_restore=True)
@dataclasses.dataclass
class StoreRestore(ocp.args.CheckpointArgs):
    store: SampleStore


def param_shapes(params) -> dict:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(p): list(np.shape(x)) for p, x in flat}


def shape_mismatches(saved: dict, current: dict) -> list[str]:
    out = []
    for k in sorted(set(saved) | set(current)):
        a, b = saved.get(k), current.get(k)
        if a != b:
            out.append(f"{k} is {tuple(a) if a else 'absent'} in the checkpoint, "
                       f"{tuple(b) if b else 'absent'} in this config")
    return out


class Checkpointer:
    def __init__(self, workdir: str, *, keep: int, async_save: bool):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=async_save),
        )

    def latest_step(self):
        return self.manager.latest_step()

    def save(self, step: int, state, store: SampleStore, meta: dict) -> None:
        """Starts saving step `step` (async for the state); raises UserError on I/O failure."""
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                meta=ocp.args.JsonSave(meta),
                store=StoreSave(store.state_dict()),
            ), force=True)
        except OSError as e:
            self._fail(step, e)

    def wait(self, step: int | None = None) -> None:
        try:
            self.manager.wait_until_finished()
        except OSError as e:
            self._fail(step, e)

    def _fail(self, step, e):
        last = [s for s in self.manager.all_steps() if s != step]
        kept = f"the checkpoint of step {max(last)} is intact" if last else "no earlier checkpoint exists"
        raise UserError(f"checkpoint of step {step} could not be written ({e.strerror or e}); "
                        f"{kept}; free disk space or fix {self.directory} and re-run to resume") from e

    def read_meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, step: int, abstract_state, store: SampleStore):
        """(state, meta); the state comes back with the shardings of `abstract_state`."""
        meta = self.read_meta(step)
        current = param_shapes(abstract_state.params)
        bad = shape_mismatches(meta.get("param_shapes", {}), current)
        if bad:
            raise UserError(f"{self.directory} holds a checkpoint of another model shape: {bad[0]}"
                            f"{f' (+{len(bad) - 1} more)' if len(bad) > 1 else ''}; use a new "
                            "--workdir or the config that wrote it")
        saved_p = meta.get("max_predictions")
        if saved_p is not None and saved_p != store.max_predictions:
            raise UserError(f"{self.directory} was written with sas.max_predictions={saved_p}, this "
                            f"config has {store.max_predictions}; use a new --workdir or the same value")
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            store=StoreRestore(store),
        ))
        return out["state"], meta

    def close(self):
        self.manager.close()
