"""Corpus preparation library: plain text → fixed-length rows of token ids on disk.

The command line is `python -m sas_jax.prepare` (`sas_jax/prepare.py`, argument
parsing only); this module does the work (`prepare_corpus`) and defines the on-disk
format that `sas_jax/data/corpus.py` reads:

    python -m sas_jax.prepare --input='data/demo/*.txt' --train_vocab=2000 \
        --seq_len=128 --output=/tmp/demo_corpus

Rows. Every row is [CLS] followed by seq_len−1 token ids. Documents are separated by
blank lines (`--tfds`: each example is a document); a line that is not valid UTF-8
is skipped and counted. Two packings (`packing`, recorded in meta.json):

- `document` (the default): rows are built inside a document, as the SAS reference
  builds them; no row holds tokens of two documents. A document's tokens fill rows
  of seq_len−1; its last, shorter row (the tail) is padded with [PAD] to seq_len.
  Padding rather than dropping keeps every token (on corpora of short documents,
  such as the demo's speeches, most documents are shorter than one row, so dropping
  would lose most of the text), and merging the tail into another row would cross
  a boundary. The rest of the code handles padded rows: batch builders take
  `input_mask = ids != [PAD]`, draw masked positions among non-pad tokens and set
  the masked count from the non-pad count, the RTD loss averages over non-pad
  positions, and [PAD] is never counted in `unigram_counts` (so the cold start
  never draws it). With `add_sep`, a tail that would hold only the document's
  final [SEP] is dropped (counted in dropped_tokens) instead of making a row
  without text. Rows of corpora of long documents (Wikipedia articles, books)
  are nearly all full; `pad_tokens` in meta.json says how much padding there is.
- `stream`: all documents are concatenated into one token stream and cut into
  rows regardless of boundaries (a row can span two documents); no padding, and
  the last partial row is dropped. This was the only packing before `packing`
  existed.

In both, no [SEP] unless `add_sep` (then [SEP] ends every document). The output
directory holds:

- `rows.bin`: raw array [num_rows, seq_len], uint16 if vocab_size <= 65535 else int32;
- `unigram_counts.npy`: int64 [vocab_size], counts of the non-[PAD] tokens of
  `rows[:, 1:]` ([CLS] is not counted, so [CLS]/[PAD]/[MASK] are 0; [SEP] is
  counted when `add_sep` put it in the rows). Dropped tokens are not counted;
- `meta.json`: seq_len, num_rows, num_tokens (non-pad tokens in rows[:, 1:], the
  sum of the counts), dropped_tokens (tokens read but not in any row), pad_tokens,
  packing, dtype, rows_sha256 (sha256 of rows.bin, hashed while writing: the corpus's
  identity in a run's checkpoints, so changed or reordered rows are noticed),
  vocab_size, tokenizer_file (a copy of the tokenizer, in this directory),
  tokenizer_fingerprint, tokenizer_kind, tokenizer_lowercase (WordPiece; null for
  SentencePiece), special_ids, add_sep, skipped_lines (lines
  that are not valid UTF-8), max_rows, sources, format_version. A corpus written
  before `packing` existed has neither `packing` nor `pad_tokens`: it is `stream`; one
  written before `rows_sha256` existed lacks it (a run hashes its rows.bin at start instead);
- the tokenizer copy (`tokenizer.model` or `vocab.txt`).

Memory stays bounded on inputs of any size: files are read in chunks of whole
lines, tokenised by a pool of worker processes (results consumed in input order
with a bounded window of chunks in flight), and rows are appended to the file as
they fill. Everything is written under temporary names and renamed at the end,
`meta.json` last (`_PartialFiles`), so an interrupted run leaves no corpus behind.
"""
from __future__ import annotations

import collections
import dataclasses
import glob
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from sas_jax import files
from sas_jax.data import tfds_source
from sas_jax.data import tokenizer as tokenizer_lib
from sas_jax.errors import UserError

FORMAT_VERSION = 1
META_FILE = "meta.json"
ROWS_FILE = "rows.bin"
COUNTS_FILE = "unigram_counts.npy"
PACKINGS = ("document", "stream")
VOCAB_TYPES = ("sentencepiece", "wordpiece")  # what --train_vocab trains
_PARTIAL = ".partial"
_CHUNK_BYTES = 1 << 20  # text per work item; memory is ~ (2·workers+2) chunks
_SMALL_INPUT_BYTES = 8 << 20  # default workers: in-process below this input size


def _partial_name(name: str) -> str:
    """`rows.bin` → `rows.partial.bin` (the extension stays, so loaders still work)."""
    root, ext = os.path.splitext(name)
    return root + _PARTIAL + ext


def rows_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.int32)


# ----------------------------------------------------------------------------------
# Sources: raw byte chunks of whole lines. `None` marks the end of a file (a document
# boundary); documents inside a chunk are separated by blank lines.
# ----------------------------------------------------------------------------------


def resolve_inputs(spec: str | Sequence[str]) -> list[str]:
    """Comma-separated files/globs (or a list of them) → existing files, in order."""
    if isinstance(spec, (str, os.PathLike)):
        spec = os.fspath(spec).split(",")
    items = list(spec)
    items = [os.fspath(s).strip() for s in items if os.fspath(s).strip()]
    if not items:
        raise UserError("no input given; pass --input=<file or glob>[,...] or --tfds=<name>")
    files: list[str] = []
    for item in items:
        if glob.has_magic(item):
            matched = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not matched:
                raise UserError(f"input glob {item} matches no file; fix the pattern or the path")
            files.extend(matched)
        elif os.path.isdir(item):
            raise UserError(f"input {item} is a directory; pass files or a glob like {item}/*.txt")
        elif not os.path.isfile(item):
            raise UserError(f"input file {item} not found; fix the path in --input")
        else:
            files.append(item)
    return files


def _file_chunks(files: Sequence[str], chunk_bytes: int) -> Iterator[bytes | None]:
    for path in files:
        with open(path, "rb") as f:
            while True:
                block = f.read(chunk_bytes)
                if not block:
                    break
                if not block.endswith(b"\n"):
                    block += f.readline()  # finish the line: chunks hold whole lines
                yield block
        yield None


_BLANK_LINES = re.compile(rb"\n(?:[ \t\r\f\v]*\n)+")


def _tfds_chunks(source, name: str, text_key: str, chunk_bytes: int) -> Iterator[bytes | None]:
    """Each tfds example is one document: blank lines inside it are dropped, and a
    blank line is emitted after it."""
    buf: list[bytes] = []
    size = 0
    for text in _tfds_texts(source, name, text_key):
        buf.append(_BLANK_LINES.sub(b"\n", text.strip()) + b"\n\n")
        size += len(buf[-1])
        if size >= chunk_bytes:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)
    yield None


def _tfds_texts(source, name, text_key) -> Iterator[bytes]:
    """The `text_key` field of each example of a tfds data source (`tfds_source`)."""
    for ex in tfds_source.iter_examples(source):
        if text_key not in ex:
            raise UserError(f"tfds dataset {name} has no field {text_key!r} (fields: "
                            f"{', '.join(sorted(ex))}); pass --tfds_text_key=<field>")
        text = ex[text_key]
        yield text if isinstance(text, bytes) else str(text).encode("utf-8")


def _lines_of(chunks: Iterator[bytes | None]) -> Iterator[str]:
    """Non-blank, UTF-8 decodable lines (for training a vocabulary)."""
    for chunk in chunks:
        if chunk is not None:
            yield from tokenizer_lib.decoded_lines(chunk.split(b"\n"))


# ----------------------------------------------------------------------------------
# Tokenisation of one chunk (runs in the workers)
# ----------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(path: str, lowercase: bool, add_sep: bool, in_process: bool) -> None:
    if not in_process:
        # One thread per worker: the pool is the parallelism.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    tok = tokenizer_lib.load_tokenizer(path, lowercase=lowercase)
    if not in_process and isinstance(tok, tokenizer_lib.SentencePieceTokenizer):
        tok.num_threads = 1
    _WORKER.update(tok=tok, add_sep=add_sep)


def _encode_chunk(chunk: bytes):
    """→ (ids int32, doc_ends int64, skipped_lines, closes_prev, has_content, ends_open).

    `doc_ends`: offsets into `ids` where a document of this chunk ends (its last text
    line is followed by a blank line in the chunk), ascending. `closes_prev`: a blank
    line comes before the first text line, so a document left open by the previous
    chunk ends here. `ends_open`: the last text line is not followed by a blank line
    in this chunk. With add_sep, [SEP] follows every text line that is followed by a
    blank line inside the chunk; the caller adds the [SEP]s that straddle chunks.
    """
    tok = _WORKER["tok"]
    add_sep = _WORKER["add_sep"]
    lines = chunk.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    texts: list[str] = []
    sep_after: list[bool] = []
    skipped = 0
    closes_prev = False
    for raw in lines:
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            skipped += 1
            continue
        if line:
            texts.append(line)
            sep_after.append(False)
        elif texts:
            sep_after[-1] = True
        else:
            closes_prev = True
    if not texts:
        return np.zeros(0, np.int32), np.zeros(0, np.int64), skipped, closes_prev, False, False
    encoded = tok.encode_batch(texts)
    if add_sep:
        sep = [tok.sep_id]
        encoded = [e + sep if s else e for e, s in zip(encoded, sep_after)]
    total = sum(len(e) for e in encoded)
    ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=total)
    ends = np.cumsum(np.fromiter((len(e) for e in encoded), np.int64, count=len(encoded)))
    doc_ends = ends[np.asarray(sep_after, bool)]
    return ids, doc_ends, skipped, closes_prev, True, not sep_after[-1]


def _ordered_results(chunks: Iterator[bytes | None], workers: int, init_args) -> Iterator:
    """Yields `_encode_chunk` results (or None for end-of-file) in input order.

    `Pool.imap` would read the whole input ahead of the workers; this keeps at most
    2·workers+2 chunks in flight so memory stays bounded.
    """
    if workers <= 1:
        _init_worker(*init_args, in_process=True)
        for chunk in chunks:
            yield None if chunk is None else _encode_chunk(chunk)
        return
    # spawn: safe when the caller has JAX (multithreaded) loaded, unlike fork.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(*init_args, False)) as pool:
        window: collections.deque = collections.deque()
        max_in_flight = 2 * workers + 2
        for chunk in chunks:
            window.append(None if chunk is None else pool.apply_async(_encode_chunk, (chunk,)))
            while len(window) > max_in_flight or (window and window[0] is None):
                head = window.popleft()
                yield None if head is None else head.get()
        while window:
            head = window.popleft()
            yield None if head is None else head.get()


# ----------------------------------------------------------------------------------
# Row writer
# ----------------------------------------------------------------------------------


class _RowWriter:
    """Appends rows of [CLS] + (seq_len−1) tokens to an open binary file.

    `stream` packing: `add(ids)` appends to one stream, cut into rows as they fill;
    document ends are ignored. `document` packing: `add(ids, doc_ends)` closes a
    document at each offset of `doc_ends` (its tail becomes a [PAD]-padded row), and
    the tokens after the last offset continue the open document (full rows are
    written at once; the remainder waits in `pending`); `end_document()` closes the
    open document.
    """

    def __init__(self, f, seq_len: int, cls_id: int, pad_id: int, vocab_size: int, dtype: np.dtype,
                 max_rows: int | None, packing: str = "document", lone_tail_id: int | None = None):
        self.f, self.seq_len, self.cls_id, self.pad_id = f, seq_len, cls_id, pad_id
        self.dtype, self.max_rows, self.packing = dtype, max_rows, packing
        self.lone_tail_id = lone_tail_id  # document packing: a tail of only this id is dropped
        self.counts = np.zeros(vocab_size, np.int64)
        self.pending: list[np.ndarray] = []
        self.pending_len = 0
        self.num_rows = 0
        self.tokens_seen = 0
        self.pad_tokens = 0
        self.sha256 = hashlib.sha256()  # of the bytes of rows.bin, fed as they are written

    @property
    def full(self) -> bool:
        return self.max_rows is not None and self.num_rows >= self.max_rows

    @property
    def dropped_tokens(self) -> int:
        """Tokens given to the writer that are in no row (pending ones included)."""
        return self.tokens_seen - int(self.counts.sum())

    def add(self, ids: np.ndarray, doc_ends: np.ndarray | None = None) -> None:
        if self.packing == "document":
            self._add_documents(ids, np.zeros(0, np.int64) if doc_ends is None else doc_ends)
        else:
            self._add_stream(ids)

    def end_document(self) -> None:
        if self.packing == "document" and self.pending_len:
            self._add_documents(np.zeros(0, np.int32), np.zeros(1, np.int64))

    def _write(self, rows: np.ndarray) -> None:
        data = rows.tobytes()
        self.f.write(data)
        self.sha256.update(data)  # the content hash costs no extra pass over the file

    def _take_pending(self, ids: np.ndarray) -> np.ndarray:
        parts = [*self.pending, ids] if len(ids) else self.pending
        stream = (np.concatenate(parts) if len(parts) > 1 else parts[0]) if parts else ids
        self.pending, self.pending_len = [], 0
        return stream

    def _add_stream(self, ids: np.ndarray) -> None:
        if not len(ids) or self.full:
            return
        self.tokens_seen += len(ids)
        self.pending.append(ids)
        self.pending_len += len(ids)
        body = self.seq_len - 1
        n = self.pending_len // body
        if self.max_rows is not None:
            n = min(n, self.max_rows - self.num_rows)
        if n == 0:
            return
        stream = self._take_pending(np.zeros(0, np.int32))
        used = stream[: n * body]
        rows = np.empty((n, self.seq_len), self.dtype)
        rows[:, 0] = self.cls_id
        rows[:, 1:] = used.reshape(n, body)
        self._write(rows)
        self.counts += np.bincount(used, minlength=len(self.counts))
        self.num_rows += n
        rest = stream[n * body:]
        self.pending = [rest] if len(rest) else []
        self.pending_len = len(rest)

    def _add_documents(self, ids: np.ndarray, doc_ends: np.ndarray) -> None:
        if self.full:
            return
        self.tokens_seen += len(ids)
        if not len(doc_ends) and self.pending_len + len(ids) < self.seq_len - 1:
            if len(ids):  # no row fills: just wait for more of the open document
                self.pending.append(ids)
                self.pending_len += len(ids)
            return
        offset = self.pending_len
        stream = self._take_pending(ids)
        doc_ends = np.asarray(doc_ends, np.int64) + offset
        body = self.seq_len - 1
        closed = int(doc_ends[-1]) if len(doc_ends) else 0
        # The closed documents: ⌈n/body⌉ rows each, the last one padded.
        lengths = np.diff(doc_ends, prepend=0)
        tails = lengths % body
        lone = np.zeros(len(lengths), bool)
        if self.lone_tail_id is not None and len(stream):
            lone = (tails == 1) & (stream[np.maximum(doc_ends - 1, 0)] == self.lone_tail_id)
        keep_tail = (tails > 0) & ~lone
        # The open document: its full rows now, the rest stays pending.
        open_part = stream[closed:]
        open_rows = len(open_part) // body
        rows_per_doc = np.append(lengths // body + keep_tail, open_rows)
        lengths = np.append(lengths, open_rows * body)  # the open document's used tokens
        starts = np.append(doc_ends - (lengths[:-1]), closed)
        num = int(rows_per_doc.sum())
        rest = open_part[open_rows * body:]
        if num:
            # Token t of document d (position p inside it) goes to row first_row[d] + p // body.
            doc_of = np.repeat(np.arange(len(lengths)), lengths)
            pos = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            src = np.repeat(starts, lengths) + pos
            first_row = np.cumsum(rows_per_doc) - rows_per_doc
            row = first_row[doc_of] + pos // body
            keep = row < np.repeat(first_row + rows_per_doc, lengths)  # drops the lone tails
            if self.max_rows is not None:
                num = min(num, self.max_rows - self.num_rows)
                keep &= row < num
            rows = np.full((num, self.seq_len), self.pad_id, self.dtype)
            rows[:, 0] = self.cls_id
            tokens = stream[src[keep]]
            rows[row[keep], 1 + pos[keep] % body] = tokens
            self._write(rows)
            self.counts += np.bincount(tokens, minlength=len(self.counts))
            self.num_rows += num
            self.pad_tokens += num * body - len(tokens)
        if len(rest) and not self.full:
            self.pending, self.pending_len = [rest], len(rest)


# ----------------------------------------------------------------------------------
# The entry point
# ----------------------------------------------------------------------------------


def holds_corpus(output_dir: str) -> bool:
    """meta.json is written last, so only a directory holding it has a (whole) corpus."""
    return os.path.exists(os.path.join(output_dir, META_FILE))


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """How `prepare_corpus` turns its input into rows (its keyword arguments but the input's)."""

    seq_len: int
    tokenizer_path: str | None = None
    train_vocab_size: int = 0
    vocab_type: str = "sentencepiece"
    add_sep: bool = False
    packing: str = "document"
    workers: int | None = None
    max_rows: int | None = None
    lowercase: bool = True
    progress: bool = True

    def check(self) -> None:
        """Refuses bad options (one-line UserError) before anything is read or written."""
        if self.seq_len < 2:
            raise UserError(f"seq_len={self.seq_len} is too small; pass --seq_len >= 2 "
                            "(rows are [CLS] + seq_len-1 tokens)")
        if self.packing not in PACKINGS:
            raise UserError(f"packing={self.packing!r} is unknown; pass --packing=document (rows inside "
                            "documents) or --packing=stream (one token stream)")
        if self.max_rows is not None and self.max_rows < 1:
            raise UserError(f"max_rows={self.max_rows} must be positive; pass --max_rows >= 1 or leave it out")
        if bool(self.tokenizer_path) == bool(self.train_vocab_size):
            raise UserError("pass exactly one of --tokenizer=<.model or vocab.txt> and --train_vocab=<size>")
        if self.vocab_type not in VOCAB_TYPES:
            raise UserError(f"vocab_type={self.vocab_type!r} is unknown; pass --vocab_type=sentencepiece "
                            "or --vocab_type=wordpiece")


@dataclasses.dataclass(frozen=True)
class _Input:
    """The text to prepare: what meta.json's `sources` names, its size in bytes (None for a
    tfds split) and `chunks()`, a fresh pass over its chunks at each call."""

    sources: list
    total_bytes: int | None
    chunks: Callable[[], Iterator[bytes | None]]


def _open_input(text_files, tfds_name, tfds_data_dir, tfds_split, tfds_text_key) -> _Input:
    """Text files (or globs), or a tfds split read without TensorFlow: a missing file, package,
    dataset, split or text field fails here."""
    if tfds_name and text_files:
        raise UserError("pass either --input or --tfds, not both")
    if tfds_name:
        examples = tfds_source.open_split(tfds_name, tfds_data_dir, tfds_split)
        fields = tfds_source.feature_names(examples)
        if fields and tfds_text_key not in fields:
            raise UserError(f"tfds dataset {tfds_name} has no field {tfds_text_key!r} (fields: "
                            f"{', '.join(fields)}); pass --tfds_text_key=<field>")
        return _Input([f"tfds:{tfds_name}/{tfds_split}"], None,
                      lambda: _tfds_chunks(examples, tfds_name, tfds_text_key, _CHUNK_BYTES))
    paths = resolve_inputs(text_files or [])
    return _Input([os.path.abspath(p) for p in paths], sum(os.path.getsize(p) for p in paths),
                  lambda: _file_chunks(paths, _CHUNK_BYTES))


def _worker_count(workers: int | None, total_bytes: int | None) -> int:
    if workers is None:
        # Starting a pool costs ~0.5 s; below a few MB one process (whose tokenizer
        # still uses several threads) is faster.
        small = total_bytes is not None and total_bytes < _SMALL_INPUT_BYTES
        workers = 1 if small else (os.cpu_count() or 1)
    return max(1, int(workers))


class _PartialFiles:
    """The files of a corpus being written, each under its `.partial` name (`rows.partial.bin`)
    until `commit` renames them all into place, meta.json last: a multi-file commit, so an
    interrupted run leaves no corpus. Used as a context: what a failed run wrote is removed."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self._written: list[str] = []  # removed on leaving the context unless committed

    def path(self, name: str) -> str:
        """The partial path of the corpus file `name`."""
        return os.path.join(self.output_dir, _partial_name(name))

    def new(self, name: str) -> str:
        """`path(name)`, to be written now (and removed if the run fails)."""
        self.track(self.path(name))
        return self.path(name)

    def track(self, *paths: str) -> None:
        self._written.extend(paths)

    def commit(self, names: Sequence[str], meta: dict) -> None:
        """Renames the partial files of `names` into place, then writes meta.json (atomically):
        a directory with meta.json holds a whole corpus."""
        for name in names:
            os.replace(self.path(name), os.path.join(self.output_dir, name))
        files.write_text(os.path.join(self.output_dir, META_FILE), json.dumps(meta, indent=2) + "\n")
        self._written.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for p in self._written:
            if os.path.exists(p):
                os.remove(p)


def _make_tokenizer(opts: PrepareOptions, inp: _Input, out: _PartialFiles) -> tuple:
    """(tokenizer, its file name in the corpus): trained on the input (`train_vocab_size`) or a
    copy of `tokenizer_path`, written as a partial file of the corpus."""
    if opts.train_vocab_size:
        lines = _lines_of(inp.chunks())
        first = next(lines, None)
        if first is None:
            raise UserError(f"the corpus is empty: no text lines in {', '.join(inp.sources)}; "
                            "pass text files with content")
        sentences = itertools.chain([first], lines)
        if opts.vocab_type == "wordpiece":
            name = "vocab.txt"
            tokenizer_lib.train_wordpiece(sentences, opts.train_vocab_size, out.new(name), lowercase=opts.lowercase)
        else:
            name = "tokenizer.model"
            prefix = os.path.join(out.output_dir, "tokenizer" + _PARTIAL)  # writes out.path(name)
            out.track(prefix + ".model", prefix + ".vocab")
            tokenizer_lib.train_sentencepiece(None, opts.train_vocab_size, prefix, sentences=sentences)
            os.remove(prefix + ".vocab")  # a human-readable listing; the .model has it all
    else:
        name = "tokenizer.model" if opts.tokenizer_path.endswith(".model") else "vocab.txt"
        shutil.copyfile(opts.tokenizer_path, out.new(name))
    return tokenizer_lib.load_tokenizer(out.path(name), lowercase=opts.lowercase), name


def _progress_bar(total_bytes: int | None):
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                desc="prepare", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)


def _feed(writer: _RowWriter, res, open_doc: bool, sep: np.ndarray | None) -> tuple:
    """Gives one `_ordered_results` item (None: the end of a file) to the writer → (whether a
    document is still open, lines skipped). With add_sep, `sep` ([SEP]) ends a document that an
    earlier chunk left open."""
    if res is None:
        if sep is not None and open_doc:
            writer.add(sep)
        writer.end_document()
        return False, 0
    ids, doc_ends, n_skip, closes_prev, has_content, ends_open = res
    if closes_prev:
        if sep is not None and open_doc:
            writer.add(sep)
        writer.end_document()
    if has_content:
        open_doc = ends_open
    elif closes_prev:
        open_doc = False
    writer.add(ids, doc_ends)
    return open_doc, n_skip


def _write_rows(path: str, tok, tok_file: str, opts: PrepareOptions, inp: _Input, workers: int) -> tuple:
    """Tokenises the input (`workers` processes, the tokenizer read from `tok_file`) and packs
    its tokens into rows written to `path` → (the row writer, with its counts; skipped lines;
    seconds spent)."""
    bar = _progress_bar(inp.total_bytes) if opts.progress else None
    skipped = 0
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        writer = _RowWriter(f, opts.seq_len, tok.cls_id, tok.pad_id, tok.vocab_size, rows_dtype(tok.vocab_size),
                            opts.max_rows, opts.packing, lone_tail_id=tok.sep_id if opts.add_sep else None)
        open_doc = False
        sep = np.array([tok.sep_id], np.int32) if opts.add_sep else None
        source = inp.chunks()
        # Bytes read so far, for the bar: wrap the source to measure chunk sizes.
        read_sizes: collections.deque = collections.deque()

        def measured():
            for c in source:
                read_sizes.append(0 if c is None else len(c))
                yield c

        results = _ordered_results(measured(), workers, (tok_file, opts.lowercase, opts.add_sep))
        try:
            for res in results:
                nbytes = read_sizes.popleft()
                open_doc, n_skip = _feed(writer, res, open_doc, sep)
                skipped += n_skip
                if bar is not None:
                    bar.update(nbytes)
                    rate = writer.tokens_seen / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix_str(f"{rate / 1e3:,.0f}k tok/s", refresh=False)
                if writer.full:
                    break
        finally:
            results.close()  # stops the pool early when max_rows is reached
            if bar is not None:
                bar.close()
    return writer, skipped, time.perf_counter() - t0


def _check_rows(writer: _RowWriter, skipped: int, opts: PrepareOptions, inp: _Input) -> None:
    """Refuses a corpus without a row, saying why."""
    if writer.num_rows:
        return
    if writer.tokens_seen == 0:
        raise UserError(f"the corpus is empty: no tokens in {', '.join(inp.sources)} "
                        f"({skipped} undecodable lines skipped); pass text files with content")
    if opts.packing == "stream":
        raise UserError(f"the corpus has only {writer.tokens_seen} tokens, less than one row of "
                        f"seq_len-1={opts.seq_len - 1}; pass more text or a smaller --seq_len")
    raise UserError(f"the corpus has no row: its {writer.tokens_seen} tokens are only the [SEP]s "
                    "of documents without text; pass text files with content")


def _meta(opts: PrepareOptions, writer: _RowWriter, tok, tok_file: str, skipped: int, sources: list) -> dict:
    """meta.json (fields: the module docstring)."""
    return {
        "format_version": FORMAT_VERSION,
        "seq_len": opts.seq_len,
        "num_rows": writer.num_rows,
        "num_tokens": int(writer.counts.sum()),
        "dropped_tokens": writer.dropped_tokens,
        "pad_tokens": writer.pad_tokens,
        "packing": opts.packing,
        "dtype": rows_dtype(tok.vocab_size).name,
        "rows_sha256": writer.sha256.hexdigest(),
        "vocab_size": tok.vocab_size,
        "tokenizer_file": tok_file,
        "tokenizer_fingerprint": tok.fingerprint,
        "tokenizer_kind": tok.kind,
        "tokenizer_lowercase": bool(opts.lowercase) if tok.kind == "wordpiece" else None,
        "special_ids": tok.special_ids,
        "add_sep": bool(opts.add_sep),
        "skipped_lines": skipped,
        "max_rows": opts.max_rows,
        "sources": sources,
    }


def prepare_corpus(
    text_files: Sequence[str] | str | None,
    output_dir: str,
    *,
    seq_len: int,
    tokenizer_path: str | None = None,
    train_vocab_size: int = 0,
    vocab_type: str = "sentencepiece",
    add_sep: bool = False,
    packing: str = "document",
    workers: int | None = None,
    max_rows: int | None = None,
    lowercase: bool = True,
    tfds_name: str | None = None,
    tfds_data_dir: str | None = None,
    tfds_split: str = "train",
    tfds_text_key: str = "text",
    progress: bool = True,
) -> dict:
    """Tokenises text into a prepared corpus in `output_dir` and returns its metadata.

    `text_files`: files or globs (a list, or one comma-separated string); or None with
    `tfds_name`. Exactly one of `tokenizer_path` (a .model or BERT vocab.txt) and
    `train_vocab_size` (train a vocabulary of that size on the input) must be given;
    `vocab_type` is what is trained: "sentencepiece" (unigram `tokenizer.model`) or
    "wordpiece" (BERT `vocab.txt`, normalised as `lowercase` says: BERT uncased
    lowercases and strips accents, cased does neither). `tfds_name` is read without
    TensorFlow (`sas_jax.data.tfds_source`).
    `packing`: "document" (rows inside documents, the tail row padded) or "stream"
    (one token stream; see the module docstring).
    `progress` shows a tqdm bar on stderr; a one-line summary (rows, tokens,
    tokens/s) is always printed to stderr at the end.
    """
    start = time.perf_counter()
    # ---- check the arguments and open the input before touching anything
    opts = PrepareOptions(seq_len=seq_len, tokenizer_path=tokenizer_path, train_vocab_size=train_vocab_size,
                          vocab_type=vocab_type, add_sep=add_sep, packing=packing, workers=workers,
                          max_rows=max_rows, lowercase=lowercase, progress=progress)
    opts.check()
    inp = _open_input(text_files, tfds_name, tfds_data_dir, tfds_split, tfds_text_key)
    workers = _worker_count(opts.workers, inp.total_bytes)
    if tokenizer_path:  # fail on a bad tokenizer before writing anything
        tokenizer_lib.load_tokenizer(tokenizer_path, lowercase=lowercase)
    if holds_corpus(output_dir):
        raise UserError(f"output dir {output_dir} already holds a corpus; pick another --output "
                        "or delete that directory")
    os.makedirs(output_dir, exist_ok=True)

    with _PartialFiles(output_dir) as out:
        tok, tok_name = _make_tokenizer(opts, inp, out)
        writer, skipped, elapsed = _write_rows(out.new(ROWS_FILE), tok, out.path(tok_name), opts, inp, workers)
        _check_rows(writer, skipped, opts, inp)
        np.save(out.new(COUNTS_FILE), writer.counts)
        meta = _meta(opts, writer, tok, tok_name, skipped, inp.sources)
        out.commit([tok_name, ROWS_FILE, COUNTS_FILE], meta)

    rate = writer.tokens_seen / max(elapsed, 1e-9)
    print(f"prepared {output_dir}: {meta['num_rows']:,} rows x {seq_len} "
          f"({meta['num_tokens']:,} tokens, {skipped} skipped lines) in "
          f"{time.perf_counter() - start:.1f}s; tokenize {rate:,.0f} tokens/s with "
          f"{workers} worker{'s' if workers > 1 else ''}", file=sys.stderr, flush=True)
    return meta
