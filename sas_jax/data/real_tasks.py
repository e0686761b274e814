"""Real labelled tasks built from installed packages, written as task files (`sas_jax.glue.user_task`).

    python -m sas_jax.prepare_task wordnet_supersense --out=data/tasks/wordnet_supersense
    python -m sas_jax.glue sweep --checkpoint_dir=runs/x --tasks=data/tasks/wordnet_supersense/task.json ...
    python -m sas_jax.study ... --downstream=wordnet_supersense

`wordnet_supersense` — the supersense of a word in context. WordNet's lexicographers wrote
example sentences for many synsets (the quoted parts of a gloss: `"the dog barked all night"`)
and filed every synset in one of 45 lexicographer files (its supersense: noun.animal,
verb.motion, ...). Each example becomes one row: text a = the synset's word as it occurs in the
sentence (`barked`), text b = the sentence, label = the lexicographer file of the synset
(nouns and verbs by default: 26 + 15 = 41 classes). Written and labelled by people, not derived
from any pre-training text by a rule; the label of a word depends on its sense, which the
sentence shows.

- **Source.** WordNet 3.0, the Debian package `wordnet-base` (`apt-get install wordnet-base`;
  files under /usr/share/wordnet: data.noun, data.verb, noun.exc, verb.exc). Nothing is
  downloaded. Licence: the WordNet 3.0 licence (Princeton University; use, copy, modify and
  distribute for any purpose, with its copyright notice kept: `task.json` carries it).
- **Rows.** From each synset line: the lexicographer file number (2nd field), the synset's
  words, the quoted examples of the gloss. An example is kept when one of the synset's words
  occurs in it, as written or inflected (regular endings, WordNet's exception lists: `ran` →
  `run`); the first such word (in the synset's order), at its first occurrence, is text a.
  Identical (word, sentence) rows are kept once; one that occurs under two labels is dropped.
- **Splits.** By synset (all examples of a synset in one split, so no sentence of a test
  synset was seen in training): a permutation of the synsets from `seed` puts 80 % in train,
  10 % in dev, 10 % in test. Deterministic from the package's files and the seed.

Sizes, label balance and a bag-of-words baseline: docs/tasks.md (`sas_jax.glue.bag_of_words`).
"""
from __future__ import annotations

import collections
import functools
import json
import os
import re

import numpy as np

from sas_jax import files as files_lib
from sas_jax.errors import UserError

WORDNET_DIR = "/usr/share/wordnet"  # where Debian's wordnet-base installs the database
WORDNET_PACKAGE = "wordnet-base"
VERSION = 1  # of the recipe: bump when the rows it writes change

# The 45 lexicographer files of WordNet 3.0, by number (WordNet's lexnames(5WN)).
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
POS_FILES = {"noun": "data.noun", "verb": "data.verb", "adj": "data.adj", "adv": "data.adv"}
SPLIT_SHARES = (0.8, 0.1, 0.1)
LICENSE = ("WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Permission to use, copy, "
           "modify and distribute this software and database and its documentation for any purpose and without "
           "fee or royalty is hereby granted, provided that you agree to comply with the following copyright "
           "notice and statements, including the disclaimer, and that the same appear on ALL copies of the "
           "software, database and documentation, including modifications that you make for internal use or for "
           "distribution. THIS SOFTWARE AND DATABASE IS PROVIDED \"AS IS\" AND PRINCETON UNIVERSITY MAKES NO "
           "REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. (The full licence: /usr/share/doc/wordnet-base/"
           "copyright.)")
_SUFFIXES = r"(?:s|es|ed|d|ing|er|ers|est)?"


def require_wordnet(wordnet_dir: str = WORDNET_DIR, pos=("noun", "verb")) -> None:
    """One-line UserError naming the install command when the WordNet files are absent."""
    missing = [POS_FILES[p] for p in pos if not os.path.isfile(os.path.join(wordnet_dir, POS_FILES[p]))]
    if missing:
        raise UserError(f"WordNet is not installed ({os.path.join(wordnet_dir, missing[0])} not found); install it "
                        f"with `apt-get install {WORDNET_PACKAGE}` (Debian/Ubuntu) or pass --wordnet_dir=<folder "
                        "with data.noun, data.verb>")


# ----------------------------------------------------------------------------- parsing
def parse_data_line(line: str):
    """(offset, lexicographer file number, [words], [example sentences]) of one data.* line, or None
    for the licence header."""
    if line.startswith(" ") or "|" not in line:
        return None
    head, gloss = line.split("|", 1)
    fields = head.split()
    offset, lex, count = fields[0], int(fields[1]), int(fields[3], 16)
    words = [fields[4 + 2 * i] for i in range(count)]
    return offset, lex, words, examples_of(gloss)


def examples_of(gloss: str) -> list:
    """The quoted example sentences of a gloss (`definition; "example one"; "example two"`)."""
    out = []
    for part in gloss.strip().split("; "):
        part = part.strip()
        if part.startswith('"') and part.count('"') >= 2:
            text = " ".join(part[1:part.rindex('"')].split())
            if len(text.split()) >= 2:
                out.append(text)
    return out


def read_exceptions(wordnet_dir: str, pos: str) -> dict:
    """{base form: [irregular inflected forms]} from WordNet's `<pos>.exc`."""
    out = collections.defaultdict(list)
    path = os.path.join(wordnet_dir, f"{pos}.exc")
    if os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                for base in parts[1:]:
                    out[base.lower()].append(parts[0].lower())
    return out


def _clean_word(word: str) -> str:
    return re.sub(r"\([a-z]+\)$", "", word).replace("_", " ").lower()


def word_pattern(word: str, pos: str, exceptions: dict) -> re.Pattern:
    """A case-insensitive pattern of `word` as written or inflected: regular endings (with a final e
    dropped, a final consonant doubled, y → i) and the exception list's forms. In a multi-word
    entry the head is inflected: the first word of a verb (`took off`), the last of a noun."""
    parts = word.split(" ")
    k = 0 if pos == "verb" else len(parts) - 1
    head = parts[k]
    stems = {head}
    if head.endswith("e"):
        stems.add(head[:-1])
    if head.endswith("y"):
        stems.add(head[:-1] + "i")
    if len(head) > 2:
        stems.add(head + head[-1])
    alts = [re.escape(s) + _SUFFIXES for s in sorted(stems, key=len, reverse=True)]
    alts += [re.escape(form.split(" ")[k] if " " in form else form) for form in exceptions.get(head, ())]
    head_re = "(?:" + "|".join(alts) + ")"
    words = [re.escape(p) for p in parts]
    words[k] = head_re
    return re.compile(r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])", re.IGNORECASE)


def find_target(words: list, sentence: str, pos: str, exceptions: dict, cache: dict | None = None) -> str | None:
    """The first of the synset's `words` that occurs in `sentence`, as it is written there."""
    cache = {} if cache is None else cache
    for w in words:
        key = (w, pos)
        if key not in cache:
            cache[key] = word_pattern(_clean_word(w), pos, exceptions)
        m = cache[key].search(sentence)
        if m:
            return m.group(0)
    return None


def wordnet_examples(wordnet_dir: str = WORDNET_DIR, pos=("noun", "verb")) -> list:
    """[(synset id, word as written, sentence, supersense)] of every usable example, in file order
    (read once per process and set of files)."""
    require_wordnet(wordnet_dir, pos)
    stamps = tuple((p, os.stat(os.path.join(wordnet_dir, POS_FILES[p])).st_mtime_ns) for p in pos)
    return list(_wordnet_examples(os.path.abspath(wordnet_dir), tuple(pos), stamps))


@functools.lru_cache(maxsize=4)
def _wordnet_examples(wordnet_dir: str, pos: tuple, stamps: tuple) -> tuple:
    rows = []
    for p in pos:
        exceptions, cache = read_exceptions(wordnet_dir, p), {}
        with open(os.path.join(wordnet_dir, POS_FILES[p]), encoding="utf-8", errors="replace") as f:
            for line in f:
                parsed = parse_data_line(line)
                if parsed is None:
                    continue
                offset, lex, words, examples = parsed
                for sentence in examples:
                    target = find_target(words, sentence, p, exceptions, cache)
                    if target is not None:
                        rows.append((f"{p}:{offset}", target, sentence, LEXNAMES[lex]))
    # One row per (word, sentence); a pair filed under two supersenses is ambiguous: dropped.
    labels = collections.defaultdict(set)
    for _, w, s, y in rows:
        labels[(w.lower(), s)].add(y)
    seen, out = set(), []
    for r in rows:
        key = (r[1].lower(), r[2])
        if len(labels[key]) == 1 and key not in seen:
            seen.add(key)
            out.append(r)
    return tuple(out)


# ----------------------------------------------------------------------------- the task files
def split_by_group(groups: list, seed: int, shares=SPLIT_SHARES) -> dict:
    """{group: split name}: a permutation of the sorted distinct groups from `seed`, cut by `shares`."""
    distinct = sorted(set(groups))
    order = np.random.default_rng([seed, 17]).permutation(len(distinct))
    n_train = int(round(shares[0] * len(distinct)))
    n_dev = int(round(shares[1] * len(distinct)))
    out = {}
    for rank, i in enumerate(order):
        out[distinct[i]] = "train" if rank < n_train else ("dev" if rank < n_train + n_dev else "test")
    return out


def _cap(rows: list, limit: int, seed: int, salt: int) -> list:
    if not limit or len(rows) <= limit:
        return rows
    keep = np.sort(np.random.default_rng([seed, salt]).permutation(len(rows))[:limit])
    return [rows[i] for i in keep]


def build_wordnet_supersense(out_dir: str, *, wordnet_dir: str = WORDNET_DIR, seed: int = 0,
                             pos=("noun", "verb"), max_train: int = 0, max_dev: int = 0, max_test: int = 0,
                             log=None) -> dict:
    """Writes `<out_dir>/{train,dev,test}.tsv`, `task.json` and `meta.json`; returns the meta.

    `max_*` > 0 keep a seeded sample of that many rows of a split (small studies and tests). A
    re-run with the same settings and package files rewrites nothing.
    """
    pos = tuple(pos)
    bad = [p for p in pos if p not in POS_FILES]
    if bad or not pos:
        raise UserError(f"--pos={','.join(pos)}: use some of {', '.join(POS_FILES)}")
    require_wordnet(wordnet_dir, pos)
    sources = [os.path.join(wordnet_dir, POS_FILES[p]) for p in pos]
    settings = {"recipe": "wordnet_supersense", "version": VERSION, "seed": int(seed), "pos": list(pos),
                "max_train": int(max_train), "max_dev": int(max_dev), "max_test": int(max_test),
                "source_files": {os.path.basename(p): os.path.getsize(p) for p in sources}}
    meta_path = os.path.join(out_dir, "meta.json")
    if os.path.isfile(meta_path) and all(os.path.isfile(os.path.join(out_dir, f"{s}.tsv"))
                                         for s in ("train", "dev", "test")):
        with open(meta_path) as f:
            old = json.load(f)
        if {k: old.get(k) for k in settings} == settings:
            return old
    rows = wordnet_examples(wordnet_dir, pos)
    where = split_by_group([r[0] for r in rows], seed)
    splits = {s: [r for r in rows if where[r[0]] == s] for s in ("train", "dev", "test")}
    for n, (s, limit) in enumerate((("train", max_train), ("dev", max_dev), ("test", max_test))):
        splits[s] = _cap(splits[s], limit, seed, n)
    labels = sorted({r[3] for r in rows}, key=LEXNAMES.index)
    for s, split_rows in splits.items():
        with files_lib.atomic_open(os.path.join(out_dir, f"{s}.tsv"), "w", encoding="utf-8") as f:
            f.write("word\tsentence\tsupersense\tsynset\n")
            for synset, word, sentence, label in split_rows:
                f.write(f"{word}\t{sentence}\t{label}\t{synset}\n")
    task = {"name": "wordnet_supersense", "title": "WN-Supersense", "train": "train.tsv", "dev": "dev.tsv",
            "test": "test.tsv", "text": ["word", "sentence"], "label": "supersense", "labels": labels,
            "metric": "accuracy", "num_epochs": 3, "num_seeds": 3,
            "description": "the WordNet supersense (lexicographer file) of a word in one of WordNet's example "
                           "sentences; built by python -m sas_jax.prepare_task wordnet_supersense",
            "source": f"WordNet 3.0, Debian package {WORDNET_PACKAGE} ({', '.join(POS_FILES[p] for p in pos)})",
            "license": LICENSE}
    files_lib.write_json(os.path.join(out_dir, "task.json"), task)
    counts = {s: dict(collections.Counter(r[3] for r in split_rows).most_common()) for s, split_rows in splits.items()}
    meta = {**settings, "sizes": {s: len(r) for s, r in splits.items()},
            "synsets": {s: len({r[0] for r in split_rows}) for s, split_rows in splits.items()},
            "num_labels": len(labels), "label_counts": counts,
            "majority": {s: (max(c.values()) / sum(c.values()) if c else 0.0) for s, c in counts.items()}}
    files_lib.write_json(meta_path, meta)
    if log:
        log(f"wrote {out_dir}: {meta['sizes']['train']} train / {meta['sizes']['dev']} dev / "
            f"{meta['sizes']['test']} test rows, {len(labels)} supersenses")
    return meta


RECIPES = {"wordnet_supersense": build_wordnet_supersense}


def build(name: str, out_dir: str, **kwargs) -> dict:
    """Builds the real task `name` (a key of RECIPES) into `out_dir`."""
    if name not in RECIPES:
        raise UserError(f"unknown task recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name](out_dir, **kwargs)


# ----------------------------------------------------------------------------- baseline
