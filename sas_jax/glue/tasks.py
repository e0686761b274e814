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
    # A task given by files (`sas_jax.glue.user_task`): its task.json and the metric it reports.
    file: str = ""  # absolute path of the task.json; "" for the built-in tasks
    metric: str = ""  # reported score (accuracy, f1, mcc, pearson, spearman); "" = GLUE's rule

    @property
    def is_glue(self) -> bool:
        return self.name in SPECS and not self.file

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

# Tasks given by files (a task.json and its data; `sas_jax.glue.user_task`), registered by name when
# their task.json is first read in this process: `get_task("path/to/task.json")`, `task_of(config)`.
USER_SPECS: dict = {}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli_matched": "mnli"}


def is_task_file(name) -> bool:
    """Whether `name` names a task description (a .json file, or a folder holding task.json)."""
    from sas_jax.glue import user_task  # noqa: PLC0415

    return user_task.is_task_path(str(name).strip())


def get_task(name: str) -> TaskSpec:
    """The spec of `name` (case-insensitive; SST-2/sst2, STS-B/stsb accepted), or of a task
    file (`path/to/task.json` or its folder), which is read, checked and registered by its name."""
    if is_task_file(name):
        from sas_jax.glue import user_task  # noqa: PLC0415

        return user_task.load(str(name).strip()).spec
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key in EXTRA_SPECS:
        return EXTRA_SPECS[key]
    if key in USER_SPECS:
        return USER_SPECS[key]
    if key not in SPECS:
        raise UserError(f"unknown GLUE task {name!r}; use one of {', '.join(TASKS)} (WNLI is excluded, "
                        f"as in the paper), {', '.join(EXTRA_SPECS)} or a task file (path/to/task.json, "
                        "docs/tasks.md)")
    return SPECS[key]


def task_of(config) -> TaskSpec:
    """The spec of a fine-tuning config: its task file (`data.task_file`) when it has one, so a
    run's recorded config finds its task in a fresh process, else `config.task`."""
    task_file = config.data.get("task_file", "") if "data" in config else ""
    return get_task(task_file or config.task)


def parse_tasks(names) -> tuple:
    """'all' / 'cola,rte' / a list → task keys in the paper's column order (extra tasks, then task
    files in the given order, last), no duplicates. A task file is read and registered here."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    names = list(names or ["all"])
    if [n.strip().lower() for n in names] == ["all"]:
        return TASKS
    specs = [get_task(n) for n in names]
    files = {}
    for s in specs:
        if files.setdefault(s.name, s.file) != s.file:
            raise UserError(f"two task files use the name {s.name!r}: {files[s.name]} and {s.file}; rename one "
                            "(\"name\" in its task.json)")
    keys = [s.name for s in specs]
    users = tuple(dict.fromkeys(s.name for s in specs if s.file))
    return tuple(t for t in TASKS + tuple(EXTRA_SPECS) if t in keys) + users
