"""Checkpoints: orbax CheckpointManager with three items per step.

    state   the TrainState (params, optimizer, step), async, re-shardable
    meta    JSON: config, data-iterator state, parameter shapes (checked on resume)
    store   the self-augmentation store, one .npz per process, keyed by example id

Orbax writes each step into a temporary directory and renames it when complete,
so a failed or interrupted save never damages the previous checkpoint.

`Checkpointer` writes and resumes; the functions at the end read a finished run
(`read_params`, `read_model`, `checkpoint_steps`, `resolve_step`) for fine-tuning,
probing and export.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
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

    def save(self, step: int, state, store: SampleStore | None, meta: dict) -> None:
        """Starts saving step `step` (async for the state); raises UserError on I/O failure.

        `store` is None for objectives that keep no samples: the item is then empty, so
        every row's checkpoint has the same three items."""
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                meta=ocp.args.JsonSave(meta),
                store=StoreSave(store.state_dict() if store is not None else {}),
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

    def restore(self, step: int, abstract_state, store: SampleStore | None):
        """(state, meta); the state comes back with the shardings of `abstract_state`."""
        meta = self.read_meta(step)
        current = param_shapes(abstract_state.params)
        bad = shape_mismatches(meta.get("param_shapes", {}), current)
        if bad:
            raise UserError(f"{self.directory} holds a checkpoint of another model shape: {bad[0]}"
                            f"{f' (+{len(bad) - 1} more)' if len(bad) > 1 else ''}; use a new "
                            "--workdir or the config that wrote it")
        saved_p = meta.get("max_predictions")
        if store is not None and saved_p is not None and saved_p != store.max_predictions:
            raise UserError(f"{self.directory} was written with sas.max_predictions={saved_p}, this "
                            f"config has {store.max_predictions}; use a new --workdir or the same value")
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if store is not None:
            items["store"] = StoreRestore(store)
        out = self.manager.restore(step, args=ocp.args.Composite(**items))
        return out["state"], meta

    def close(self):
        self.manager.close()


# ----------------------------------------------------------------------------- reading
# A finished run, outside training (fine-tuning, probing, export): `checkpoint_dir`
# is a pre-training --workdir or its `checkpoints/` folder; `step` None or < 0 is the
# latest finished step. Parameters come back as numpy, whatever mesh wrote them.


@dataclasses.dataclass
class FinishedCheckpoint:
    """What `read_model` reads: the encoder's shape, every parameter (heads included),
    the run's tokenizer, its meta item, and where it came from."""

    cfg: object  # sas_jax.models.ModelConfig
    params: dict  # numpy arrays: embeddings, encoder (or generator/discriminator), heads
    tokenizer: object  # sas_jax.data.tokenizer.Tokenizer
    meta: dict  # the checkpoint's meta item (config, data-iterator state, parameter shapes)
    step: int
    source: dict  # {"kind": "checkpoint", "checkpoint_dir", "step", "objective"}


def _checkpoints_root(checkpoint_dir: str) -> str | None:
    for root in (os.path.join(checkpoint_dir, "checkpoints"), checkpoint_dir):
        if os.path.isdir(root) and any(d.isdigit() for d in os.listdir(root)):
            return root
    return None


def checkpoint_steps(checkpoint_dir: str) -> list:
    """The finished checkpoint steps (those with a state item), ascending; [] if none."""
    root = _checkpoints_root(checkpoint_dir)
    if root is None:
        return []
    return sorted(int(d) for d in os.listdir(root)
                  if d.isdigit() and os.path.isdir(os.path.join(root, d, "state")))


def latest_step(checkpoint_dir: str) -> int | None:
    """The last finished step, or None when there is none."""
    steps = checkpoint_steps(checkpoint_dir)
    return steps[-1] if steps else None


def resolve_step(checkpoint_dir: str, step: int | None = None) -> tuple:
    """(step directory, step) of a finished checkpoint; a one-line UserError otherwise."""
    if not os.path.isdir(checkpoint_dir):
        raise UserError(f"checkpoint dir {checkpoint_dir} not found; pass the --workdir of a "
                        "pre-training run (it holds checkpoints/<step>/)")
    steps = checkpoint_steps(checkpoint_dir)
    if not steps:
        raise UserError(f"{checkpoint_dir} holds no finished checkpoint (checkpoints/<step>/state); "
                        "pre-train first or pass another --checkpoint_dir")
    if step is None or int(step) < 0:
        step = steps[-1]
    if int(step) not in steps:
        raise UserError(f"{checkpoint_dir} has no checkpoint of step {step}; it has steps "
                        f"{', '.join(map(str, steps))}")
    return os.path.join(_checkpoints_root(checkpoint_dir), str(int(step))), int(step)


def read_step_meta(checkpoint_dir: str, step: int | None = None) -> dict:
    """The meta item of one finished checkpoint (config, iterator state, shapes)."""
    step_dir, _ = resolve_step(checkpoint_dir, step)
    return _read_meta_item(step_dir)


def _read_meta_item(step_dir: str) -> dict:
    path = os.path.abspath(os.path.join(step_dir, "meta"))
    if not os.path.isdir(path):
        raise UserError(f"{step_dir} has no meta item; it is not a checkpoint written by sas_jax.train")
    return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(path)


def read_params(checkpoint_dir: str, step: int | None = None) -> tuple:
    """(`state.params` as a tree of numpy arrays, meta) of a finished checkpoint.

    Only the parameters are read (not the optimizer state nor the store)."""
    step_dir, _ = resolve_step(checkpoint_dir, step)
    meta = _read_meta_item(step_dir)
    path = os.path.abspath(os.path.join(step_dir, "state"))
    ckptr = ocp.PyTreeCheckpointer()
    with _quiet_absl():
        tree = ckptr.metadata(path)
    tree = getattr(getattr(tree, "item_metadata", None), "tree", tree)
    if "params" not in tree:
        raise UserError(f"{path} has no params; it is not a train-state checkpoint")
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree["params"])
    with _quiet_absl():
        out = ckptr.restore(path, args=ocp.args.PyTreeRestore(
            item={"params": tree["params"]}, restore_args={"params": restore_args}, partial_restore=True))
    return jax.tree.map(np.asarray, out["params"]), meta


def read_model(checkpoint_dir: str, step: int | None = None, *, tokenizer: str = "") -> FinishedCheckpoint:
    """The model of a finished checkpoint: its shape from `meta["config"]["model"]` (the
    vocabulary from the word table), all parameters, and the run's tokenizer (`tokenizer`
    overrides it; see `data.corpus.tokenizer_of_run`)."""
    from sas_jax.data.corpus import tokenizer_of_run  # noqa: PLC0415
    from sas_jax.models.config import ModelConfig  # noqa: PLC0415

    step_dir, step = resolve_step(checkpoint_dir, step)
    params, meta = read_params(checkpoint_dir, step)
    config = meta.get("config", {}) or {}
    embeddings = params.get("embeddings", {}).get("word_embeddings", {}).get("embedding")
    if embeddings is None:
        raise UserError(f"{step_dir} has no embeddings/word_embeddings params (it has {sorted(params)}); "
                        "is it a pre-training checkpoint of this package?")
    model_cfg = dict(config.get("model", {}))
    model_cfg.pop("vocab_size", None)
    try:
        cfg = ModelConfig.from_config(model_cfg, vocab_size=int(embeddings.shape[0]))
    except ValueError as e:
        raise UserError(f"{step_dir}: its model config cannot be read ({e})") from None
    workdir = os.path.dirname(_checkpoints_root(checkpoint_dir))  # the run's --workdir
    tok = tokenizer_of_run(workdir, config, tokenizer)
    source = {"kind": "checkpoint", "checkpoint_dir": os.path.abspath(checkpoint_dir), "step": step,
              "objective": config.get("objective", {}).get("corruption", "sas")}
    return FinishedCheckpoint(cfg, params, tok, meta, step, source)


@contextlib.contextmanager
def _quiet_absl():
    """Orbax warns (through absl) that an item read on its own has no step metadata."""
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl_log.setLevel(level)
