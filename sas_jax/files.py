"""Atomic file writes: a reader, a resumed run or a kill sees the whole file or the old one.

Every writer of a result file (sweep/study manifests, GLUE prediction files, the metrics log's
cut-back, downstream task files, prepared corpora) goes through `atomic_open`: it writes to a
temporary file beside the target and renames it into place, so a process killed mid-write
leaves no half file under the real name. `atomic_dir` does the same for a folder.
"""
from __future__ import annotations

import contextlib
import json
import os


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", **kwargs):
    """`open(path, mode)` whose content appears under `path` only when the block ends cleanly.

    The parent folder is created. On an exception the temporary file is removed and `path` is
    left as it was.
    """
    if not any(m in mode for m in "wx"):
        raise ValueError(f"atomic_open writes a whole file; mode {mode!r} is not a write mode")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, mode.replace("x", "w"), **kwargs) as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str):
    """A folder written whole: yields a temporary folder beside `path`; when the block ends
    cleanly it replaces `path` (an old `path` is moved aside first, then removed), so a
    reader sees the old folder or the new one, never a half-written one. On an exception
    the temporary folder is removed and `path` is left as it was. A kill between the two
    renames leaves the old folder as `<path>.old.<pid>`, which `recover_dir` puts back."""
    import shutil  # noqa: PLC0415

    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp, old = f"{path}.tmp.{os.getpid()}", f"{path}.old.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        if os.path.isdir(path):
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recover_dir(path: str) -> str | None:
    """`path` if it exists; else the old folder an interrupted `atomic_dir` left aside,
    renamed back to `path`; else None."""
    import glob  # noqa: PLC0415

    path = os.path.abspath(path)
    if os.path.isdir(path):
        return path
    for old in sorted(glob.glob(f"{glob.escape(path)}.old.*")):
        if os.path.isdir(old):
            os.replace(old, path)
            return path
    return None


def check_dir(path: str, flag: str) -> str:
    """`path` (absolute) when it is, or can become, a folder this process writes; else one
    UserError line naming it (`flag`, e.g. "--workdir"): it is a file, it lies below a file
    (`--workdir=notes.txt/run`), or its nearest existing folder is not writable. Every CLI
    checks its output folders (--workdir, --out, --output, a corpus_dir it prepares) with it
    before anything runs; nothing is created here."""
    from sas_jax.errors import UserError  # noqa: PLC0415

    if not path:
        raise UserError(f"{flag} is empty; pass a folder path")
    full = os.path.abspath(path)
    if os.path.exists(full) and not os.path.isdir(full):
        raise UserError(f"{flag}={path} is a file, not a folder; pass a folder path (e.g. {path}_dir)")
    parent = full
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"{flag}={path} cannot be a folder: {parent} is a file; pass a path that is not below a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag}={path} cannot be written: {parent} is not writable by this user; pass a folder "
                        "you can write")
    return full


def write_text(path: str, text: str, encoding: str = "utf-8") -> None:
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def write_json(path: str, obj, *, indent: int | None = 2, sort_keys: bool = True) -> None:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=sort_keys)
