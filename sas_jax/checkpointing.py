"""Checkpoints: orbax CheckpointManager with three items per step.

    state   the TrainState (params, optimizer, step), async, re-shardable
    meta    JSON: config, data-iterator state, parameter shapes (checked on resume)
    store   the self-augmentation store, one .npz per process, keyed by example id

Orbax writes each step into a temporary directory and renames it when complete,
so a failed or interrupted save never damages the previous checkpoint. A leftover
temporary directory (a save cut short by a kill or a full disk) is removed, with a
note, when the next run opens the workdir. A write error (a full disk, a quota, a
read-only folder: `OSError`, or tensorstore's `ValueError("RESOURCE_EXHAUSTED: ...")`)
becomes one line naming the folder, the space a checkpoint needs and the space free.

Restoring validates the newest checkpoint (meta readable and complete, state readable,
the store holding every row this process owns); a damaged one is moved aside to
`<step>.damaged` with a one-line note and the one before it is tried. The note names the
damage as the readers do (`checkpoint_damage.damage`: one diagnosis for both).

Every orbax / tensorstore call runs inside `quiet_io()` (the Checkpointer from open to close,
the readers around each read): the teardown tracebacks of a failed read or write (closed event
loop, orphaned coroutines) never reach the user; the process's hooks are put back after.

`Checkpointer` writes and resumes; the functions at the end read a finished run
(`read_params`, `read_model`, `checkpoint_steps`, `resolve_step`) for fine-tuning,
probing and export.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import re
import shutil
import sys
import threading
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from sas_jax import distributed
from sas_jax.corruption.store import SampleStore
from sas_jax.errors import UserError

# tensorstore reports I/O failures as ValueError("<STATUS>: ..."), e.g. RESOURCE_EXHAUSTED.
_STATUS = re.compile(r"^[A-Z][A-Z_]{3,}: ")
TMP_SUFFIX = ".orbax-checkpoint-tmp"


def is_write_error(e: BaseException) -> bool:
    return isinstance(e, OSError) or (isinstance(e, ValueError) and _STATUS.match(str(e)) is not None)


def short_reason(e: BaseException) -> str:
    """The useful part of an I/O error, on one line."""
    text = str(e.strerror if isinstance(e, OSError) and e.strerror else e)
    os_error = (re.search(r":\s*([^:\[\]]+?)\s*\[os_error_code=", text)  # tensorstore
                or re.search(r"\[OS error \d+: ([^\]]+)\]", text))
    if os_error:
        return os_error.group(1)
    first = text.splitlines()[0] if text else type(e).__name__
    return first if len(first) <= 160 else first[:157] + "..."


class _OneLineErrors(logging.Filter):
    """Drops orbax's logged tracebacks of a failed background save: the error is re-raised
    to the trainer, which reports it in one line."""

    def filter(self, record):
        return not (record.levelno >= logging.ERROR and record.exc_info and "orbax" in (record.pathname or ""))


# ----------------------------------------------------------------------------- quiet I/O
# A failed orbax read or write leaves work behind: tensorstore's callbacks of the reads and
# writes still in flight meet orbax's closed event loop ("RuntimeError: Event loop is closed"),
# the coroutines waiting on them are garbage-collected later ("Exception ignored in: <coroutine
# ...>", thousands of lines of tensorstore specs), and asyncio logs the other fragments'
# errors ("... exception was never retrieved"). The one-line error already said what failed;
# `quiet_io()` drops exactly those, and only while it is open.
_IO_PATHS = (f"{os.sep}orbax{os.sep}", f"{os.sep}tensorstore{os.sep}", f"{os.sep}asyncio{os.sep}")
_quiet = {"depth": 0, "saved": None, "lock": threading.Lock()}


def _closed_loop(exc) -> bool:
    return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


def _io_code(obj) -> bool:
    """A coroutine, or a task running one, whose code is orbax's or tensorstore's."""
    coro = getattr(obj, "get_coro", lambda: obj)()
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    return code is not None and any(p in code.co_filename for p in _IO_PATHS[:2])


def _from_io_library(exc, obj=None) -> bool:
    """An exception (or the object it was ignored in) of orbax's / tensorstore's async I/O."""
    if exc is None:
        return False
    if _closed_loop(exc) or is_write_error(exc):
        return True
    if _io_code(obj):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if any(p in tb.tb_frame.f_code.co_filename for p in _IO_PATHS[:2]):
            return True
        tb = tb.tb_next
    return False


class _AsyncioNoise(logging.Filter):
    """asyncio's reports of orbax's orphaned tasks ("exception was never retrieved", "Task was
    destroyed but it is pending!")."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        return not (_from_io_library(exc) or "orbax" in record.getMessage())


def _live_tasks() -> list:
    """Every asyncio task still alive in the process, on any loop."""
    import asyncio  # noqa: PLC0415

    tasks = getattr(asyncio.tasks, "_all_tasks", getattr(asyncio.tasks, "_scheduled_tasks", None))
    if tasks is None:  # another Python: look through the live objects
        tasks = [o for o in gc.get_objects() if isinstance(o, asyncio.Task)]
    for _ in range(3):
        try:
            return list(tasks)
        except RuntimeError:  # the set changed while copied
            continue
    return []


def _failure_left() -> bool:
    """Whether a failed read or write left anything alive: a task on a closed loop that is
    pending, or done with an error nobody retrieved. Cheap (no collection), so a region whose
    I/O went well closes at once, also in a process with a large heap (a full collection there
    takes a second or more)."""
    return any(t.get_loop().is_closed() and (not t.done() or (not t.cancelled() and t._exception is not None))  # noqa: SLF001
               for t in _live_tasks())


def _orphan_tasks() -> list:
    """Tasks left pending on a closed event loop (orbax's, after a failed read or write): each
    one waits for a tensorstore callback that will report the closed loop, or for nothing (`_stuck`)."""
    return [t for t in _live_tasks() if not t.done() and t.get_loop().is_closed()]


def _stuck(fut, depth: int = 0) -> bool:
    """What an orphan task waits for will not change any more: nothing (it was queued to run when
    orbax closed the loop), a future already done (its wake-up was queued), a tensorstore future
    that is done (its callback met the closed loop), or a gather() of tasks waiting on such.
    Orbax runs each save or read with run_until_complete and closes the loop as soon as the first
    error ends it; the failure's traceback keeps these tasks alive, so waiting for them to be
    collected would wait out `_drain`'s limit."""
    import asyncio  # noqa: PLC0415

    if fut is None or fut.done() or depth > 8:
        return True
    children = getattr(fut, "_children", None)  # gather()'s future
    if children is not None:
        return all(c.done() or (isinstance(c, asyncio.Task) and _stuck(getattr(c, "_fut_waiter", None), depth + 1))
                   for c in children)
    # An awaited tensorstore future: tensorstore's Future is the owner of one of its callbacks.
    owners = [getattr(cb, "__self__", None) for cb, *_ in getattr(fut, "_callbacks", None) or ()]
    sources = [o for o in owners if type(o).__module__ == "tensorstore" and hasattr(o, "done")]
    return bool(sources) and all(o.done() for o in sources)


def _orbax_threads() -> list:
    """Orbax's commit threads still running (one per item of a background save: when one fails,
    the save's error is raised while the others still write, and log their own errors)."""
    return [t for t in threading.enumerate() if type(t).__module__.startswith("orbax.") and t.is_alive()]


def _close_leftovers() -> None:
    """After a failure, closes orbax's and tensorstore's coroutines that will never run again,
    while the modules they need and the quiet hooks are alive. They are kept alive by the
    failure's traceback (the error is raised again `from` it), so no collection frees them before
    the interpreter's shutdown, which would close them itself: "Exception ignored in: <coroutine
    object ... write_fragment ...>", an ImportError, or "coroutine '...async_save' was never
    awaited". Two kinds: the coroutines of tasks pending on a closed loop (`_orphan_tasks`), and
    coroutines never started (a composite save's other items, when one item failed before orbax
    awaited them). Neither can run later: no loop will step the first, nobody holds the second
    but the traceback."""
    import inspect  # noqa: PLC0415
    import types  # noqa: PLC0415

    live = set()  # coroutines of tasks a live loop may still run: left alone
    for t in _live_tasks():
        if not t.done():
            if t.get_loop().is_closed():
                if _io_code(t):
                    t._log_destroy_pending = False  # noqa: SLF001 ("Task was destroyed but it is pending!")
                    _close(t.get_coro())
            else:
                live.add(id(t.get_coro()))
    for c in [o for o in gc.get_objects() if type(o) is types.CoroutineType]:
        if id(c) not in live and _io_code(c) and inspect.getcoroutinestate(c) == inspect.CORO_CREATED:
            _close(c)


def _close(coro) -> None:
    try:
        coro.close()  # GeneratorExit where it waits: its `finally` and `async with` exits run now
    except Exception:  # noqa: BLE001 (a coroutine that ignores GeneratorExit: nothing more to do)
        pass


def _retrieve_io_errors() -> None:
    """Marks the errors of orbax's finished tasks and futures as retrieved. Otherwise asyncio logs
    each one ("... exception was never retrieved", with its traceback) whenever it is collected,
    which can be after the quiet region closed (seen under load, once the one-line error was
    out); the one-line error already reported the failure they are fragments of."""
    import asyncio  # noqa: PLC0415

    for t in _live_tasks():
        if t.done() and not t.cancelled() and _io_code(t):
            t.exception()
    # gather()'s futures; `type` rather than isinstance, which would ask every object its __class__
    for f in [o for o in gc.get_objects() if issubclass(type(o), asyncio.Future)]:
        if f.done() and not f.cancelled() and _from_io_library(getattr(f, "_exception", None)):
            f.exception()


def _drain(limit_s: float = 10.0, failed: bool = True) -> None:
    """Waits (at most `limit_s`) until the orphaned tasks of a failed read or write are gone (and,
    after a failure, orbax's tasks still running on a live loop have finished), and collects
    what they leave, so their noise meets the quiet hooks, not the user's. With `failed` False
    (a region that ended well) it does so only when an earlier failure left something."""
    if not failed and not _failure_left():
        return
    deadline = time.monotonic() + limit_s

    def waiting():
        return any(not _stuck(getattr(t, "_fut_waiter", None)) for t in _orphan_tasks()) or (
            failed and (any(not t.done() and not t.get_loop().is_closed() and _io_code(t) for t in _live_tasks())
                        or _orbax_threads()))

    gc.collect()
    while waiting() and time.monotonic() < deadline:
        time.sleep(0.02)
        gc.collect()
    if failed:
        _close_leftovers()
        _retrieve_io_errors()
    gc.collect()


# A failed save drops orbax's other save coroutines: "RuntimeWarning: coroutine
# 'JsonCheckpointHandler.async_save' was never awaited" (the package has no coroutines of its own).
_UNAWAITED = "coroutine '.*' was never awaited"


def _install_quiet() -> None:
    import warnings  # noqa: PLC0415

    hook, thread_hook, unraisable = sys.excepthook, threading.excepthook, sys.unraisablehook
    noise = _AsyncioNoise()
    warnings.filterwarnings("ignore", message=_UNAWAITED, category=RuntimeWarning)
    _quiet["saved"] = (hook, thread_hook, unraisable, noise, warnings.filters[0])
    logging.getLogger("asyncio").addFilter(noise)
    sys.excepthook = lambda t, v, tb: None if _closed_loop(v) else hook(t, v, tb)
    threading.excepthook = lambda a: None if _from_io_library(a.exc_value) else thread_hook(a)
    sys.unraisablehook = lambda u: None if _from_io_library(u.exc_value, u.object) else unraisable(u)


def _restore_hooks() -> None:
    import warnings  # noqa: PLC0415

    hook, thread_hook, unraisable, noise, unawaited = _quiet["saved"]
    _quiet["saved"] = None
    sys.excepthook, threading.excepthook, sys.unraisablehook = hook, thread_hook, unraisable
    logging.getLogger("asyncio").removeFilter(noise)
    if unawaited in warnings.filters:
        warnings.filters.remove(unawaited)
        mutated = getattr(warnings, "_filters_mutated", None)  # as warnings.filterwarnings does
        if mutated is not None:
            mutated()


def quiet_io_enter() -> None:
    """Opens a quiet region (nested ones share the outermost's hooks); see `quiet_io`."""
    with _quiet["lock"]:
        _quiet["depth"] += 1
        if _quiet["depth"] == 1:
            _install_quiet()


def quiet_io_exit(failed: bool = False) -> None:
    """Closes a quiet region: the outermost one drains what a failed read or write left behind,
    then puts the process's hooks back as they were."""
    if failed or _quiet["depth"] == 1:
        _drain(failed=failed)
    with _quiet["lock"]:
        _quiet["depth"] -= 1
        if _quiet["depth"] == 0:
            _restore_hooks()


@contextlib.contextmanager
def quiet_io():
    """Around every orbax / tensorstore call (the Checkpointer holds one from open to close):
    the teardown tracebacks of a failed read or write never reach the user, who gets the one
    line that names the damage or the write error. The interpreter's hooks
    (`sys.excepthook`, `threading.excepthook`, `sys.unraisablehook`) are wrapped only while a
    region is open, and put back when the outermost one closes; they drop only the noise of
    orbax's and tensorstore's async I/O."""
    quiet_io_enter()
    failed = True
    try:
        yield
        failed = False
    except UserError:  # a refusal of ours, not a failed read or write: drained only if one left something
        failed = _failure_left()
        raise
    finally:
        quiet_io_exit(failed)


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


class StoreHandler(ocp.CheckpointHandler):
    """Writes this process's store rows (with their example ids) to its own file."""

    def save(self, directory: epath.Path, args: "StoreSave"):
        name = f"process_{jax.process_index():05d}_of_{jax.process_count():05d}.npz"
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / name).open("wb") as f:
            np.savez(f, **args.state)

    def restore(self, directory: epath.Path, args: "StoreRestore"):
        """Loads every process file and keeps the rows this store holds (any N → M).
        Returns (rows taken by this store, rows in all the files)."""
        taken = total = 0
        for path in sorted(directory.glob("process_*.npz")):
            with path.open("rb") as f, np.load(f) as z:
                state = {k: z[k] for k in z.files}
                taken += args.store.load_rows(state)
                total += int(np.asarray(state["example_ids"]).size)
        return taken, total


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


class DamagedCheckpoint(Exception):
    """A checkpoint step that cannot be restored (the message says why)."""


# Orbax's default jax.Array handler saves a replicated array "replica-parallel": each replica
# writes a slice of it, and cutting each slice is a small compiled program: ~145 compiles per save
# of a tiny model on 8 devices, about half the cost of a tiny run's two saves. With this handler an
# array is split only where each replica's slice would be at least 4 MiB (on 8 replicas: arrays of
# 32 MiB and more, like a Base model's 94 MiB word embeddings); smaller ones are written whole by
# one replica, as a save without replicas would.
_MIN_REPLICA_SLICE_BYTES = 4 << 20
_array_handler = {"registered": False}


def _register_array_handler() -> None:
    """Registers (once) the jax.Array handler every checkpoint save uses; absl's line about the
    override stays off stderr."""
    if _array_handler["registered"]:
        return
    default = ocp.type_handlers.get_type_handler(jax.Array)
    with _quiet_absl():
        handler = ocp.type_handlers.ArrayHandler(
            min_slice_bytes_for_replica_parallel=_MIN_REPLICA_SLICE_BYTES,
            array_metadata_store=getattr(default, "_array_metadata_store", None))  # as orbax's default
        ocp.type_handlers.register_type_handler(jax.Array, handler, override=True)
    _array_handler["registered"] = True


class Checkpointer:
    def __init__(self, workdir: str, *, keep: int, async_save: bool):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self._remove_unfinished()
        _register_array_handler()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=async_save),
        )
        self._pending = None  # the step of the save in flight
        self._bytes = 0  # about what one checkpoint takes on disk
        self._failed = False
        self.store_rows_missing = 0  # of the last restore: owned rows absent from the checkpoint
        self._filter = _OneLineErrors()
        logging.getLogger("absl").addFilter(self._filter)
        quiet_io_enter()  # every orbax call of this checkpointer, until `close`
        self._quiet = True

    def _remove_unfinished(self) -> None:
        """Removes the temporary folders of saves that never completed (process 0)."""
        if jax.process_index() != 0 or not os.path.isdir(self.directory):
            return
        left = sorted(d for d in os.listdir(self.directory) if d.endswith(TMP_SUFFIX))
        for d in left:
            shutil.rmtree(os.path.join(self.directory, d), ignore_errors=True)
        if left:
            print(f"note: removed {len(left)} unfinished checkpoint folder(s) from an interrupted save in "
                  f"{self.directory}: {', '.join(left)}", flush=True)

    def latest_step(self):
        return self.manager.latest_step()

    def save(self, step: int, state, store: SampleStore | None, meta: dict) -> None:
        """Starts saving step `step` (async for the state); raises UserError on I/O failure.

        `store` is None for objectives that keep no samples: the item is then empty, so
        every row's checkpoint has the same three items."""
        self.wait()  # the previous save first, so its failure is reported as its own
        self._bytes = sum(int(x.nbytes) for x in jax.tree.leaves(state)) + (store.nbytes if store is not None else 0)
        self._pending = step
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                meta=ocp.args.JsonSave(meta),
                store=StoreSave(store.state_dict() if store is not None else {}),
            ), force=True)
        except Exception as e:  # noqa: BLE001 (only write errors are turned into a line)
            if not is_write_error(e):
                raise
            self._fail(step, e)

    def wait(self, step: int | None = None) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001
            if not is_write_error(e):
                raise
            self._fail(self._pending if self._pending is not None else step, e)
        self._pending = None

    def _fail(self, step, e):
        self._failed = True
        _drain()  # the failed save's other writes end first: none writes into the folder removed here
        if jax.process_index() == 0 and step is not None:  # what the failed save left behind
            shutil.rmtree(os.path.join(self.directory, f"{step}{TMP_SUFFIX}"), ignore_errors=True)
        last = [s for s in self.manager.all_steps() if s != step]
        kept = (f"the checkpoint of step {max(last)} is intact and resumable" if last
                else "no earlier checkpoint exists")
        try:
            free = _mib(shutil.disk_usage(self.directory).free)
        except OSError:
            free = "unknown"
        if last:  # what a checkpoint really takes on this disk
            root = os.path.join(self.directory, str(max(last)))
            self._bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
        what = f"checkpoint of step {step}" if step is not None else "a checkpoint"
        raise UserError(f"{what} could not be written in {self.directory} ({short_reason(e)}); "
                        f"a checkpoint needs about {_mib(self._bytes)}, {free} free there; {kept}; free space "
                        "(or move the workdir to a larger disk) and re-run the same command to resume") from e

    def read_meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def check_shapes(self, meta: dict, abstract_state, store: SampleStore | None) -> None:
        """A one-line UserError if the checkpoint's run has another model shape or store layout."""
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

    def _damage(self, step: int, error: BaseException, items: tuple, fallback: str) -> DamagedCheckpoint:
        """The damage of a step that failed to restore, named as the readers name it
        (`checkpoint_damage.damage`), else `fallback` with the error's short reason."""
        from sas_jax import checkpoint_damage  # noqa: PLC0415 (it reads through this module)

        step_dir = os.path.join(self.directory, str(step))
        what = checkpoint_damage.damage(step_dir, error, items) if os.path.isdir(step_dir) else None
        return DamagedCheckpoint(what or f"{fallback} ({short_reason(error)})")

    def _restore_step(self, step: int, abstract_state, store: SampleStore | None, check) -> tuple:
        try:
            meta = self.read_meta(step)
        except Exception as e:  # noqa: BLE001 (any failure to read is damage)
            raise self._damage(step, e, ("meta",), "its meta item is unreadable") from e
        missing = [k for k in ("config", "param_shapes", "data") if k not in meta]
        if missing:
            raise DamagedCheckpoint(f"its meta item lacks {', '.join(missing)}")
        self.check_shapes(meta, abstract_state, store)
        check(meta)  # the run's identity: a UserError, not damage
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if store is not None:
            store.clear()
            items["store"] = StoreRestore(store)
        try:
            out = self.manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:  # noqa: BLE001
            raise self._damage(step, e, tuple(items), "its state or store is unreadable") from e
        self.store_rows_missing = 0
        if store is not None:
            taken, total = out["store"]
            expected = meta.get("store_rows")  # every process's rows, as saved
            if expected is not None and total != expected:
                raise DamagedCheckpoint(f"its store files hold {total:,} of the {expected:,} rows saved")
            # Complete, yet rows this run owns may be absent when the data order changed on purpose
            # (ckpt.allow_changes): those start again from the cold start.
            self.store_rows_missing = store.example_ids.size - taken
        return out["state"], meta

    def restore_latest(self, abstract_state, store: SampleStore | None, check=lambda meta: None):
        """(state, meta, step) of the newest intact checkpoint, or None when there is none.

        `check(meta)` raises UserError for a checkpoint of another run (refused: no fallback).
        A damaged step (any process finds it so) is moved aside to `<step>.damaged` and the
        one before it is tried; if every one is damaged, a one-line UserError."""
        damaged = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            reason = None
            try:
                state, meta = self._restore_step(step, abstract_state, store, check)
            except DamagedCheckpoint as e:
                reason = str(e)
            if not distributed.all_agree(reason is not None):
                return state, meta, step
            reason = reason or "damaged on another process"
            _drain()  # the failed read's leftovers, now (the quiet hooks are on until `close`)
            damaged.append(f"step {step}: {reason}")
            aside = self._move_aside(step)
            if jax.process_index() == 0:
                print(f"warning: the checkpoint of step {step} is damaged ({reason}); moved to {aside}, "
                      "trying the one before", flush=True)
        if damaged:
            raise UserError(f"no intact checkpoint in {self.directory} ({'; '.join(damaged)}); the damaged ones "
                            "were moved to <step>.damaged; use a new --workdir, or re-run this one to start afresh")
        return None

    def _move_aside(self, step: int) -> str:
        src = os.path.join(self.directory, str(step))
        dst = src + ".damaged"
        if jax.process_index() == 0:
            k = 1
            while os.path.exists(dst):
                k += 1
                dst = f"{src}.damaged{k}"
            os.rename(src, dst)
        distributed.barrier(f"checkpoint_aside_{step}")
        self.manager.reload()
        return dst

    def close(self, failing: bool = False):
        """Waits for the last save and closes. A write error of that save becomes the one-line
        UserError, unless it was reported already or the run is `failing` with another error (a
        full disk also stops the metrics log): then the save is cleaned up and the first error stands."""
        try:
            self.manager.close()
        except Exception as e:  # noqa: BLE001
            if not is_write_error(e):
                raise
            if not self._failed:
                try:
                    self._fail(self._pending, e)
                except UserError:
                    if not failing:
                        raise
        finally:
            try:
                if self._quiet:
                    self._quiet = False
                    quiet_io_exit(failed=self._failed)  # a failed save's leftovers: `_drain`
            finally:  # after the drain: orbax's threads of a failed save log their errors until they end
                logging.getLogger("absl").removeFilter(self._filter)


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
    with quiet_io():
        return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(path)


def read_params(checkpoint_dir: str, step: int | None = None) -> tuple:
    """(`state.params` as a tree of numpy arrays, meta) of a finished checkpoint.

    Only the parameters are read (not the optimizer state nor the store)."""
    step_dir, _ = resolve_step(checkpoint_dir, step)
    meta = _read_meta_item(step_dir)
    path = os.path.abspath(os.path.join(step_dir, "state"))
    ckptr = ocp.PyTreeCheckpointer()
    with quiet_io(), _quiet_absl():
        tree = ckptr.metadata(path)
    tree = getattr(getattr(tree, "item_metadata", None), "tree", tree)
    if "params" not in tree:
        raise UserError(f"{path} has no params; it is not a train-state checkpoint")
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree["params"])
    with quiet_io(), _quiet_absl():
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
