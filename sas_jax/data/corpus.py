"""Reader of a corpus written by `python -m sas_jax.prepare` (format: sas_jax/data/prepare.py).

    corpus = Corpus.open("/data/demo_corpus")
    batch = corpus.read(np.array([5, 2, 9]))   # int32 [3, seq_len], rows in that order

Rows are memory-mapped read-only, so opening a multi-GB corpus costs nothing and
each process touches only the rows it reads.
"""
from __future__ import annotations

import glob
import json
import os

import numpy as np

from sas_jax.data import prepare as prepare_lib
from sas_jax.data import tokenizer as tokenizer_lib
from sas_jax.errors import UserError

_REQUIRED = ("format_version", "seq_len", "num_rows", "dtype", "vocab_size",
             "tokenizer_file", "tokenizer_fingerprint")


def _stored_lowercase(meta: dict) -> bool:
    lowercase = meta.get("tokenizer_lowercase")
    return True if lowercase is None else bool(lowercase)


def stored_tokenizer(directory: str | os.PathLike, meta: dict | None = None) -> tokenizer_lib.Tokenizer:
    """The copy of the tokenizer a prepared corpus keeps (meta.json's `tokenizer_file`,
    with its `tokenizer_lowercase`); `meta` is read from the directory when not given."""
    directory = os.fspath(directory)
    if meta is None:
        with open(os.path.join(directory, prepare_lib.META_FILE)) as f:
            meta = json.load(f)
    return tokenizer_lib.load_tokenizer(os.path.join(directory, meta["tokenizer_file"]),
                                        lowercase=_stored_lowercase(meta))


def tokenizer_of_run(workdir: str | os.PathLike, config: dict, override: str = "") -> tokenizer_lib.Tokenizer:
    """The tokenizer a pre-training run used: `override` (a .model or vocab.txt) if
    given, else the copy in its corpus (`data.corpus_dir` of the run's `config`, a
    relative one under `workdir` as the trainer resolves it), else the file of
    `data.prepare.tokenizer`. UserError when none of them is there."""
    if override:
        return tokenizer_lib.load_tokenizer(override)
    data = dict(config.get("data", {}) or {})
    corpus_dir = data.get("corpus_dir", "") or ""
    if corpus_dir and not os.path.isabs(corpus_dir):
        corpus_dir = os.path.join(os.fspath(workdir), corpus_dir)
    if corpus_dir and os.path.isfile(os.path.join(corpus_dir, prepare_lib.META_FILE)):
        return stored_tokenizer(corpus_dir)
    tok = (data.get("prepare", {}) or {}).get("tokenizer", "")
    if tok and os.path.isfile(tok):
        return tokenizer_lib.load_tokenizer(tok)
    raise UserError(f"cannot find the tokenizer of {workdir} (corpus dir {corpus_dir or '?'} is gone); "
                    "pass init_from.tokenizer=<the .model or vocab.txt it was trained with>")


class Corpus:
    """A prepared corpus: `rows` [num_rows, seq_len] (memmap), `unigram_counts` [V],
    `meta` (the parsed meta.json) and the `tokenizer` it was built with."""

    def __init__(self, directory: str, meta: dict, rows: np.ndarray, unigram_counts: np.ndarray,
                 tokenizer: tokenizer_lib.Tokenizer):
        self.directory = directory
        self.meta = meta
        self._rows = rows
        self._counts = unigram_counts
        self._tokenizer = tokenizer

    @classmethod
    def open(cls, directory: str | os.PathLike,
             tokenizer: tokenizer_lib.Tokenizer | str | os.PathLike | None = None) -> "Corpus":
        """Opens `directory`. A `tokenizer` (object or file path) must be the one the
        corpus was prepared with (same fingerprint); by default the copy stored in the
        directory is loaded."""
        directory = os.fspath(directory)
        meta_path = os.path.join(directory, prepare_lib.META_FILE)
        if not os.path.isdir(directory):
            raise UserError(f"corpus dir {directory} not found; prepare one with "
                            "`python -m sas_jax.prepare --input=... --output=<dir>` or fix the path")
        if not os.path.isfile(meta_path):
            raise UserError(f"corpus dir {directory} has no {prepare_lib.META_FILE} (not a prepared "
                            "corpus, or preparation did not finish); run `python -m sas_jax.prepare "
                            f"--output={directory}` first")
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{meta_path} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); "
                            "re-run `python -m sas_jax.prepare` into a fresh dir") from None
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise UserError(f"{meta_path} lacks {', '.join(missing)}; re-run `python -m sas_jax.prepare` "
                            "into a fresh dir")
        if meta["format_version"] != prepare_lib.FORMAT_VERSION:
            raise UserError(f"corpus {directory} has format_version {meta['format_version']}, this code "
                            f"reads {prepare_lib.FORMAT_VERSION}; re-run `python -m sas_jax.prepare`")

        seq_len, num_rows = int(meta["seq_len"]), int(meta["num_rows"])
        dtype = np.dtype(meta["dtype"])
        rows_path = os.path.join(directory, prepare_lib.ROWS_FILE)
        expected = num_rows * seq_len * dtype.itemsize
        actual = os.path.getsize(rows_path) if os.path.isfile(rows_path) else -1
        if actual != expected:
            what = "is missing" if actual < 0 else f"has {actual} bytes, expected {expected}"
            raise UserError(f"{rows_path} {what}; the corpus is damaged, re-run `python -m sas_jax.prepare`")
        rows = np.memmap(rows_path, dtype=dtype, mode="r", shape=(num_rows, seq_len))

        counts_path = os.path.join(directory, prepare_lib.COUNTS_FILE)
        if not os.path.isfile(counts_path):
            raise UserError(f"{counts_path} is missing; the corpus is damaged, re-run `python -m sas_jax.prepare`")
        counts = np.load(counts_path)
        if counts.shape != (int(meta["vocab_size"]),):
            raise UserError(f"{counts_path} has shape {counts.shape}, expected ({meta['vocab_size']},); "
                            "the corpus is damaged, re-run `python -m sas_jax.prepare`")
        counts.setflags(write=False)

        lowercase = _stored_lowercase(meta)
        if tokenizer is None:
            tokenizer = stored_tokenizer(directory, meta)
        elif isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = tokenizer_lib.load_tokenizer(tokenizer, lowercase=lowercase)
        if tokenizer.fingerprint != meta["tokenizer_fingerprint"]:
            raise UserError(f"tokenizer {tokenizer.path} (sha256 {tokenizer.fingerprint[:12]}) does not "
                            f"match the corpus prepared with {meta['tokenizer_file']} (sha256 "
                            f"{meta['tokenizer_fingerprint'][:12]}) in {directory}; re-run prepare or "
                            "pass the tokenizer it was built with")
        if getattr(tokenizer, "lowercase", lowercase) != lowercase:
            raise UserError(f"tokenizer {tokenizer.path} has lowercase={tokenizer.lowercase} but the corpus "
                            f"in {directory} was prepared with lowercase={lowercase}; re-run prepare or "
                            "pass the tokenizer it was built with")
        if tokenizer.vocab_size != int(meta["vocab_size"]):
            raise UserError(f"tokenizer {tokenizer.path} has {tokenizer.vocab_size} tokens but the corpus "
                            f"says {meta['vocab_size']}; the corpus is damaged, re-run prepare")
        return cls(directory, meta, rows, counts, tokenizer)

    # ---- properties
    @property
    def rows(self) -> np.ndarray:
        """Read-only memmap [num_rows, seq_len] (uint16 or int32)."""
        return self._rows

    @property
    def unigram_counts(self) -> np.ndarray:
        """int64 [vocab_size]: counts of the stream tokens in rows[:, 1:]."""
        return self._counts

    @property
    def tokenizer(self) -> tokenizer_lib.Tokenizer:
        return self._tokenizer

    @property
    def seq_len(self) -> int:
        return int(self.meta["seq_len"])

    @property
    def num_rows(self) -> int:
        return int(self.meta["num_rows"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return (f"Corpus({self.directory!r}, num_rows={self.num_rows}, seq_len={self.seq_len}, "
                f"vocab_size={self.vocab_size})")

    # ---- access
    def read(self, ids: np.ndarray) -> np.ndarray:
        """Rows `ids` as int32 [len(ids), seq_len], in the order asked. The memmap is
        read in sorted order (sequential on disk); duplicates are allowed."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"row ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_rows):
            raise IndexError(f"row ids must be in [0, {self.num_rows}), got {ids.min()}..{ids.max()}")
        order = np.argsort(ids, kind="stable")
        out = np.empty((ids.size, self.seq_len), np.int32)
        out[order] = self._rows[ids[order]]
        return out


# ----------------------------------------------------------------------------- a run's corpus
def open_corpus(config, workdir: str, *, prepare_here: bool = False):
    """The prepared corpus named by `data.corpus_dir`.

    A config with `data.prepare.text_files` (the demo) prepares it on first use, but only at
    its default place, `<workdir>/demo_corpus` (or where the caller says, `prepare_here`, as
    the study tool does for its shared corpus): a mistyped `data.corpus_dir` is refused like
    in every other config instead of silently preparing a new corpus there."""
    from sas_jax import config_lib  # noqa: PLC0415

    corpus_dir = config.data.corpus_dir
    prepare_here = prepare_here or corpus_dir == config_lib.DEMO_CORPUS_DIR
    if not corpus_dir:
        raise UserError("data.corpus_dir is empty; prepare a corpus with `python -m sas_jax.prepare` "
                        "and pass --config.data.corpus_dir=<dir>")
    if not os.path.isabs(corpus_dir):
        corpus_dir = os.path.join(workdir, corpus_dir)
    prep = config.data.prepare
    if prep.tokenizer and not os.path.exists(prep.tokenizer):
        raise UserError(f"data.prepare.tokenizer={prep.tokenizer!r} does not exist; give the path of a "
                        "SentencePiece .model or a WordPiece vocab.txt")
    if prep.text_files and not prepare_lib.holds_corpus(corpus_dir):
        if not prepare_here:
            raise UserError(f"data.corpus_dir={config.data.corpus_dir} holds no prepared corpus; this config "
                            f"prepares its corpus only at its default data.corpus_dir={config_lib.DEMO_CORPUS_DIR} "
                            "(inside the workdir): drop the override, or prepare one there with "
                            "`python -m sas_jax.prepare`")
        from sas_jax import files as files_lib  # noqa: PLC0415

        files_lib.check_dir(corpus_dir, "data.corpus_dir")
        files = sorted(f for pat in prep.text_files.split(",") for f in glob.glob(pat.strip()))
        if not files:
            raise UserError(f"data.prepare.text_files={prep.text_files!r} matches no file; "
                            "run from the repository root or give absolute paths")
        prepare_lib.prepare_corpus(files, corpus_dir, seq_len=config.seq_len, tokenizer_path=prep.tokenizer or None,
                                   train_vocab_size=prep.vocab_size, max_rows=prep.max_rows or None,
                                   packing=prep.packing)
    # A tokenizer named in the config must be the one the corpus was prepared with.
    return Corpus.open(corpus_dir, tokenizer=prep.tokenizer or None)
