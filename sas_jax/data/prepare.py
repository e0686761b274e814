"""Corpus preparation: plain text → fixed-length rows of token ids on disk.

    python -m sas_jax.prepare --input='data/demo/*.txt' --train_vocab=2000 \
        --seq_len=128 --output=/tmp/demo_corpus

Format (the reference implementation's; SAS semantics §2.1): all
documents are tokenised and concatenated into one stream; each row is [CLS]
followed by the next seq_len−1 stream tokens; no padding, no [SEP] unless
`--add_sep` (then [SEP] ends every document); the last partial row is dropped.
Documents are separated by blank lines (`--tfds`: each example is a document); a
line that is not valid UTF-8 is skipped and counted. The output directory holds:

- `rows.bin`: raw array [num_rows, seq_len], uint16 if vocab_size <= 65535 else int32;
- `unigram_counts.npy`: int64 [vocab_size], counts of the stream tokens stored in
  rows, i.e. of `rows[:, 1:]` ([CLS] is not counted, so [CLS]/[PAD]/[MASK] are 0;
  [SEP] is counted when `add_sep` put it in the stream). The dropped tail of the
  last partial row is not counted;
- `meta.json`: seq_len, num_rows, num_tokens (stream tokens in rows, the sum of the
  counts), dropped_tokens, dtype, vocab_size, tokenizer_file (a copy of the
  tokenizer, in this directory), tokenizer_fingerprint, tokenizer_kind,
  tokenizer_lowercase (WordPiece; null for SentencePiece), special_ids, add_sep,
  skipped_lines (lines that are not valid UTF-8), max_rows, sources, format_version;
- the tokenizer copy (`tokenizer.model` or `vocab.txt`).

Memory stays bounded on inputs of any size: files are read in chunks of whole
lines, tokenised by a pool of worker processes (results consumed in input order
with a bounded window of chunks in flight), and rows are appended to the file as
they fill. Everything is written under temporary names and renamed at the end,
`meta.json` last, so an interrupted run leaves no corpus behind.
"""
from __future__ import annotations

import argparse
import collections
import glob
import itertools
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np

from sas_jax.data import tokenizer as tokenizer_lib
from sas_jax.errors import UserError

FORMAT_VERSION = 1
META_FILE = "meta.json"
ROWS_FILE = "rows.bin"
COUNTS_FILE = "unigram_counts.npy"
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


def _tfds_chunks(name: str, data_dir: str | None, split: str, text_key: str,
                 chunk_bytes: int) -> Iterator[bytes | None]:
    """Each tfds example is one document: blank lines inside it are dropped, and a
    blank line is emitted after it."""
    buf: list[bytes] = []
    size = 0
    for text in _tfds_texts(name, data_dir, split, text_key):
        buf.append(_BLANK_LINES.sub(b"\n", text.strip()) + b"\n\n")
        size += len(buf[-1])
        if size >= chunk_bytes:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)
    yield None


def _tfds_texts(name, data_dir, split, text_key) -> Iterator[bytes]:
    try:
        import tensorflow_datasets as tfds  # heavy; only on this path
    except ImportError:
        raise UserError("--tfds needs tensorflow_datasets, which is not installed; run "
                        "`pip install tensorflow-datasets tensorflow-cpu` or pass --input text files"
                        ) from None
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # tfds raises many types for a missing local dataset
        raise UserError(f"tfds dataset {name} (split {split}) not found under --data_dir={data_dir} "
                        f"({type(e).__name__}); prepare it there first or fix --tfds/--data_dir") from None
    for ex in tfds.as_numpy(ds):
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
    """→ (ids int32, skipped_lines, closes_prev, has_content, ends_open).

    `closes_prev`: a blank line comes before the first text line, so a document left
    open by the previous chunk ends here. `ends_open`: the last text line is not
    followed by a blank line in this chunk. With add_sep, [SEP] follows every text
    line that is followed by a blank line inside the chunk; the caller adds the
    [SEP]s that straddle chunks.
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
        return np.zeros(0, np.int32), skipped, closes_prev, False, False
    encoded = tok.encode_batch(texts)
    if add_sep:
        sep = [tok.sep_id]
        encoded = [e + sep if s else e for e, s in zip(encoded, sep_after)]
    total = sum(len(e) for e in encoded)
    ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=total)
    return ids, skipped, closes_prev, True, not sep_after[-1]


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
    """Appends [CLS] + (seq_len−1) stream tokens per row to an open binary file."""

    def __init__(self, f, seq_len: int, cls_id: int, vocab_size: int, dtype: np.dtype,
                 max_rows: int | None):
        self.f, self.seq_len, self.cls_id = f, seq_len, cls_id
        self.dtype, self.max_rows = dtype, max_rows
        self.counts = np.zeros(vocab_size, np.int64)
        self.pending: list[np.ndarray] = []
        self.pending_len = 0
        self.num_rows = 0
        self.tokens_seen = 0

    @property
    def full(self) -> bool:
        return self.max_rows is not None and self.num_rows >= self.max_rows

    def add(self, ids: np.ndarray) -> None:
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
        stream = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        used = stream[: n * body]
        rows = np.empty((n, self.seq_len), self.dtype)
        rows[:, 0] = self.cls_id
        rows[:, 1:] = used.reshape(n, body)
        self.f.write(rows.tobytes())
        self.counts += np.bincount(used, minlength=len(self.counts))
        self.num_rows += n
        rest = stream[n * body:]
        self.pending = [rest] if len(rest) else []
        self.pending_len = len(rest)


# ----------------------------------------------------------------------------------
# The entry point
# ----------------------------------------------------------------------------------


def holds_corpus(output_dir: str) -> bool:
    """meta.json is written last, so only a directory holding it has a (whole) corpus."""
    return os.path.exists(os.path.join(output_dir, META_FILE))


def prepare_corpus(
    text_files: Sequence[str] | str | None,
    output_dir: str,
    *,
    seq_len: int,
    tokenizer_path: str | None = None,
    train_vocab_size: int = 0,
    add_sep: bool = False,
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
    `train_vocab_size` (train a SentencePiece model on the input) must be given.
    `progress` shows a tqdm bar on stderr; a one-line summary (rows, tokens,
    tokens/s) is always printed to stderr at the end.
    """
    start = time.perf_counter()
    # ---- check the arguments before touching anything
    if seq_len < 2:
        raise UserError(f"seq_len={seq_len} is too small; pass --seq_len >= 2 "
                        "(rows are [CLS] + seq_len-1 tokens)")
    if max_rows is not None and max_rows < 1:
        raise UserError(f"max_rows={max_rows} must be positive; pass --max_rows >= 1 or leave it out")
    if bool(tokenizer_path) == bool(train_vocab_size):
        raise UserError("pass exactly one of --tokenizer=<.model or vocab.txt> and --train_vocab=<size>")
    if tfds_name and text_files:
        raise UserError("pass either --input or --tfds, not both")
    if tfds_name:
        files: list[str] = []
        sources = [f"tfds:{tfds_name}/{tfds_split}"]
        total_bytes = None

        def chunks():
            return _tfds_chunks(tfds_name, tfds_data_dir, tfds_split, tfds_text_key, _CHUNK_BYTES)
    else:
        files = resolve_inputs(text_files or [])
        sources = [os.path.abspath(p) for p in files]
        total_bytes = sum(os.path.getsize(p) for p in files)

        def chunks():
            return _file_chunks(files, _CHUNK_BYTES)
    if workers is None:
        # Starting a pool costs ~0.5 s; below a few MB one process (whose tokenizer
        # still uses several threads) is faster.
        small = total_bytes is not None and total_bytes < _SMALL_INPUT_BYTES
        workers = 1 if small else (os.cpu_count() or 1)
    workers = max(1, int(workers))
    if tokenizer_path:  # fail on a bad tokenizer before writing anything
        tokenizer_lib.load_tokenizer(tokenizer_path, lowercase=lowercase)
    if holds_corpus(output_dir):
        raise UserError(f"output dir {output_dir} already holds a corpus; pick another --output "
                        "or delete that directory")
    os.makedirs(output_dir, exist_ok=True)

    partials: list[str] = []

    def partial(name: str) -> str:
        p = os.path.join(output_dir, _partial_name(name))
        partials.append(p)
        return p

    try:
        # ---- tokenizer: copied (or trained) into the output dir
        if train_vocab_size:
            prefix = os.path.join(output_dir, "tokenizer" + _PARTIAL)
            partials.extend([prefix + ".model", prefix + ".vocab"])
            lines = _lines_of(chunks())
            first = next(lines, None)
            if first is None:
                raise UserError(f"the corpus is empty: no text lines in {', '.join(sources)}; "
                                "pass text files with content")
            tokenizer_lib.train_sentencepiece(None, train_vocab_size, prefix,
                                              sentences=itertools.chain([first], lines))
            tok_name = "tokenizer.model"
            tok_tmp = prefix + ".model"
            os.remove(prefix + ".vocab")  # a human-readable listing; the .model has it all
        else:
            tok_name = "tokenizer.model" if tokenizer_path.endswith(".model") else "vocab.txt"
            tok_tmp = partial(tok_name)
            shutil.copyfile(tokenizer_path, tok_tmp)
        tok = tokenizer_lib.load_tokenizer(tok_tmp, lowercase=lowercase)
        dtype = rows_dtype(tok.vocab_size)

        # ---- tokenise and write rows
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                       desc="prepare", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
        skipped = 0
        t0 = time.perf_counter()
        with open(partial(ROWS_FILE), "wb") as f:
            writer = _RowWriter(f, seq_len, tok.cls_id, tok.vocab_size, dtype, max_rows)
            open_doc = False
            sep = np.array([tok.sep_id], np.int32)
            source = chunks()
            # Bytes read so far, for the bar: wrap the source to measure chunk sizes.
            read_sizes: collections.deque = collections.deque()

            def measured():
                for c in source:
                    read_sizes.append(0 if c is None else len(c))
                    yield c

            results = _ordered_results(measured(), workers, (tok_tmp, lowercase, add_sep))
            try:
                for res in results:
                    nbytes = read_sizes.popleft()
                    if res is None:  # end of a file
                        if add_sep and open_doc:
                            writer.add(sep)
                        open_doc = False
                    else:
                        ids, n_skip, closes_prev, has_content, ends_open = res
                        skipped += n_skip
                        if add_sep and open_doc and closes_prev:
                            writer.add(sep)
                        if has_content:
                            open_doc = ends_open
                        elif closes_prev:
                            open_doc = False
                        writer.add(ids)
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
        elapsed = time.perf_counter() - t0

        if writer.num_rows == 0:
            if writer.tokens_seen == 0:
                raise UserError(f"the corpus is empty: no tokens in {', '.join(sources)} "
                                f"({skipped} undecodable lines skipped); pass text files with content")
            raise UserError(f"the corpus has only {writer.tokens_seen} tokens, less than one row of "
                            f"seq_len-1={seq_len - 1}; pass more text or a smaller --seq_len")
        np.save(partial(COUNTS_FILE), writer.counts)

        meta = {
            "format_version": FORMAT_VERSION,
            "seq_len": seq_len,
            "num_rows": writer.num_rows,
            "num_tokens": int(writer.counts.sum()),
            "dropped_tokens": writer.pending_len,
            "dtype": dtype.name,
            "vocab_size": tok.vocab_size,
            "tokenizer_file": tok_name,
            "tokenizer_fingerprint": tok.fingerprint,
            "tokenizer_kind": tok.kind,
            "tokenizer_lowercase": bool(lowercase) if tok.kind == "wordpiece" else None,
            "special_ids": tok.special_ids,
            "add_sep": bool(add_sep),
            "skipped_lines": skipped,
            "max_rows": max_rows,
            "sources": sources,
        }
        with open(partial(META_FILE), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        # ---- publish: meta.json last, so a directory with meta.json is complete
        for name in (tok_name, ROWS_FILE, COUNTS_FILE, META_FILE):
            src = tok_tmp if name == tok_name else os.path.join(output_dir, _partial_name(name))
            os.replace(src, os.path.join(output_dir, name))
        partials.clear()
    finally:
        for p in partials:
            if os.path.exists(p):
                os.remove(p)

    rate = writer.tokens_seen / max(elapsed, 1e-9)
    print(f"prepared {output_dir}: {meta['num_rows']:,} rows x {seq_len} "
          f"({meta['num_tokens']:,} tokens, {skipped} skipped lines) in "
          f"{time.perf_counter() - start:.1f}s; tokenize {rate:,.0f} tokens/s with "
          f"{workers} worker{'s' if workers > 1 else ''}", file=sys.stderr, flush=True)
    return meta


# ----------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sas_jax.prepare",
        description="Tokenise plain text (documents separated by blank lines) into a "
                    "prepared corpus: rows of [CLS] + seq_len-1 tokens.")
    src = p.add_argument_group("input (one of)")
    src.add_argument("--input", help="comma-separated text files or globs")
    src.add_argument("--tfds", help="name of a tfds text dataset already in --data_dir")
    src.add_argument("--data_dir", help="tfds data dir")
    src.add_argument("--tfds_split", default="train", help="tfds split (default: train)")
    src.add_argument("--tfds_text_key", default="text", help="tfds text field (default: text)")
    tk = p.add_argument_group("tokenizer (one of)")
    tk.add_argument("--tokenizer", help="SentencePiece .model or BERT vocab.txt")
    tk.add_argument("--train_vocab", type=int, default=0,
                    help="train a SentencePiece model of this vocabulary size on the input")
    tk.add_argument("--no_lowercase", dest="lowercase", action="store_false",
                    help="WordPiece: keep case (default: lowercase, as BERT uncased)")
    p.add_argument("--seq_len", type=int, default=128, help="tokens per row, [CLS] included")
    p.add_argument("--add_sep", action="store_true", help="append [SEP] at each document end")
    p.add_argument("--output", required=True, help="output directory (must not hold a corpus)")
    p.add_argument("--workers", type=int, default=None,
                   help="tokenizer processes (default: cpu count; 1 for inputs under 8 MB)")
    p.add_argument("--max_rows", type=int, default=None, help="stop after this many rows")
    p.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.input and not args.tfds:
            raise UserError("no input given; pass --input=<file or glob>[,...] or --tfds=<name>")
        prepare_corpus(
            args.input, args.output, seq_len=args.seq_len, tokenizer_path=args.tokenizer,
            train_vocab_size=args.train_vocab, add_sep=args.add_sep, workers=args.workers,
            max_rows=args.max_rows, lowercase=args.lowercase, tfds_name=args.tfds,
            tfds_data_dir=args.data_dir, tfds_split=args.tfds_split,
            tfds_text_key=args.tfds_text_key, progress=args.progress)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
