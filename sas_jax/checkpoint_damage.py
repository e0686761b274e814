"""Why a finished checkpoint cannot be read, as one line, for the CLIs that read one.

`checkpointing.read_model` / `read_step_meta` pass on whatever orbax and tensorstore
raise on a damaged step directory: a TypeError (orbax hides the failure of reading
`state/` metadata and hands back a StepMetadata), a FileNotFoundError (`meta/metadata`
deleted), a JSONDecodeError (truncated JSON), a tensorstore ValueError (truncated
array data). Wrapped in `explained(checkpoint_dir, step)`, such a failure becomes a
UserError naming the step directory and the damaged item, when the files show the
damage; any failure the files do not explain keeps its traceback.

    with checkpoint_damage.explained(checkpoint_dir, step):
        ckpt = checkpointing.read_model(checkpoint_dir, step)

The same diagnosis serves the resume (`checkpointing.Checkpointer`): `damage(step_dir, error,
items=("meta", "state", "store"))` names what its warning line says before it falls back.
Everything here runs inside `checkpointing.quiet_io`, so the teardown tracebacks of the failed
read never reach the user.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re

from sas_jax import checkpointing
from sas_jax.errors import UserError

# Tensorstore's errors start with an absl status code, e.g. "OUT_OF_RANGE: Error reading ...".
_STATUS = re.compile(r"^(OUT_OF_RANGE|DATA_LOSS|NOT_FOUND|FAILED_PRECONDITION|INVALID_ARGUMENT|UNKNOWN|INTERNAL): ")
_ITEMS = ("meta", "state")  # what reading a model needs (`store` is only read when resuming training)


@contextlib.contextmanager
def explained(checkpoint_dir: str, step: int | None = None):
    """Re-raises a failure to read checkpoint `step` of `checkpoint_dir` as a one-line
    UserError when `damage` finds what is wrong with its files; else unchanged."""
    try:
        with checkpointing.quiet_io():
            yield
    except UserError:
        raise
    except Exception as e:
        step_dir = _step_dir(checkpoint_dir, step)
        what = damage(step_dir, e) if step_dir else None
        if what is None:
            raise
        raise UserError(f"checkpoint {step_dir} is damaged: {what}; it cannot be read (re-copy it, or pass "
                        "another --step or --checkpoint_dir)") from e


def damage(step_dir: str, error: BaseException | None = None, items=_ITEMS) -> str | None:
    """What is wrong with the `items` of a step directory (one phrase), or None when nothing
    is found. `error`, the exception reading it raised, may name the file."""
    with checkpointing.quiet_io():
        return _damage(step_dir, error, tuple(items))


def _damage(step_dir: str, error: BaseException | None, items: tuple) -> str | None:
    for item in items:
        if not os.path.isdir(os.path.join(step_dir, item)):
            return f"its {item} item is missing"
    for rel in ("meta/metadata", "state/_METADATA"):
        problem = _json_problem(os.path.join(step_dir, rel)) if rel.split("/")[0] in items else None
        if problem:
            return f"{rel} {problem}"
    if "store" in items:
        problem = _store_problem(os.path.join(step_dir, "store"), step_dir)
        if problem:
            return problem
    if "state" not in items:
        return None
    state = os.path.join(step_dir, "state")
    empty = sorted(os.path.relpath(os.path.join(root, f), step_dir) for root, _, files in os.walk(state)
                   for f in files if os.path.getsize(os.path.join(root, f)) == 0)
    if empty:
        return f"{empty[0]} is empty" + (f" (and {len(empty) - 1} more files)" if len(empty) > 1 else "")
    reason = _tensorstore_reason(error, step_dir) or _state_reason(state, step_dir)
    return f"state/ cannot be read ({reason})" if reason else None


def _store_problem(store: str, step_dir: str) -> str | None:
    """A store item without its files, or with one that is not a whole .npz."""
    import zipfile  # noqa: PLC0415

    files = sorted(f for f in os.listdir(store) if f.startswith("process_") and f.endswith(".npz"))
    if not files:
        return "store/ holds no process_*.npz file"
    for name in files:
        try:
            with zipfile.ZipFile(os.path.join(store, name)) as z:
                bad = z.testzip()
        except (OSError, zipfile.BadZipFile) as e:
            return f"store/{name} is not a whole .npz, truncated? ({e})"
        if bad is not None:
            return f"store/{name} is not a whole .npz ({bad} is corrupt)"
    return None


def _step_dir(checkpoint_dir: str, step) -> str | None:
    try:
        return checkpointing.resolve_step(checkpoint_dir, step)[0]
    except UserError:
        return None


def _json_problem(path: str) -> str | None:
    if not os.path.isfile(path):
        return "is missing"
    try:
        with open(path, "rb") as f:
            json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return f"is not valid JSON, truncated? ({e})"
    return None


def _short(message: str, step_dir: str) -> str:
    """A tensorstore message without its spec dump and long paths, on one line."""
    text = " ".join(str(message).split("[tensorstore_spec")[0].split())
    text = text.replace(os.path.abspath(step_dir) + os.sep, "").replace(os.path.abspath(step_dir), ".")
    parts = text.split(": ")
    if len(parts) > 4:  # status: context: ...: the cause
        text = ": ".join([parts[0], "...", *parts[-2:]])
    return text.rstrip(" .")[:300]


def _tensorstore_reason(error: BaseException | None, step_dir: str) -> str | None:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error)
        if _STATUS.match(text) and os.path.abspath(step_dir) in text:
            return _short(text, step_dir)
        error = error.__cause__ or error.__context__
    return None


def _state_reason(state: str, step_dir: str) -> str | None:
    """The error orbax hides when it reads the tree metadata of `state/`, if any."""
    import orbax.checkpoint as ocp  # noqa: PLC0415
    from etils import epath  # noqa: PLC0415

    absl_log = logging.getLogger("absl")  # orbax warns through absl while it fails
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)
    try:
        ocp.PyTreeCheckpointHandler().metadata(epath.Path(os.path.abspath(state)))
    except Exception as e:  # noqa: BLE001 - any failure here is the damage being looked for
        return _short(f"{type(e).__name__}: {e}" if not _STATUS.match(str(e)) else str(e), step_dir)
    finally:
        absl_log.setLevel(level)
    return None
