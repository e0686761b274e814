"""The eight GLUE tasks of the paper: names, label sets, metrics, sizes, file layouts.

One `TaskSpec` per task holds everything the loader, the fine-tuner and the table
need, so adding a task is one entry here. Sizes are the public GLUE train/dev
counts; the recipe (`recipe.py`) derives steps and warm-up from `train_size`.
"""
from __future__ import annotations

import dataclasses

from sas_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str  # our key: cola, sst2, ...
    title: str  # the paper's column name: CoLA, SST-2, ...
    folder: str  # GLUE TSV folder name
    tfds_name: str  # tensorflow-datasets builder
    tfds_keys: tuple  # (text_a, text_b or None) field names in tfds
    labels: tuple  # class names in id order; () = regression (STS-B)
    selection: str  # metric that picks the best epoch on dev
    train_size: int
    dev_sizes: dict  # split -> rows
    num_epochs: int  # Table 6
    num_seeds: int  # Table 6
    # TSV layout: columns (name, or 0-based index) of text_a, text_b and the label.
    tsv_a: object = None
    tsv_b: object = None
    tsv_label: object = None
    tsv_header: bool = True  # train/dev have a header row (CoLA's do not)
    # Test files differ (no label, often an index column first); None = same as train.
    tsv_test_a: object = None
    tsv_test_b: object = None

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        return len(self.labels) or 1

    @property
    def dev_splits(self) -> tuple:
        return tuple(self.dev_sizes)

    @property
    def main_dev(self) -> str:
        """The dev split evaluated each epoch (MNLI: matched)."""
        return self.dev_splits[0]

    @property
    def test_splits(self) -> tuple:
        return tuple(s.replace("dev", "test") for s in self.dev_splits)


_NLI3 = ("entailment", "neutral", "contradiction")  # tfds/HF label ids for MNLI
_NLI2 = ("entailment", "not_entailment")

SPECS = {
    s.name: s
    for s in (
        TaskSpec("cola", "CoLA", "CoLA", "glue/cola", ("sentence", None), ("0", "1"), "mcc",
                 8551, {"dev": 1043}, 20, 5, tsv_a=3, tsv_label=1, tsv_header=False,
                 tsv_test_a="sentence"),
        TaskSpec("sst2", "SST-2", "SST-2", "glue/sst2", ("sentence", None), ("0", "1"), "accuracy",
                 67349, {"dev": 872}, 4, 3, tsv_a="sentence", tsv_label="label"),
        TaskSpec("mrpc", "MRPC", "MRPC", "glue/mrpc", ("sentence1", "sentence2"), ("0", "1"), "accuracy",
                 3668, {"dev": 408}, 20, 5, tsv_a="#1 String", tsv_b="#2 String", tsv_label="Quality"),
        TaskSpec("stsb", "STS-B", "STS-B", "glue/stsb", ("sentence1", "sentence2"), (), "pearson",
                 5749, {"dev": 1500}, 20, 5, tsv_a=7, tsv_b=8, tsv_label=9),
        TaskSpec("qqp", "QQP", "QQP", "glue/qqp", ("question1", "question2"), ("0", "1"), "accuracy",
                 363846, {"dev": 40430}, 4, 1, tsv_a="question1", tsv_b="question2",
                 tsv_label="is_duplicate"),
        TaskSpec("mnli", "MNLI", "MNLI", "glue/mnli", ("premise", "hypothesis"), _NLI3, "accuracy",
                 392702, {"dev_matched": 9815, "dev_mismatched": 9832}, 4, 1,
                 tsv_a="sentence1", tsv_b="sentence2", tsv_label="gold_label"),
        TaskSpec("qnli", "QNLI", "QNLI", "glue/qnli", ("question", "sentence"), _NLI2, "accuracy",
                 104743, {"dev": 5463}, 4, 3, tsv_a="question", tsv_b="sentence", tsv_label="label"),
        TaskSpec("rte", "RTE", "RTE", "glue/rte", ("sentence1", "sentence2"), _NLI2, "accuracy",
                 2490, {"dev": 277}, 20, 5, tsv_a="sentence1", tsv_b="sentence2", tsv_label="label"),
    )
}

TASKS = tuple(SPECS)  # the paper's column order: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE

# Tasks outside GLUE, in the same TSV layout; never part of "all" or the GLUE score.
# word_order: is this line as written (1) or with two adjacent words swapped (0)?
# Built from plain text by `sas_jax.data.downstream` (the probe of `python -m sas_jax.study`).
EXTRA_SPECS = {
    s.name: s
    for s in (
        TaskSpec("word_order", "WordOrder", "WordOrder", "", ("sentence", None), ("0", "1"), "accuracy",
                 4000, {"dev": 1000}, 3, 1, tsv_a="sentence", tsv_label="label"),
    )
}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli_matched": "mnli"}


def get_task(name: str) -> TaskSpec:
    """The spec of `name` (case-insensitive; SST-2/sst2, STS-B/stsb accepted)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key in EXTRA_SPECS:
        return EXTRA_SPECS[key]
    if key not in SPECS:
        raise UserError(f"unknown GLUE task {name!r}; use one of {', '.join(TASKS)} (WNLI is excluded, "
                        f"as in the paper) or {', '.join(EXTRA_SPECS)}")
    return SPECS[key]


def parse_tasks(names) -> tuple:
    """'all' / 'cola,rte' / a list → task keys in the paper's column order (extra tasks last), no duplicates."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    names = list(names or ["all"])
    if [n.strip().lower() for n in names] == ["all"]:
        return TASKS
    keys = {get_task(n).name for n in names}
    return tuple(t for t in TASKS + tuple(EXTRA_SPECS) if t in keys)
