"""A downstream task built from plain text: word-order detection (`WordOrder`).

    meta = build_word_order_task(["data/demo/poems.txt"], "/tmp/wo", train_size=4000, dev_size=1000,
                                 encode=tok.encode, max_tokens=62, tokenizer_id=tok.fingerprint)
    # /tmp/wo/WordOrder/{train,dev}.tsv, read by `sas_jax.glue` as task `word_order`

Each example is one line of the text. Label 1: the line as written; label 0: the
same line with two adjacent, different words swapped (`swap_adjacent_words`).
Why this is a fair probe of what pre-training taught, for every objective alike:

- **Order only.** A corrupted line holds exactly the words of the original, so with
  a tokenizer that splits on whitespace first (SentencePiece, WordPiece) its token
  multiset is the same too. Any bag-of-words (or bag-of-tokens) model scores exactly
  chance (the labels are balanced); only knowledge of word order in context helps,
  which MLM and RTD pre-training should give.
- **Never seen labels.** The lines may be pre-training text (MLM/RTD never see a
  swapped line or a label); each line is used once, either as written or swapped,
  so the classifier never compares a line with its twin. Train and dev lines are
  distinct.
- **Deterministic.** The lines, the labels and the swaps are a pure function of the
  text files (read in sorted order), the sizes, the token limit and `seed`.

Both halves are exact: `ceil(n/2)` originals and `floor(n/2)` swapped lines per split.
"""
from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from sas_jax import files as files_lib
from sas_jax.errors import UserError

FOLDER = "WordOrder"  # the task's folder in a GLUE-style TSV directory (glue/tasks.py)
HEADER = ("sentence", "label")
MIN_WORDS = 5


def swap_adjacent_words(words: Sequence[str], rng: np.random.Generator) -> tuple | None:
    """(words with words[i] and words[i+1] swapped, i) for a random i where they differ; None if none does."""
    words = list(words)
    candidates = [i for i in range(len(words) - 1) if words[i] != words[i + 1]]
    if not candidates:
        return None
    i = int(candidates[rng.integers(len(candidates))])
    words[i], words[i + 1] = words[i + 1], words[i]
    return words, i


def read_lines(text_files: Iterable[str], *, min_words: int = MIN_WORDS, max_words: int = 0,
               fits: Callable[[str], bool] | None = None) -> list:
    """Distinct lines (whitespace normalised) of `text_files` in file order, with at
    least `min_words` words (at most `max_words` if > 0) and `fits(line)` true."""
    seen, out = set(), []
    for path in text_files:
        with open(path, encoding="utf-8", errors="ignore") as f:
            for raw in f:
                words = raw.split()
                if len(words) < min_words or (max_words and len(words) > max_words):
                    continue
                line = " ".join(words)
                if line in seen or (fits is not None and not fits(line)):
                    continue
                seen.add(line)
                out.append(line)
    return out


def word_order_examples(lines: Sequence[str], seed: int = 0, *, avoid: set | None = None) -> list:
    """[(text, label, swapped position or -1)]: half the lines as written (1), half swapped (0).

    Which lines are swapped, and where, follows `seed`. A swap that would give a line
    in `avoid` (by default `lines` itself) is redrawn; a line with no valid swap keeps
    label 1 and another line is swapped instead, so the halves stay exact.
    """
    rng = np.random.default_rng([seed, 1])
    avoid = set(lines) if avoid is None else avoid
    n = len(lines)
    want_swapped = n // 2
    order = rng.permutation(n)
    label = np.ones(n, np.int64)
    pos = np.full(n, -1, np.int64)
    texts = list(lines)
    swapped = 0
    for k in order:
        if swapped == want_swapped:
            break
        words = lines[k].split()
        for _ in range(8):
            got = swap_adjacent_words(words, rng)
            if got is None:
                break
            text = " ".join(got[0])
            if text not in avoid:
                texts[k], label[k], pos[k] = text, 0, got[1]
                swapped += 1
                break
    if swapped < want_swapped:
        raise UserError(f"only {swapped} of {n} lines can be swapped; give more text")
    return [(t, int(y), int(p)) for t, y, p in zip(texts, label, pos)]


def build_word_order_task(text_files: Sequence[str] | str, out_dir: str, *, train_size: int, dev_size: int,
                          seed: int = 0, min_words: int = MIN_WORDS, max_words: int = 0,
                          encode: Callable[[str], list] | None = None, max_tokens: int = 0,
                          tokenizer_id: str = "") -> dict:
    """Writes `<out_dir>/WordOrder/{train,dev}.tsv` (+ `meta.json`); returns the meta.

    `text_files`: paths or a comma-separated string of globs. With `encode` (a
    tokenizer's) only lines of at most `max_tokens` tokens are used, so fine-tuning
    at length `max_tokens + 2` ([CLS], [SEP]) never cuts a swap off; `tokenizer_id`
    names that tokenizer in the meta. An existing task with the same meta is kept as
    it is (a re-run rewrites nothing).
    """
    if isinstance(text_files, str):
        text_files = [f for pat in text_files.split(",") if pat.strip() for f in sorted(glob.glob(pat.strip()))]
    files = sorted(os.path.abspath(f) for f in text_files)
    if not files:
        raise UserError("no text files for the word-order task; pass --downstream_text=<glob>[,...]")
    folder = os.path.join(out_dir, FOLDER)
    meta = {"task": "word_order", "files": [os.path.basename(f) for f in files], "train_size": int(train_size),
            "dev_size": int(dev_size), "seed": int(seed), "min_words": int(min_words),
            "max_words": int(max_words), "max_tokens": int(max_tokens) if encode else 0,
            "tokenizer": tokenizer_id if encode else ""}
    meta_path = os.path.join(folder, "meta.json")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            old = json.load(f)
        if {k: old.get(k) for k in meta} == meta:
            return old
    fits = (lambda text: len(encode(text)) <= max_tokens) if encode is not None and max_tokens > 0 else None
    caps = [c for c in (max_words, max_tokens if fits is not None else 0) if c > 0]
    word_cap = min(caps) if caps else 0  # a word is at least one token
    lines = read_lines(files, min_words=min_words, max_words=word_cap, fits=fits)
    need = int(train_size) + int(dev_size)
    if len(lines) < need:
        raise UserError(f"the text has {len(lines)} usable lines, the word-order task needs {need}; "
                        "lower --downstream_size or give more text")
    pick = np.random.default_rng([seed, 0]).permutation(len(lines))[:need]
    chosen = [lines[i] for i in pick]
    everything = set(lines)
    splits = {"train": chosen[:train_size], "dev": chosen[train_size:]}
    os.makedirs(folder, exist_ok=True)
    for n, (split, split_lines) in enumerate(splits.items()):
        rows = word_order_examples(split_lines, seed=seed * 2 + n + 1, avoid=everything)
        with files_lib.atomic_open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("\t".join(HEADER) + "\n")
            for text, label, _ in rows:
                f.write(f"{text}\t{label}\n")
    meta["num_lines_available"] = len(lines)
    files_lib.write_json(meta_path, meta)
    return meta
