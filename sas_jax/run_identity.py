"""What defines a pre-training run, saved in every checkpoint and checked on resume.

A workdir belongs to one run. Re-running the same command resumes it exactly; re-running
with another config would train something else under the old run's name, so a resume
compares the run's identity with the checkpoint's and refuses a difference in one line.

The identity is the flattened config (dotted keys) minus the settings that do not change
what is trained (`FREE`: logging, checkpoint cadence, the mesh — checkpoints re-shard onto
any mesh —, paths and preparation settings, since the corpus is compared by content), plus
a fingerprint of the corpus: row count, sequence length, vocabulary, tokenizer fingerprint,
a hash of the unigram counts and the content hash of its rows (`rows_sha256`: sha256 of
rows.bin, recorded by `prepare` while writing; hashed here once for a corpus prepared before
it existed). Content hashes survive moving the folder; the rows' hash changes with any edit
of a row and with any reordering, which the counts do not see.

Differences fall in two kinds:

- `FIXED`: the checkpoint cannot serve a run that differs in these (the SAS store's slots
  and positions, the parameter shapes): refused, no opt-in; model shape differences are
  refused by the parameter-shape check;
- the corpus (`corpus.*`): refused in a line naming the corpus folder, unless listed in
  `ckpt.allow_changes` (`corpus`); then the SAS store's samples, keyed by example id of the
  old rows, are dropped (the trainer clears them, with a warning);
- `NOTED`: `num_train_steps` may change (a run extended or shortened; the learning-rate
  schedule becomes the new length's from the restored step on), with a note printed;
- everything else (objective settings, λ, optimizer, schedule length, batch size, seed,
  data order, dropout, ...): refused unless listed in `ckpt.allow_changes` (a key such as
  `batch_size`, or a section such as `opt`), for a deliberate continuation that is no
  longer the uninterrupted run (e.g. more steps, a new learning rate).

Keys absent from an older checkpoint's record are not compared (new settings with their
defaults keep old runs resumable).
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from sas_jax.errors import UserError

FREE = ("log.", "ckpt.", "note", "mesh.", "data.corpus_dir", "data.prepare.", "data.prefetch", "resolved.")
FIXED = ("seq_len", "sas.max_predictions", "objective.corruption")
NOTED = ("num_train_steps",)
CORPUS = ("corpus.",)  # an allowed change drops the SAS store (its rows are keyed by example id of this corpus)


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def _matches(key: str, patterns) -> bool:
    return any(key == p or key.startswith(p if p.endswith(".") else p + ".") for p in patterns)


def hash_rows(rows, block_bytes: int = 64 << 20) -> str:
    """sha256 of a rows array's bytes in row order (of a corpus's memmap: rows.bin's bytes),
    read in blocks of about `block_bytes`."""
    h = hashlib.sha256()
    block = max(1, block_bytes // max(1, rows.shape[1] * rows.dtype.itemsize)) if rows.ndim == 2 else len(rows)
    for start in range(0, len(rows), block):
        h.update(np.ascontiguousarray(rows[start:start + block]))
    return h.hexdigest()


def corpus_fingerprint(corpus, note=None) -> dict:
    """The corpus part of a run's identity. A prepared corpus without a recorded `rows_sha256`
    (prepared before it existed) has its rows.bin hashed here, once, and `note(line)` says so."""
    counts = np.ascontiguousarray(np.asarray(corpus.unigram_counts, np.int64))
    rows_hash = (getattr(corpus, "meta", None) or {}).get("rows_sha256")
    if not rows_hash:
        start = time.perf_counter()
        rows_hash = hash_rows(corpus.rows)
        directory = getattr(corpus, "directory", None)
        if directory and note is not None:
            note(f"note: corpus {directory} records no rows_sha256 (prepared before it existed): its rows.bin "
                 f"({corpus.rows.nbytes / 2**20:,.0f} MiB) was hashed once for the resume check in "
                 f"{time.perf_counter() - start:.1f}s; a corpus prepared again records it")
    return {"rows": int(corpus.num_rows), "seq_len": int(corpus.seq_len), "vocab": int(corpus.vocab_size),
            "tokenizer": str(getattr(corpus.tokenizer, "fingerprint", "")),
            "unigram_sha256": hashlib.sha256(counts.tobytes()).hexdigest()[:16], "rows_sha256": rows_hash}


def identity(config_dict: dict, corpus_print: dict | None) -> dict:
    """{dotted key: value} that defines the run."""
    flat = {k: v for k, v in flatten(config_dict).items() if not _matches(k, FREE)}
    if corpus_print:
        flat.update({f"corpus.{k}": v for k, v in corpus_print.items()})
    return flat


def differences(saved: dict, current: dict) -> dict:
    """{key: (saved, current)} for keys recorded in both whose values differ."""
    return {k: (saved[k], current[k]) for k in sorted(set(saved) & set(current)) if saved[k] != current[k]}


def check_resume(saved: dict, current: dict, *, allow: str, has_store: bool, where: str,
                 corpus: str = "the corpus") -> dict:
    """The allowed differences {key: (saved, current)}; a one-line UserError for the others.
    `corpus` names the corpus folder in the refusal of another corpus."""
    diff = differences(saved, current)
    allowed = [p.strip() for p in str(allow or "").split(",") if p.strip()]

    def show(items):
        return "; ".join(f"{k} is {a!r} in the checkpoint, {b!r} now" for k, (a, b) in items)

    hard = [(k, v) for k, v in diff.items() if _matches(k, FIXED)]
    if hard:
        raise UserError(f"{where} holds another run: {show(hard)}; the checkpoint cannot continue with "
                        "that changed: use a new --workdir (or the config that wrote it)")
    data = [(k, v) for k, v in diff.items() if _matches(k, CORPUS) and not _matches(k, tuple(allowed))]
    if data:
        what = ("its rows changed (edited or reordered)" if any(k == "corpus.rows_sha256" for k, _ in data)
                else "it changed")
        short = [(k, tuple(x[:16] + "..." if isinstance(x, str) and len(x) > 16 else x for x in v)) for k, v in data]
        dropped = "; its stored SAS samples are then dropped" if has_store else ""
        raise UserError(f"corpus {corpus} is not the one {where} was trained on: {what} ({show(short)}); use "
                        f"the corpus the run was trained on, or a new --workdir, or continue on this corpus on "
                        f"purpose with --config.ckpt.allow_changes=corpus{dropped}")
    soft = [(k, v) for k, v in diff.items() if not _matches(k, tuple(allowed) + NOTED)]
    if soft:
        raise UserError(f"{where} holds another run: {show(soft)}; use a new --workdir for a new run, or continue "
                        f"this one with the change on purpose: --config.ckpt.allow_changes="
                        f"{','.join(k for k, _ in soft)}")
    return diff
