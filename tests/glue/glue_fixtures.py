"""Tiny GLUE fixtures made by the project: the same rows as GLUE TSV folders and as a fake tfds.

Every task's label is readable from its words (sets of 'positive' and 'negative'
Shakespeare words the demo tokenizer knows), so a tiny encoder can learn it. The
TSV files follow the real GLUE layouts (CoLA without header, MRPC with a BOM,
STS-B score in column 9, MNLI with its parse columns and quotes, QQP with a broken
row; test files as GLUE's, QQP's `id` column, WNLI's and the diagnostic set's
too), and `fake_tfds()` serves the rows with tfds' field names.

The session fixtures built on these (`glue_dir`, `tiny_curve`, and the pre-training
workdir `tiny_workdir`) are in tests/conftest.py.
"""
from __future__ import annotations

import csv
import pathlib
import types

import numpy as np

from sas_jax.glue.tasks import SPECS

# Whole pieces of the demo SentencePiece vocabulary (tests/conftest.py `prepared_corpus`).
POS = ("love", "sweet", "fair", "beauty", "true", "praise", "good", "truth")
NEG = ("death", "shame", "false", "foul", "poor", "old", "desire", "never")
FILL = ("the", "and", "thy", "with", "thou", "his", "heart", "time", "eye", "night", "day", "world", "hand")
NLI = ("entailment", "neutral", "contradiction")
QNLI = ("entailment", "not_entailment")

SIZES = {"train": 48, "dev": 24, "test": 8}


def _sentence(rng, cls: int, n_classes: int = 2) -> str:
    """5-8 words; class 0 uses NEG words, class 1 POS words, class 2 both (3-way)."""
    words = list(rng.choice(FILL, size=rng.integers(3, 6)))
    if cls == 2 and n_classes == 3:
        key = [rng.choice(POS), rng.choice(NEG)]
    else:
        key = list(rng.choice(POS if cls == 1 else NEG, size=2))
    words[1:1] = key
    return " ".join(words)


def make_rows(task: str, split: str, n: int, seed: int = 0) -> list:
    """[(text_a, text_b or None, label)]: label -1 on test splits."""
    spec = SPECS[task]
    rng = np.random.default_rng([seed, list(SPECS).index(task), sum(map(ord, split))])
    rows = []
    k = 3 if task == "mnli" else 2
    for i in range(n):
        cls = i % k
        a = _sentence(rng, cls, k)
        b = _sentence(rng, int(rng.integers(0, 2))) if spec.tsv_b is not None else None
        if task == "stsb":
            label = float(np.round(5.0 * cls * 0.8 + rng.uniform(0, 1.0), 3))
        else:
            label = cls
        if task == "mnli" and i == 3:
            a = 'the king said " love me " and left'  # a quote: TSVs must be read without quoting
        rows.append((a, b, -1 if split.startswith("test") else label))
    return rows


def task_rows(task: str) -> dict:
    spec = SPECS[task]
    out = {"train": make_rows(task, "train", SIZES["train"])}
    for s in spec.dev_splits:
        out[s] = make_rows(task, s, SIZES["dev"])
    for s in spec.test_splits:
        out[s] = make_rows(task, s, SIZES["test"])
    return out


def _label_text(task, label):
    if task == "mnli":
        return NLI[label]
    if task in ("qnli", "rte"):
        return QNLI[label]
    return str(label)


def _write(path, header, rows, bom=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)


def write_glue_dir(root, tasks=None) -> pathlib.Path:
    """Writes `<root>/<TASK>/{train,dev,test}.tsv` (MNLI: dev_matched, ...) for `tasks`."""
    root = pathlib.Path(root)
    for task in tasks or SPECS:
        folder = root / SPECS[task].folder
        for split, rows in task_rows(task).items():
            test = split.startswith("test")
            header, out = _layout(task, split, test, rows)
            _write(folder / f"{split}.tsv", header, out, bom=(task == "mrpc" and split == "train"))
    if tasks is None:
        write_extras(root)
    return root


EXTRA_TEST = {"WNLI": ("WNLI/test.tsv", 6), "AX": ("diagnostic/diagnostic.tsv", 10)}


def write_extras(root) -> None:
    """The two test-only files of a GLUE download: `WNLI/test.tsv` and the diagnostic set
    `diagnostic/diagnostic.tsv` (AX), both `index, sentence1, sentence2` as the real ones."""
    root = pathlib.Path(root)
    for name, (rel, n) in EXTRA_TEST.items():
        rng = np.random.default_rng([7, len(name)])
        rows = [[i, _sentence(rng, i % 2), _sentence(rng, (i + 1) % 2)] for i in range(n)]
        _write(root / rel, ["index", "sentence1", "sentence2"], rows)


def _layout(task, split, test, rows):
    lab = lambda r: _label_text(task, r[2])  # noqa: E731
    if task == "cola":
        if test:
            return ["index", "sentence"], [[i, a] for i, (a, _, _) in enumerate(rows)]
        return None, [["gj04", lab(r), "" if r[2] else "*", r[0]] for r in rows]
    if task == "sst2":
        if test:
            return ["index", "sentence"], [[i, a] for i, (a, _, _) in enumerate(rows)]
        return ["sentence", "label"], [[a, lab(r)] for r in rows for a in [r[0]]]
    if task == "mrpc":
        if test:
            return (["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                    [[i, 100 + i, 200 + i, a, b] for i, (a, b, _) in enumerate(rows)])
        return (["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                [[lab(r), 100 + i, 200 + i, r[0], r[1]] for i, r in enumerate(rows)])
    if task == "stsb":
        head = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]
        meta = lambda i: [i, "main-news", "x", "2012", i, "none", "none"]  # noqa: E731
        if test:
            return head, [meta(i) + [a, b] for i, (a, b, _) in enumerate(rows)]
        return head + ["score"], [meta(i) + [a, b, f"{s:.3f}"] for i, (a, b, s) in enumerate(rows)]
    if task == "qqp":
        if test:
            return ["id", "question1", "question2"], [[i, a, b] for i, (a, b, _) in enumerate(rows)]
        out = [[i, 2 * i, 2 * i + 1, a, b, lab(r)] for i, r in enumerate(rows) for a, b in [r[:2]]]
        if split == "train":
            out.insert(5, [999, 1, 2, "a question cut short"])  # the real QQP has broken rows
        return ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], out
    if task == "mnli":
        head = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]
        base = lambda i, a, b: [i, 7, f"{i}e", "fiction", f"( {a} )", f"( {b} )", f"(ROOT {a})", f"(ROOT {b})", a, b]  # noqa: E731
        if test:
            return head, [base(i, a, b) for i, (a, b, _) in enumerate(rows)]
        if split == "train":
            return head + ["label1", "gold_label"], [base(i, a, b) + [lab(r)] * 2 for i, r in enumerate(rows)
                                                     for a, b in [r[:2]]]
        extra = ["label1", "label2", "label3", "label4", "label5", "gold_label"]
        return head + extra, [base(i, a, b) + [lab(r)] * 6 for i, r in enumerate(rows) for a, b in [r[:2]]]
    # qnli, rte
    head = ["index", "question", "sentence"] if task == "qnli" else ["index", "sentence1", "sentence2"]
    if test:
        return head, [[i, a, b] for i, (a, b, _) in enumerate(rows)]
    return head + ["label"], [[i, a, b, lab(r)] for i, r in enumerate(rows) for a, b in [r[:2]]]


# ----------------------------------------------------------------------------- fake tfds
def fake_tfds(tasks=None):
    """A stand-in `tensorflow_datasets` module: `load(...)` and `as_numpy(...)` over the rows.

    Texts come back as bytes and labels/idx as numpy scalars, as `tfds.as_numpy` gives them.
    """
    table = {}
    for task in tasks or SPECS:
        spec = SPECS[task]
        ka, kb = spec.tfds_keys
        for split, rows in task_rows(task).items():
            name = split.replace("dev", "validation")
            exs = []
            for i, (a, b, label) in enumerate(rows):
                ex = {ka: a.encode(), "idx": np.int32(i),
                      "label": np.float32(label) if spec.is_regression else np.int64(label)}
                if kb:
                    ex[kb] = b.encode()
                exs.append(ex)
            table[(spec.tfds_name, name)] = exs
    calls = []

    def load(name, split, data_dir=None, download=True, **_):
        calls.append((name, split, data_dir, download))
        if (name, split) not in table:
            raise FileNotFoundError(f"Could not find {name} split {split} in {data_dir}")
        return list(table[(name, split)])

    mod = types.ModuleType("tensorflow_datasets")
    mod.load = load
    mod.as_numpy = lambda ds: iter(ds)
    mod.calls = calls
    return mod


# ----------------------------------------------------------------------------- encoders
def tokenizer_of(corpus_dir):
    from sas_jax.data.tokenizer import load_tokenizer  # noqa: PLC0415

    return load_tokenizer(str(pathlib.Path(corpus_dir) / "tokenizer.model"))


def random_encoder(corpus_dir, seed: int = 0):
    """A randomly initialised tiny encoder (`model.random_pretrained`) with the corpus tokenizer."""
    from conftest import make_config  # noqa: PLC0415

    from sas_jax.glue import model as model_lib  # noqa: PLC0415
    from sas_jax.models import ModelConfig  # noqa: PLC0415

    tok = tokenizer_of(corpus_dir)
    cfg = ModelConfig.from_config(make_config("sas_small", "tiny").model, vocab_size=tok.vocab_size)
    return model_lib.random_pretrained(cfg, tok, seed)
