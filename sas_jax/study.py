"""Compare pre-training objectives at equal training FLOPs: `python -m sas_jax.study`.

    python -m sas_jax.study --rows=bert_small,electra_small,sas_small --variant=demo \\
        --flops=3.7e12 --out=runs/study_demo [--seeds=0,1] \\
        [--downstream=TASK[,TASK...]|none  (TASK: auto, wordnet_supersense, <task.json>, <glue_dir>)] \\
        [--config.a.b=v ...] [--finetune.a.b=v ...] [--finetune.TASK:a.b=v ...] [--refinetune]

For every row × seed it loads `configs/<row>.py:<variant>` (`--config.a.b=v` overrides
as in `python -m sas_jax.main`), sets `seed`, and gives it `num_train_steps =
floor(budget / train FLOPs per step)` in the paper's convention
(`sas_jax.flops.train_flops`, linear in the steps), so a row with more FLOPs per step
gets fewer steps. It pre-trains in `<out>/<row>/seed<k>/` (held-out evaluation on
`--eval_rows` rows, `--evals` times per run), fine-tunes the last checkpoint on each
downstream task and writes `<out>/study_table.{md,json,csv}`,
`held_out_mlm_vs_flops.png` and `downstream.png` (and `downstream_<task>.png` for each further task).

Downstream (`--downstream`): `auto` (default) builds the word-order task from plain
text (`sas_jax.data.downstream`: is the line as written, or are two adjacent words
swapped? a bag-of-words model scores exactly chance) into `<out>/downstream/`; a
real labelled task `wordnet_supersense` (`sas_jax.data.real_tasks`, from the installed
Debian package wordnet-base) is built into `<out>/downstream/wordnet_supersense/` (all
rows; tiny or `--downstream_size`: a sample); a task file (`path/to/task.json`, or its
folder; docs/tasks.md) is fine-tuned as it is; a GLUE folder fine-tunes `--task` (default
sst2) from it; `none` skips it. Several tasks, comma-separated (`--downstream=auto,wordnet_supersense`:
word order and a real labelled task on the same checkpoints), fine-tune every run (and `random`) on
each; the first task's score keeps the column `downstream_score` and `downstream.png`, each further
task gets `downstream_score:<task>` and `downstream_<task>.png`. The recipe is
`configs/glue.py` (`:tiny` for the tiny variant) at length `seq_len`, one learning
rate, one seed per pre-training run; `--finetune.a.b=v` overrides any of its fields for every
task, `--finetune.TASK:a.b=v` for one (e.g. `--finetune.wordnet_supersense:num_epochs=4`).

The row `random` (`--rows=bert_small,sas_small,random`) is the no-pre-training baseline:
the first row's encoder shape and tokenizer, weights from the initialiser (seeded by the
seed), 0 steps and FLOPs, no held-out figures, fine-tuned like the others, so every
downstream number stands beside what pre-training adds (`sas_jax.glue.random_init`).

The rows share one corpus (`data.corpus_dir`; a variant that prepares its corpus, as
`demo` does, prepares it once in `<out>/demo_corpus/`), so their held-out rows, unigram
entropy and downstream data are the same.

Checks before spending: before anything is trained or written, every run (and `--dry_run`,
which stops after them) checks every row against its corpus and the downstream data: the row
exists and its overrides load; `seq_len` is the corpus's and fits
`model.max_position_embeddings`; `model.vocab_size` is -1 or at least the corpus
tokenizer's; `sas.max_predictions` holds the positions a full row takes (`min_predictions`,
the batch builders' own rule); the corpus keeps one batch beside the `--eval_rows` held out;
the budget buys a step; for every downstream task, the task file exists and parses (or the GLUE
folder holds the task's files, or the word-order text gives enough lines that fit `seq_len`, or
WordNet is installed), and no task is named twice or unknown; `--finetune.*` loads and
the fine-tuning length fits every row; `<out>/study.json`, if any, has these settings. All
problems are listed, one `error:` line each naming the row (or the task), the field, the
values and the fix, exit 2, and nothing is written: no `study.json`, so the corrected command
runs in the same `--out` (a corpus the study prepares itself, as `demo`'s, is prepared only
once the configs pass). Texts of a task file longer than the fine-tuning length are cut, as
GLUE's: a note, not a problem.

The tiny variant (`--variant=tiny`, the tests' shape) needs a corpus prepared at seq_len 32
(`python -m sas_jax.prepare ... --seq_len=32`), a tokenizer of at most 128 pieces (its
`model.vocab_size`; or pass `--config.model.vocab_size=-1` to take the tokenizer's), and more
rows than it holds out plus one batch of 8: with the default `--eval_rows` (8 batches, 64 rows)
at least 72; fine-tuning lengths up to its 64 positions.

The table (`study_table.md`, `.json`): every run, then per row the mean ± sample sd over its
seeds of the held-out figures and each task's downstream score (`summary`; n/a with one seed), then
paired tests over seeds (`tests`; a seed pairs the runs: one fine-tuning seed and data order
for every row) of every SAS row against every ELECTRA and BERT row (by name: `sasda_small`,
`electra_da_small`, `deberta_small`) and of every pre-trained row against `random`: the mean
difference, a two-sided paired t-test and a seeded paired bootstrap (10,000 resamples, 95%
interval; `sas_jax.analysis.stats`), on each task's downstream score and the held-out MLM loss;
"n/a" with the reason below two seeds in common. `downstream*.png` (one per task) shows each row's
mean, sd error bars and every seed as a point.

Resume: re-run the same command. A run whose `result.json` exists is not trained again: it is
skipped, or only fine-tuned on the tasks its result has no score of; a pre-training run resumes
from its last checkpoint; a fine-tune without its result JSON runs again. `<out>/study.json`
records the budget, variant, overrides, fine-tuning recipe and each task's data, and a re-run with
others is refused. Another fine-tuning recipe or task data on the same pre-training: re-run with
the new `--finetune.*` or `--downstream_size` and `--refinetune`; every run (also of rows the
command does not name) is fine-tuned again on each task whose recipe or data changed and re-tabled,
its pre-training kept, and the earlier fine-tune files move to `<run>/finetune/recipe_<n>/`
(`recipe.json`: the settings they had). One task's own recipe: `--finetune.TASK:a.b=v` (e.g.
`--finetune.wordnet_supersense:learning_rate=1e-3`) applies to TASK only, after the shared ones.
To add a task to a study (finished or not, also one written before `--downstream` took a list),
re-run its command with the task appended, e.g. `--downstream=auto,wordnet_supersense`: every
finished pre-training and fine-tune is kept and only the new fine-tunes run (a task it has must
keep its `--downstream_size`; a re-run naming fewer tasks keeps the others on record and tables
only the ones it names).

On one H100/H200, Small shape, a real corpus (see the README section "Comparing
objectives at equal FLOPs" for the device-time estimate and how to prepare a corpus):

    python -m sas_jax.study --rows=bert_small,electra_small,sas_small --variant= \\
        --flops=1.27e18 --out=/ckpt/study_small --downstream=/data/glue --task=sst2 \\
        --config.data.corpus_dir=/data/wiki_books_128 --config.model.dtype=bfloat16
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import difflib
import glob
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Sequence

import numpy as np

from sas_jax import cli, config_lib, files
from sas_jax.errors import UserError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_TEXT = str(REPO_ROOT / "data" / "demo" / "*.txt")
EVAL_KEYS = ("mlm_loss", "mlm_accuracy", "mlm_loss_replaced", "rtd_accuracy", "rtd_auc", "rtd_baseline")
COLUMNS = ("row", "seed", "steps", "train_flops", *EVAL_KEYS, "unigram_entropy", "downstream_score")
TITLES = {"row": "row", "seed": "seed", "steps": "steps", "train_flops": "train FLOPs",
          "mlm_loss": "held-out MLM loss ([MASK])", "mlm_accuracy": "MLM acc",
          "mlm_loss_replaced": "MLM loss (replaced)", "rtd_accuracy": "RTD acc", "rtd_auc": "RTD AUC",
          "rtd_baseline": "RTD all-original acc", "unigram_entropy": "unigram entropy",
          "downstream_score": "downstream dev"}
TABLE = "study_table"
TEST_KEYS = ("downstream_score", "mlm_loss")  # the figures the paired tests compare between rows
LOWER_IS_BETTER = ("mlm_loss",)
FAMILIES = ("sas", "electra", "bert")  # study.family: by the row's name (sasda_small, electra_da_small, deberta_small)
RANDOM_ROW = "random"  # --rows=...,random: no pre-training, the downstream baseline (glue/random_init.py)
REAL_TASK_NAMES = ("wordnet_supersense",)  # sas_jax.data.real_tasks.RECIPES, without importing it here
SCORE_KEY = "downstream_score"  # the first downstream task's column; each further task's is SCORE_KEY:<task>
DOWNSTREAM_KEYS = ("downstream", "task", "downstream_size")  # study.json's record of the downstream tasks
RECIPE_KEY = "finetune_overrides"  # study.json's record of the fine-tuning recipe (--finetune.*)


def score_key(index: int, task: str) -> str:
    """The table column of the study's `index`-th downstream task: `downstream_score` for the first
    (as a one-task study has always had it), `downstream_score:<task>` for each further one."""
    return SCORE_KEY if index == 0 else f"{SCORE_KEY}:{task}"


def fmt_flops(x: float) -> str:
    """The paper's way of writing FLOPs: 1.27e18."""
    mantissa, _, exponent = f"{float(x):.3g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def say(message: str) -> None:
    print(message, flush=True)


# ----------------------------------------------------------------------------- planning
@dataclasses.dataclass
class Run:
    row: str
    seed: int
    config: object  # the run's ConfigDict (steps, seed, eval cadence set)
    flops_per_step: float  # paper convention
    workdir: str
    shape_from: object = None  # the `random` row: the pre-trained Run whose checkpoint gives its shape

    @property
    def steps(self) -> int:
        return int(self.config.num_train_steps)

    @property
    def train_flops(self) -> float:
        return self.flops_per_step * self.steps


def row_name(spec: str) -> str:
    return pathlib.Path(spec.split(":")[0]).stem


def resolve_corpus_dir(config, out: str) -> str:
    """The absolute corpus folder: a corpus the config prepares lives in `<out>/`, others
    are taken as given (relative to the current folder)."""
    d = str(config.data.corpus_dir)
    if not d:
        raise UserError("data.corpus_dir is empty; prepare a corpus with `python -m sas_jax.prepare` and pass "
                        "--config.data.corpus_dir=<dir> (or use --variant=demo, which prepares the bundled one)")
    if os.path.isabs(d):
        return d
    return os.path.join(os.path.abspath(out), d) if config.data.prepare.text_files else os.path.abspath(d)


def steps_for_budget(config, budget: float, vocab_size: int) -> tuple:
    """(steps, paper-convention train FLOPs per step) for `budget` FLOPs."""
    from sas_jax import flops  # noqa: PLC0415

    c = config.copy_and_resolve_references()
    c.num_train_steps = 1
    per_step = flops.train_flops(c, vocab_size=vocab_size)
    return int(budget // per_step), per_step


class StudyProblems(UserError):
    """Everything wrong with a study's command, found before anything is trained or written:
    one line per problem, each naming the row (or the downstream task), the field, the values
    and the fix. `main` prints each as its own `error:` line (exit 2); str() joins them with "; "."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def min_predictions(config) -> tuple:
    """(the fewest `sas.max_predictions` slots a full row of `seq_len` tokens needs, the rule in words),
    by the rules the batch builders enforce: every objective selects `masking.target_counts` positions
    of a row (max(1, round(mask_rate * non-pad tokens)); `masking.positions_from_mask` refuses more
    than the slots), ELECTRA also fills `static_batch.electra_budget` slots (int((rate + 0.005) * L))."""
    from sas_jax.corruption import masking, static_batch  # noqa: PLC0415

    length, rate = int(config.seq_len), float(config.sas.mask_rate)
    need = int(masking.target_counts(np.ones((1, length), bool), rate)[0])
    rule = f"max(1, round(sas.mask_rate*seq_len)) = max(1, round({rate:g}*{length}))"
    if config.objective.corruption == "electra":
        budget = static_batch.electra_budget(rate, length)
        if budget > need:
            return budget, f"ELECTRA's budget int((sas.mask_rate+0.005)*seq_len) = int({rate + 0.005:g}*{length})"
    return need, rule


def row_config_problems(name: str, config, n_eval: int) -> list:
    """What keeps `config` (row `name`) from training, whatever its corpus: one line each."""
    from sas_jax import objectives  # noqa: PLC0415

    out = []
    length, positions = int(config.seq_len), int(config.model.max_position_embeddings)
    if length > positions:
        out.append(f"row {name}: seq_len={length} exceeds model.max_position_embeddings={positions}; "
                   f"set --config.seq_len={positions} or less (and a corpus prepared at that length)")
    need, rule = min_predictions(config)
    have = int(config.sas.max_predictions)
    if have < need:
        out.append(f"row {name}: sas.max_predictions={have} is fewer than the {need} masked positions of a full "
                   f"row ({rule}); set --config.sas.max_predictions={need} (or lower sas.mask_rate)")
    else:  # the trainer's other objective checks (ELECTRA's budget is the one above)
        try:
            objectives.check_objective(config)
        except UserError as e:
            out.append(f"row {name}: {e}")
    batch = int(config.batch_size)
    if n_eval <= 0 or n_eval % batch:
        out.append(f"row {name}: --eval_rows={n_eval} must be a positive multiple of its batch_size={batch}; "
                   f"pass --eval_rows={max(1, round(n_eval / batch)) * batch}")
    return out


def row_corpus_problems(name: str, config, corpus, n_eval: int, *, prepared_here: bool = False) -> list:
    """What keeps row `name` from training on `corpus`, as `train.check_config` and the example order
    would refuse it at its first step: sequence length, vocabulary, rows. One line each."""
    out = []
    where = corpus.directory
    if int(corpus.seq_len) != int(config.seq_len):
        again = (f"delete {where} so this study prepares it again at {config.seq_len}" if prepared_here else
                 f"prepare a corpus at that length (python -m sas_jax.prepare ... --seq_len={config.seq_len})")
        out.append(f"row {name}: seq_len={config.seq_len} but the corpus {where} was prepared with "
                   f"seq_len={corpus.seq_len}; set --config.seq_len={corpus.seq_len}, or {again}")
    vocab = int(config.model.vocab_size)
    if vocab != -1 and vocab < int(corpus.vocab_size):
        out.append(f"row {name}: model.vocab_size={vocab} is smaller than the corpus tokenizer's {corpus.vocab_size} "
                   f"pieces ({where}); set --config.model.vocab_size=-1 (take the tokenizer's) or at least "
                   f"{corpus.vocab_size}")
    rows, batch = int(corpus.num_rows), int(config.batch_size)
    if n_eval >= rows or rows - n_eval < batch:  # evaluation.held_out_ids, pipeline.ExampleOrder
        out.append(f"row {name}: the corpus {where} has {rows} rows; {n_eval} held out (--eval_rows) leave "
                   f"{max(0, rows - n_eval)} to train on, fewer than one batch_size={batch}; pass a smaller "
                   f"--eval_rows or use a corpus of at least {n_eval + batch} rows")
    return out


def plan(rows: Sequence[str], variant: str, overrides: Sequence[str], budget: float, seeds: Sequence[int],
         out: str, *, eval_rows: int | None = None, evals: int = 8, corpora: dict | None = None,
         problems: list | None = None) -> tuple:
    """([Run], {corpus dir: Corpus}, {row: config or None}): every run's config, with the corpora opened
    (prepared if the config says so), and every pre-trained row's config as loaded (None: it did not
    load), in the order of `rows`. Every problem of every row (an unknown row or override, a config that does not
    fit its corpus: sequence length, vocabulary, `sas.max_predictions`, rows, a budget below one step)
    is found here, before any training: appended to `problems` when given (the runs of the rows
    without one are returned), else raised as one `StudyProblems`. A corpus this study prepares (the
    demo's) is prepared only once the configs pass, so a failed check never leaves one that refuses
    the corrected command."""
    from sas_jax.data import corpus as corpus_lib  # noqa: PLC0415
    from sas_jax.data import prepare as prepare_lib  # noqa: PLC0415

    found: list = []
    if budget <= 0:
        found.append(f"--flops={budget} must be a positive number of training FLOPs, e.g. 1.27e18")
    configs = {}
    baseline = any(row_name(r) == RANDOM_ROW for r in rows)  # no pre-training: fine-tuned from the initialiser
    rows = [r for r in rows if row_name(r) != RANDOM_ROW]
    if baseline and not rows:
        found.append(f"the {RANDOM_ROW} row takes its encoder shape and tokenizer from another row's checkpoint; "
                     f"add one, e.g. --rows=sas_small,{RANDOM_ROW}")
    names = []
    for spec in rows:
        name = row_name(spec)
        if name in names:
            found.append(f"row {name!r} is given twice in --rows; give each row once")
            continue
        names.append(name)
        full = f"{spec}:{variant}" if variant and ":" not in spec else spec
        try:
            configs[name] = config_lib.load_config(full, overrides)
        except UserError as e:
            configs[name] = None
            found.append(f"row {name}: {e}")
    loaded = {name: config for name, config in configs.items() if config is not None}
    n_evals = {}
    for name, config in loaded.items():
        n_evals[name] = int(eval_rows) if eval_rows is not None else (int(config.data.eval_rows) or
                                                                      8 * int(config.batch_size))
        found += row_config_problems(name, config, n_evals[name])
    by_dir: dict = {}
    for name, config in loaded.items():
        try:
            config.data.corpus_dir = resolve_corpus_dir(config, out)
        except UserError as e:
            found.append(f"row {name}: {e}")
            continue
        by_dir.setdefault(config.data.corpus_dir, []).append(name)
    corpora = {} if corpora is None else corpora
    prepared_here = set()
    for d, sharing in by_dir.items():
        first = configs[sharing[0]]
        if bool(first.data.prepare.text_files):
            prepared_here.add(d)
        if d in corpora:
            continue
        if first.data.prepare.text_files and not prepare_lib.holds_corpus(d):
            lengths = sorted({int(configs[n].seq_len) for n in sharing})
            if len(lengths) > 1:
                found.append(f"rows {', '.join(sharing)} share the corpus {d} this study prepares, at one "
                             f"seq_len, but ask for {lengths}; give every row the same --config.seq_len")
            if found:  # prepared at a length or vocabulary the fix may change: not until the configs pass
                continue
        try:
            corpora[d] = corpus_lib.open_corpus(first, out, prepare_here=bool(first.data.prepare.text_files))
        except UserError as e:
            found.append(f"row{'s' if len(sharing) > 1 else ''} {', '.join(sharing)}: {e}")
    runs = []
    for name, config in loaded.items():
        corpus = corpora.get(config.data.corpus_dir)
        if corpus is None:
            continue
        mine = row_corpus_problems(name, config, corpus, n_evals[name],
                                   prepared_here=config.data.corpus_dir in prepared_here)
        found += mine
        vocab = int(corpus.vocab_size if config.model.vocab_size == -1 else config.model.vocab_size)
        if mine or budget <= 0:
            continue
        steps, per_step = steps_for_budget(config, budget, vocab)
        if steps < 1:
            found.append(f"row {name}: --flops={fmt_flops(budget)} is less than one step of it "
                         f"({fmt_flops(per_step)} FLOPs); raise the budget to at least {fmt_flops(per_step)}")
            continue
        config.num_train_steps = steps
        config.data.eval_rows = n_evals[name]
        config.log.eval_every_steps = max(1, math.ceil(steps / max(1, int(evals))))
        config.ckpt.every_steps = min(int(config.ckpt.every_steps), steps)
        for seed in seeds:
            c = config.copy_and_resolve_references()
            c.seed = int(seed)
            runs.append(Run(name, int(seed), c, per_step, os.path.join(out, name, f"seed{int(seed)}")))
    if baseline and runs and runs[0].row == names[0]:  # the first row's shape and tokenizer, 0 steps
        first = runs[0]
        for seed in seeds:
            c = first.config.copy_and_resolve_references()
            c.seed, c.num_train_steps = int(seed), 0
            runs.append(Run(RANDOM_ROW, int(seed), c, 0.0, os.path.join(out, RANDOM_ROW, f"seed{int(seed)}"),
                            shape_from=first))
    if problems is None and found:
        raise StudyProblems(found)
    if problems is not None:
        problems += found
    return runs, corpora, configs


def unigram_entropy(corpus) -> float:
    from sas_jax import evaluation  # noqa: PLC0415

    return evaluation.unigram_entropy(corpus.unigram_counts, corpus.tokenizer.special_table)


def parse_downstream(text) -> tuple:
    """([task], [problem]) of `--downstream`: a comma-separated list of tasks (auto, a real task's name,
    a task file, a GLUE folder), or `none` alone (no task). Each problem is one line naming the
    entry and the fix; the tasks returned are the good ones, each once, in the order given."""
    given = text.split(",") if isinstance(text, str) else list(text)
    items = [str(k).strip() for k in given if str(k).strip()]
    if not items:
        return [], [(f"--downstream={text!r} names no task; pass auto, {', '.join(REAL_TASK_NAMES)}, a task file, "
                     "a GLUE folder, several of them comma-separated, or none")]
    if items == ["none"]:
        return [], []
    kinds, problems = [], []
    named = ("auto", "none", *REAL_TASK_NAMES)
    for kind in items:
        if kind == "none":
            problems.append(f"--downstream={','.join(items)}: none means no downstream task and stands alone; "
                            "drop it from the list (or pass --downstream=none by itself)")
        elif kind in kinds:
            problems.append(f"task {kind!r} is given twice in --downstream; give each task once")
        elif (kind not in named and os.sep not in kind and "/" not in kind and not kind.lower().endswith(".json")
              and not os.path.exists(kind)):  # a bare word: a misspelt task name more likely than a folder
            close = [n for n in named if n.startswith(kind)] or difflib.get_close_matches(kind, named, n=1)
            problems.append(f"unknown downstream task {kind!r} in --downstream (not a task name, a task file or "
                            f"a folder); {f'did you mean {close[0]!r}? ' if close else ''}pass auto, "
                            f"{', '.join(REAL_TASK_NAMES)}, path/to/task.json or a GLUE TSV folder")
        else:
            kinds.append(kind)
    return kinds, problems


def is_glue_folder(kind: str) -> bool:
    """Whether the `--downstream` entry `kind` is a GLUE folder (fine-tuned on `--task`)."""
    from sas_jax.glue import tasks as tasks_lib  # noqa: PLC0415

    return kind not in ("auto", "none", *REAL_TASK_NAMES) and not tasks_lib.is_task_file(kind)


def task_settings(kind: str, *, task: str, sizes: tuple, recipe_sizes: tuple | None) -> dict:
    """What study.json records of one downstream task, as a one-task study has always recorded it:
    `task` (--task; it matters for a GLUE folder only) and `downstream_size` (the word-order task's
    TRAIN,DEV lines; a real task's sample, None: all rows)."""
    return {"task": task if kind not in ("auto", "none") else None,
            "downstream_size": list(sizes) if kind == "auto" else (
                (list(recipe_sizes or ()) or None) if kind in REAL_TASK_NAMES else None)}


def downstream_record(settings: dict) -> dict:
    """study.json's `downstream`, `task`, `downstream_size` of {task: task_settings}: none; one task as
    before tasks were a list (`downstream_size` its own); several: the tasks comma-separated, --task
    (for a GLUE folder among them, else None) and {task: downstream_size}."""
    if not settings:
        return {"downstream": "none", "task": None, "downstream_size": None}
    if len(settings) == 1:
        ((kind, s),) = settings.items()
        return {"downstream": kind, **s}
    glue = [s["task"] for k, s in settings.items() if is_glue_folder(k)]
    return {"downstream": ",".join(settings), "task": glue[0] if glue else None,
            "downstream_size": {k: s["downstream_size"] for k, s in settings.items()}}


def recorded_tasks(manifest: dict) -> dict:
    """{task: task_settings} of a study.json, whichever way it records them (`downstream_record`; a
    study.json written before tasks were a list holds one task, or none)."""
    kinds = [k for k in str(manifest.get("downstream") or "none").split(",") if k and k != "none"]
    size = manifest.get("downstream_size")
    if len(kinds) == 1:
        return {kinds[0]: {"task": manifest.get("task"), "downstream_size": size}}
    return {k: {"task": manifest.get("task") if is_glue_folder(k) else None,
                "downstream_size": size.get(k) if isinstance(size, dict) else None} for k in kinds}


def check_manifest(out: str, manifest: dict, write: bool = True, refinetune: bool = False) -> dict:
    """Writes `<out>/study.json` (`write`; else only checks), or refuses an `out` that holds a
    study with other settings (another fine-tuning recipe or task data only without `refinetune`);
    returns the manifest, its rows and downstream tasks merged with the
    old ones: a task the study did not have is added (its fine-tunes run on the finished
    pre-training); a task it had must keep its data (`downstream_size`, and --task for a GLUE folder)."""
    path = os.path.join(out, "study.json")
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
        diff = [k for k in manifest if k not in ("rows", RECIPE_KEY) and k not in DOWNSTREAM_KEYS
                and old.get(k) != manifest[k]]
        if diff:
            raise UserError(f"{out} holds a study with {diff[0]}={old.get(diff[0])!r}, not "
                            f"{manifest[diff[0]]!r}; use another --out (or the same settings to resume)")
        unnamed = sorted(set(recorded_tasks(old)) - set(recorded_tasks(manifest)))
        shared_changed = split_recipe(old.get(RECIPE_KEY, []))[0] != split_recipe(manifest[RECIPE_KEY])[0]
        if refinetune and unnamed and shared_changed:
            raise UserError(f"--refinetune with other shared --finetune overrides fine-tunes every task of {out} "
                            f"again; name them all: add {','.join(unnamed)} to --downstream")
        if old.get(RECIPE_KEY, []) != manifest[RECIPE_KEY] and not refinetune:
            raise UserError(f"{out} holds a study fine-tuned with --finetune overrides {old.get(RECIPE_KEY, [])!r}, "
                            f"not {manifest[RECIPE_KEY]!r}; pass the same ones to resume, or add --refinetune to "
                            "fine-tune every run again with the new ones (its pre-training is kept, the earlier "
                            "fine-tunes move to <run>/finetune/recipe_<n>/)")
        had, want = recorded_tasks(old), recorded_tasks(manifest)
        for kind in (k for k in want if k in had and not refinetune):  # --refinetune: new data too
            for field in ("downstream_size", "task"):
                if (field == "downstream_size" or is_glue_folder(kind)) and had[kind][field] != want[kind][field]:
                    raise UserError(f"{out} holds a study whose downstream task {kind} has {field}="
                                    f"{had[kind][field]!r}, not {want[kind][field]!r}; use another --out (or the "
                                    "same settings to resume; a new task may be added to --downstream)")
        manifest = {**manifest, **downstream_record({**had, **{k: s for k, s in want.items()
                                                               if k not in had or refinetune}}),
                    "rows": sorted(set(old.get("rows", [])) | set(manifest["rows"]))}
    if write:
        files.write_json(path, manifest)
    return manifest


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


# ----------------------------------------------------------------------------- downstream
@dataclasses.dataclass
class Downstream:
    task: str  # a key of sas_jax.glue.tasks (word_order, sst2, ...)
    glue_dir: str
    config: str  # configs/glue.py[:variant]
    overrides: list  # "a.b=v", the study's defaults first, then --finetune.*
    chance: float | None = None

    def task_config(self, run: Run):
        from sas_jax.glue import sweep  # noqa: PLC0415

        c = sweep.load_task_config(self.task, self.config, self.overrides)
        shaped = run.shape_from or run  # the random row: the shape of a pre-trained row's checkpoint, no weights
        c.init_from.checkpoint_dir = os.path.abspath(shaped.workdir)
        c.init_from.step = shaped.steps
        if run.shape_from is not None:
            c.init_from.init = "random"
        c.data.glue_dir = self.glue_dir
        c.data.tfds_data_dir = ""
        c.seed = run.seed
        return c


def split_recipe(finetune_overrides: Sequence[str]) -> tuple:
    """(the overrides every task takes, {task: its own}) of the `--finetune.*` list: an entry
    `TASK:a.b=v` (`--finetune.wordnet_supersense:learning_rate=1e-3`) is TASK's only, after the
    shared ones."""
    shared, own = [], {}
    for item in finetune_overrides:
        if ":" in item.partition("=")[0]:
            task, _, rest = item.partition(":")
            own.setdefault(task, []).append(rest)
        else:
            shared.append(item)
    return shared, own


def task_recipe(finetune_overrides: Sequence[str], task: str | None) -> list:
    """The `--finetune.*` overrides task `task` is fine-tuned with: the shared ones, then its own."""
    shared, own = split_recipe(finetune_overrides)
    return [*shared, *own.get(task, [])]


def finetune_recipe(variant: str, seq_len: int, finetune_overrides: Sequence[str], task: str | None = None) -> tuple:
    """(configs/glue.py[:tiny], its "a.b=v" overrides for `task`): length `seq_len`, then `--finetune.*`
    (the shared ones, then the task's own)."""
    return ("glue:tiny" if "tiny" in variant.split(",") else "glue",
            [f"data.max_seq_length={int(seq_len)}", *task_recipe(finetune_overrides, task)])


def check_downstream(kinds, *, configs: dict, corpora: dict, baseline: bool, variant: str, task: str,
                     text: str, sizes: tuple, finetune_overrides: Sequence[str], stage: str) -> list:
    """What would fail the study's fine-tunes after its pre-training, for every task of `kinds`
    (`parse_downstream`'s list, [] or "none": none): one line each. The task file must exist and parse
    (`glue.user_task`), a GLUE folder hold the task's files, the word-order task find enough lines that
    fit `seq_len` (built into `stage`, a scratch folder `setup_downstream` copies from), the real task's
    package be installed, no two entries be one task (one name: one fine-tune file per run),
    `--finetune.*` name fields of configs/glue.py, and the fine-tuning length fit every row's position
    table (a recipe problem several tasks share is one line naming them all). Texts longer than that
    length are cut (as GLUE's are): a note, not a problem. `configs`: `plan`'s (checked whatever else is
    wrong with the rows; the first row gives the tokenizer and length); `baseline`: the random row is
    one of the rows."""
    from sas_jax.data import downstream, real_tasks  # noqa: PLC0415
    from sas_jax.glue import data as data_lib  # noqa: PLC0415
    from sas_jax.glue import sweep  # noqa: PLC0415
    from sas_jax.glue import tasks as tasks_lib  # noqa: PLC0415

    kinds = [k for k in ([kinds] if isinstance(kinds, str) else kinds) if k != "none"]
    if not kinds:
        return ([(f"the {RANDOM_ROW} row is a downstream baseline; it needs --downstream (not none): drop "
                  f"{RANDOM_ROW} from --rows or pass --downstream=auto")] if baseline else [])
    first = next(iter(configs.values()), None)
    if first is None or first.data.corpus_dir not in corpora:  # the first row's problems are reported
        return []
    seq_len = int(first.seq_len)
    tok = corpora[first.data.corpus_dir].tokenizer
    glue_config, _ = finetune_recipe(variant, seq_len, finetune_overrides)
    out, specs, names, lengths, recipe = [], {}, {}, {}, {}  # recipe: {problem: [the tasks that have it]}
    for kind in kinds:
        where = f"downstream (--downstream={kind})"
        spec = None
        try:
            if kind == "auto":
                downstream.build_word_order_task(text, stage, train_size=sizes[0], dev_size=sizes[1], seed=0,
                                                 encode=tok.encode, max_tokens=seq_len - 2,
                                                 tokenizer_id=tok.fingerprint)
                spec = tasks_lib.get_task("word_order")
            elif kind in real_tasks.RECIPES:  # built after the checks; its rows are short sentences
                real_tasks.require_wordnet()
            elif tasks_lib.is_task_file(kind):
                spec = tasks_lib.get_task(kind)  # reads and checks every file
            elif not os.path.isdir(kind):
                out.append(f"--downstream={kind!r} is not a folder; pass auto, none, {', '.join(real_tasks.RECIPES)}, "
                           "a task file (path/to/task.json) or a GLUE TSV folder (with SST-2/, CoLA/, ...)")
            else:
                spec = tasks_lib.get_task(task)
                for split in ("train", *spec.dev_splits):
                    if not os.path.isfile(data_lib.tsv_path(spec, kind, split)):
                        out.append(f"{where}: GLUE file {data_lib.tsv_path(spec, kind, split)} not found; pass the "
                                   f"folder holding {spec.folder}/{split}.tsv (the standard GLUE layout) or another "
                                   "--task")
        except UserError as e:
            out.append(f"{where}: {e}")
        specs[kind] = spec
        name = spec.name if spec else (kind if kind in real_tasks.RECIPES else None)
        if name in names:
            out.append(f"--downstream: {names[name]} and {kind} are one task, {name!r} (a run keeps one fine-tune "
                       f"per task name, finetune/{name}.json); give it once")
        elif name:
            names[name] = kind
        _, overrides = finetune_recipe(variant, seq_len, finetune_overrides, name)
        try:  # the task's own name once read; the word-order task stands in for a recipe built later
            c = sweep.load_task_config(spec.name if spec else "word_order", glue_config, overrides)
        except UserError as e:
            recipe.setdefault(f"fine-tuning config {glue_config} with --finetune.*: {e}", []).append(kind)
            continue
        lengths[kind] = length = int(c.data.max_seq_length)
        for row, config in configs.items():
            positions = int(config.model.max_position_embeddings) if config is not None else length
            if length > positions:
                recipe.setdefault(f"fine-tuning length data.max_seq_length={length} exceeds row {row}'s "
                                  f"model.max_position_embeddings={positions}; set --finetune.data.max_seq_length="
                                  f"{positions} or less", []).append(kind)
    out += [f"downstream (--downstream={','.join(shared)}): {problem}" for problem, shared in recipe.items()]
    out += [f"--finetune.{t}:{own[0]}: {t!r} is not a task of this study ({', '.join(names) or 'none'}); name one "
            "of them before the colon, or drop the prefix to fine-tune every task with it"
            for t, own in split_recipe(finetune_overrides)[1].items() if t not in names]
    for kind, spec in specs.items():  # a task file: would its texts be cut?
        if spec is None or not spec.file or out:
            continue
        from sas_jax.glue import user_task  # noqa: PLC0415

        where, length = f"downstream (--downstream={kind})", lengths[kind]
        splits = user_task.load(spec.file).splits
        try:
            cut = {s: (data_lib.encode_split(splits[s], tok, length).truncated, len(splits[s]))
                   for s in ("train", *spec.dev_splits)}
        except UserError as e:
            out.append(f"{where}: {e}")
            continue
        if any(n for n, _ in cut.values()):
            say(f"note: {where}: " + ", ".join(f"{n} of {m} {s} rows" for s, (n, m) in cut.items()) +
                f" are longer than data.max_seq_length={length} tokens with [CLS]/[SEP] and are cut (as GLUE's "
                "are); raise --finetune.data.max_seq_length (at most the rows' model.max_position_embeddings) "
                "to keep them")
    return out


def setup_downstream(kind: str, *, out: str, variant: str, runs: list, corpora: dict, task: str,
                     text: str, sizes: tuple, finetune_overrides: Sequence[str],
                     recipe_sizes: tuple | None = None, staged: str | None = None) -> Downstream | None:
    """The downstream task of the study: the word-order task built now (`auto`; copied from `staged`
    when `check_downstream` built it there), a real task built now (`wordnet_supersense`,
    `sas_jax.data.real_tasks`), a task file, a GLUE folder, or None."""
    if kind == "none":
        return None
    seq_len = int(runs[0].config.seq_len)
    glue_config, overrides = finetune_recipe(variant, seq_len, finetune_overrides)
    if kind == "auto":
        from sas_jax.data import downstream  # noqa: PLC0415

        tok = corpora[runs[0].config.data.corpus_dir].tokenizer
        folder = os.path.join(out, "downstream")
        if staged and os.path.isdir(os.path.join(staged, downstream.FOLDER)):  # the same build: kept as it is
            shutil.copytree(os.path.join(staged, downstream.FOLDER), os.path.join(folder, downstream.FOLDER),
                            dirs_exist_ok=True)
        meta = downstream.build_word_order_task(text, folder, train_size=sizes[0], dev_size=sizes[1], seed=0,
                                                encode=tok.encode, max_tokens=seq_len - 2,
                                                tokenizer_id=tok.fingerprint)
        say(f"downstream: word order ({meta['train_size']} train / {meta['dev_size']} dev lines of "
            f"{', '.join(meta['files'])}, label 1 = as written, 0 = two adjacent words swapped; chance 0.5)")
        return Downstream("word_order", folder, glue_config, overrides, chance=0.5)
    from sas_jax.data import real_tasks  # noqa: PLC0415
    from sas_jax.glue import tasks as tasks_lib  # noqa: PLC0415

    if kind in real_tasks.RECIPES:  # built from an installed package into <out>/downstream/<recipe>/
        caps = ({"max_train": recipe_sizes[0], "max_dev": recipe_sizes[1], "max_test": recipe_sizes[1]}
                if recipe_sizes else {})
        real_tasks.build(kind, os.path.join(out, "downstream", kind), seed=0, **caps)
        kind = os.path.join(out, "downstream", kind, "task.json")
    if tasks_lib.is_task_file(kind):  # a task given by files (docs/tasks.md)
        spec = tasks_lib.get_task(kind)
        chance = None
        if not spec.is_regression:  # the majority class's share of dev: what a constant guess scores
            from sas_jax.glue import user_task  # noqa: PLC0415

            dev = user_task.load(spec.file).splits["dev"].labels
            chance = float(np.bincount(dev).max() / len(dev))
        say(f"downstream: {spec.title} from {spec.file} ({spec.train_size} train / {spec.dev_sizes['dev']} dev rows, "
            f"{spec.num_labels if not spec.is_regression else 'regression'} labels, metric {spec.metric})")
        return Downstream(spec.name, "", glue_config, overrides, chance=chance)
    if not os.path.isdir(kind):
        raise UserError(f"--downstream={kind!r} is not a folder; pass auto, none, {', '.join(real_tasks.RECIPES)}, "
                        "a task file (path/to/task.json) or a GLUE TSV folder (with SST-2/, CoLA/, ...)")
    from sas_jax.glue.tasks import get_task  # noqa: PLC0415

    spec = get_task(task)
    say(f"downstream: {spec.title} from {kind}")
    return Downstream(spec.name, os.path.abspath(kind), glue_config, overrides)


def finetune(run: Run, ds: Downstream, cache: dict) -> dict:
    """The fine-tune result of `run` (re-used if its JSON is finished, else run now)."""
    from sas_jax.glue import finetune as finetune_lib  # noqa: PLC0415
    from sas_jax.glue import model as model_lib  # noqa: PLC0415

    path = os.path.join(run.workdir, "finetune", f"{ds.task}.json")
    done = _read_json(path)
    if done and done.get("status") == "done":
        return done
    config = ds.task_config(run)
    pre = model_lib.load_pretrained(config.init_from)
    key = (pre.tokenizer.fingerprint, ds.task, int(config.data.max_seq_length))
    if key not in cache:
        for other in [k for k in cache if (k[0], k[2]) != (key[0], key[2])]:  # the study's tasks, one tokenizer
            del cache[other]
        cache[key] = finetune_lib.load_data(config, pre.tokenizer)
    return finetune_lib.finetune(config, pretrained=pre, data=cache[key], result_path=path,
                                 log=lambda m: say(f"  {run.row}/seed{run.seed} {m}")).result


# ----------------------------------------------------------------------------- runs
def read_eval(workdir: str) -> dict:
    """{step: {metric: value}} of the `eval/*` lines of `<workdir>/metrics.jsonl` (a step
    logged twice, as after a resume, keeps the later line; a torn line is skipped)."""
    from sas_jax import metrics_log  # noqa: PLC0415 (keeps the CLI's argument checks free of JAX)

    out: dict = {}
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        return out
    for d in metrics_log.read_records(path):
        ev = {k[len("eval/"):]: float(v) for k, v in d.items() if k.startswith("eval/")}
        if ev:
            out.setdefault(int(d["step"]), {}).update(ev)
    return out


class Stopped(Exception):
    """A pre-training run stopped early (SIGTERM) after saving; re-running resumes it."""


def _last_checkpoint(workdir: str) -> int:
    from sas_jax import checkpointing  # noqa: PLC0415

    have = checkpointing.checkpoint_steps(workdir) if os.path.isdir(workdir) else []
    return max(have) if have else 0


def pretrain(run: Run, corpus) -> None:
    """Trains `run` to its last step (resuming from its checkpoints) unless that checkpoint exists."""
    from sas_jax import train  # noqa: PLC0415

    have = _last_checkpoint(run.workdir)
    if have >= run.steps:
        say(f"{run.row}/seed{run.seed}: pre-training already finished (step {have})")
        return
    say(f"{run.row}/seed{run.seed}: pre-training {run.steps} steps in {run.workdir}"
        + (f" (resuming from step {have})" if have else ""))
    train.Trainer(run.config, run.workdir, corpus=corpus).run()
    if _last_checkpoint(run.workdir) < run.steps:
        raise Stopped(f"{run.row}/seed{run.seed} stopped at step {_last_checkpoint(run.workdir)} of {run.steps}; "
                      "re-run the same command to resume")


def evaluate_last(run: Run, corpus) -> None:
    """Held-out evaluation of the last checkpoint, logged to metrics.jsonl (for a run killed
    between its last save and its last evaluation)."""
    from sas_jax import train  # noqa: PLC0415

    t = train.Trainer(run.config, run.workdir, corpus=corpus)
    try:
        step = t.restore()
        t.open_writer(step)
        t.evaluate(step)
    finally:
        t.close()


def downstream_scores(result: dict) -> dict:
    """{task: {"score", "metric"}} of a run's result: its `downstream` (every task fine-tuned on the
    run), or, in a result written before a study took several tasks, the one task of its flat
    `downstream_task`/`downstream_score`/`downstream_metric` (key None where it names no task)."""
    if isinstance(result.get("downstream"), dict):
        return dict(result["downstream"])
    if result.get(SCORE_KEY) is None:
        return {}
    return {result.get("downstream_task"): {"score": result[SCORE_KEY], "metric": result.get("downstream_metric")}}


def _tasks(ds) -> list:
    """[Downstream] of None, one Downstream or a sequence of them."""
    return [] if ds is None else [ds] if isinstance(ds, Downstream) else list(ds)


def run_one(run: Run, corpus, entropy: float, ds, cache: dict) -> dict:
    """The result of one row × seed: pre-train, fine-tune on each task of `ds` (one Downstream, a list
    of them, or None), then `result.json` (written last). A finished result (its `status` done) is
    kept: only the tasks it has no score of are fine-tuned, from its last checkpoint, and added."""
    path = os.path.join(run.workdir, "result.json")
    tasks = _tasks(ds)
    done = _read_json(path)
    if done and done.get("status") == "done":
        scores = downstream_scores(done)
        missing = [d for d in tasks if d.task not in scores]
        if not missing:
            say(f"{run.row}/seed{run.seed}: finished before, skipped ({path})")
            return done
        say(f"{run.row}/seed{run.seed}: pre-training finished before ({path}); fine-tuning "
            f"{', '.join(d.task for d in missing)}")
        result = {k: v for k, v in done.items() if k != "downstream"}
    else:
        evals, scores = {}, {}
        if run.shape_from is None:  # the random row has nothing to pre-train or evaluate
            pretrain(run, corpus)
            evals = read_eval(run.workdir)
            if run.steps not in evals:
                evaluate_last(run, corpus)
                evals = read_eval(run.workdir)
        result = {"status": "done", "row": run.row, "seed": run.seed, "steps": run.steps,
                  "train_flops": run.train_flops, "flops_per_step": run.flops_per_step,
                  "unigram_entropy": entropy, **{k: evals.get(run.steps, {}).get(k) for k in EVAL_KEYS},
                  "curve": [{"step": s, "train_flops": s * run.flops_per_step, **evals[s]} for s in sorted(evals)],
                  "downstream_task": None, SCORE_KEY: None}
    for d in tasks:
        if d.task in scores:
            continue
        ft = finetune(run, d, cache)
        scores[d.task] = {"score": float(ft["score"]), "metric": ft.get("selection_metric")}
        say(f"{run.row}/seed{run.seed}: {d.task} dev {ft.get('selection_metric', 'score')} {ft['score']:.4f}")
    if tasks:  # the flat fields: the first task's, as a one-task study has always written them
        first = scores[tasks[0].task]
        result.update(downstream_task=tasks[0].task, downstream_score=first["score"], downstream_metric=first["metric"])
    if scores:
        result["downstream"] = scores
    files.write_json(path, result)
    return result


# ----------------------------------------------------------------------------- table
def summarize(results: list, columns: Sequence[str] = COLUMNS) -> list:
    """Per row (in order): n, seeds and {column: {n, mean, sd, note}} over its seeds for each of
    `columns` past row and seed (`analysis.stats.mean_sd`: sample sd; None, with the reason in `note`,
    below 2 seeds)."""
    from sas_jax.analysis import stats  # noqa: PLC0415

    out = []
    for row in dict.fromkeys(r["row"] for r in results):
        mine = [r for r in results if r["row"] == row]
        figures = {}
        for k in columns[2:]:
            vals = [r[k] for r in mine if r.get(k) is not None]
            if vals:
                figures[k] = stats.mean_sd(vals)
        out.append({"row": row, "n": len(mine), "seeds": [r["seed"] for r in mine], **figures})
    return out


def family(row: str) -> str | None:
    """The objective family a row's name says (sas, electra, bert: `sasda_small` → sas,
    `deberta_small` → bert), or None."""
    name = row.lower()
    return next((f for f in FAMILIES if f in name), None)


def comparisons(rows: Sequence[str]) -> list:
    """(A, B) pairs the study tests: every SAS row against every ELECTRA row and every BERT row
    (by `family`), then, with the `random` row, every pre-trained row against it."""
    trained = [r for r in rows if r != RANDOM_ROW]
    pairs = [(a, b) for a in trained if family(a) == "sas" for other in ("electra", "bert")
             for b in trained if family(b) == other]
    return pairs + ([(r, RANDOM_ROW) for r in trained] if RANDOM_ROW in rows else [])


def paired_tests(results: list, keys: Sequence[str] = TEST_KEYS) -> list:
    """For each pair of `comparisons` and each figure of `keys` (default TEST_KEYS; a study's: each
    downstream task's column, then the MLM loss) both rows have: the seeds they share,
    their means there, a two-sided paired t-test and a paired bootstrap (`analysis.stats`) of A − B.
    Seeds pair the runs: one seed is one fine-tuning seed and data order for every row."""
    from sas_jax.analysis import stats  # noqa: PLC0415

    out = []
    for a, b in comparisons(list(dict.fromkeys(r["row"] for r in results))):
        for k in keys:
            va = {r["seed"]: r[k] for r in results if r["row"] == a and r.get(k) is not None}
            vb = {r["seed"]: r[k] for r in results if r["row"] == b and r.get(k) is not None}
            if not va or not vb:  # not a figure of both rows (the random row has no held-out ones)
                continue
            seeds = sorted(set(va) & set(vb))
            x, y = [va[s] for s in seeds], [vb[s] for s in seeds]
            t, boot = stats.paired_t_test(x, y), stats.paired_bootstrap(x, y)
            out.append({"a": a, "b": b, "figure": k, "lower_is_better": k in LOWER_IS_BETTER, "seeds": seeds,
                        "n": len(seeds), "mean_a": float(np.mean(x)) if x else None,
                        "mean_b": float(np.mean(y)) if y else None, "mean_diff": t["mean_diff"],
                        "t_test": t, "bootstrap": boot, "note": t["note"]})
    return out


def _cell(k: str, v) -> str:
    if v is None:
        return ""
    if k == "train_flops":
        return fmt_flops(v)
    if k in ("seed", "steps"):
        return str(int(v))
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _signed(v) -> str:
    return "" if v is None else f"{v:+.4f}"


def _test_cells(t: dict) -> list:
    """t (df), p, bootstrap interval cells of one `paired_tests` entry; n/a with the reason."""
    tt, boot = t["t_test"], t["bootstrap"]
    if tt["p"] is None:
        cells = [f"n/a ({tt['note']})", "n/a"]
    else:
        cells = [f"{tt['t']:.3g} ({tt['df']})", f"{tt['p']:.3g}"]
    cells.append("n/a" if boot["low"] is None else f"[{_signed(boot['low'])}, {_signed(boot['high'])}]")
    return cells


def table_row(result: dict, tasks: Sequence[str]) -> dict:
    """`result` with a column per downstream task (`score_key`; None where the run has no score of it;
    a result naming no task holds the first task's score); no downstream column without tasks."""
    scores, row = downstream_scores(result), dict(result)
    row[SCORE_KEY] = None
    for i, t in enumerate(tasks):
        got = scores.get(t) or (scores.get(None) if i == 0 else None)
        row[score_key(i, t)] = None if got is None else got["score"]
    return row


def write_table(results: list, out: str, *, budget: float, task) -> dict:
    """`<out>/study_table.{md,json,csv}`: the runs with a downstream column per task of `task` (a task's
    name, a list of them, or None), per row the mean ± sd over seeds (`summary`) and the paired tests
    between rows (`tests`: each task's score, then the MLM loss); returns the JSON object."""
    from sas_jax.analysis import stats  # noqa: PLC0415

    tasks = [] if task is None else [task] if isinstance(task, str) else list(task)
    keys = [score_key(i, t) for i, t in enumerate(tasks)] or [SCORE_KEY]
    columns = (*COLUMNS[:-1], *keys)
    results = [table_row(r, tasks) for r in results]
    summary, tests = summarize(results, columns), paired_tests(results, (*keys, "mlm_loss"))
    table = {"budget_flops": budget, "budget": fmt_flops(budget), "flops_convention": "paper (sas_jax.flops.train_flops)",
             "downstream_task": tasks[0] if tasks else None, "downstream_tasks": tasks, "columns": list(columns),
             "runs": [{k: r.get(k) for k in (*columns, "flops_per_step", "curve")} for r in results],
             "summary": summary, "tests": tests}
    files.write_json(os.path.join(out, TABLE + ".json"), table)
    with open(os.path.join(out, TABLE + ".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in results:
            w.writerow(["" if r.get(k) is None else r[k] for k in columns])
        if any(s["n"] > 1 for s in summary):
            for s in summary:
                for stat in ("mean", "sd"):
                    w.writerow([s["row"], stat] + ["" if k not in s or s[k][stat] is None else s[k][stat]
                                                   for k in columns[2:]])
    titles = dict(TITLES, **{k: f"{t} dev" for k, t in zip(keys, tasks)})
    lines = [(f"Training budget {fmt_flops(budget)} FLOPs each (paper convention). Held-out figures are the "
              "last evaluation (sas_jax/evaluation.py; ELECTRA's MLM figures are its generator's); losses in nats."),
             "",
             "| " + " | ".join(titles[k] for k in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(k, r.get(k)) for k in columns) + " |" for r in results]
    cols = [k for k in (*EVAL_KEYS, *keys) if any(k in s for s in summary)]
    lines += ["", "Per row, mean ± sd over seeds (sample sd; n/a: one seed, an sd needs 2):", "",
              "| row | n | " + " | ".join(titles[k] for k in cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for s in summary:
        cells = ["" if k not in s else _cell(k, s[k]["mean"]) + " ± " + ("n/a" if s[k]["sd"] is None
                                                                            else _cell(k, s[k]["sd"])) for k in cols]
        lines.append(f"| {s['row']} | {s['n']} | " + " | ".join(cells) + " |")
    lines += ["", (f"Paired tests over seeds, A − B (a seed pairs the runs: one fine-tuning seed and data order): a "
                   f"two-sided paired t-test and a paired bootstrap of the mean difference ({stats.BOOTSTRAP_RESAMPLES:,} "
                   f"resamples, seed {stats.BOOTSTRAP_SEED}, {stats.LEVEL:.0%} percentile interval). "
                   "Lower is better for the MLM loss, higher for the downstream score."), ""]
    if tests:
        lines += ["| A | B | figure | seeds | mean A | mean B | A − B | t (df) | p | bootstrap 95% interval |",
                  "|" + "---|" * 10]
        lines += [f"| {t['a']} | {t['b']} | {titles[t['figure']]} | {','.join(map(str, t['seeds'])) or '-'} | "
                  f"{_cell(t['figure'], t['mean_a'])} | {_cell(t['figure'], t['mean_b'])} | {_signed(t['mean_diff'])} | "
                  + " | ".join(_test_cells(t)) + " |" for t in tests]
    else:
        lines.append("No pair to test: the tests compare SAS rows with ELECTRA and BERT rows, and every pre-trained "
                     f"row with {RANDOM_ROW} (by the rows' names).")
    with open(os.path.join(out, TABLE + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return table


def plot_name(index: int, task: str) -> str:
    """The figure of the study's `index`-th downstream task: downstream.png, then downstream_<task>.png."""
    return "downstream.png" if index == 0 else f"downstream_{task}.png"


def write_plots(results: list, out: str, *, budget: float, entropy: float, ds) -> list:
    """held_out_mlm_vs_flops.png and a `plot_name` figure per task of `ds` (one Downstream, a list, None)."""
    from sas_jax.analysis import study_plots  # noqa: PLC0415

    curves: dict = {}
    for r in results:
        pts = [p for p in r["curve"] if p.get("mlm_loss") is not None]
        if not pts:  # the random row: no held-out curve
            continue
        curves.setdefault(r["row"], []).append(([p["train_flops"] for p in pts], [p["mlm_loss"] for p in pts]))
    paths = [study_plots.plot_held_out_vs_flops(curves, os.path.join(out, "held_out_mlm_vs_flops.png"),
                                                unigram_entropy=entropy, budget=budget)]
    tasks = _tasks(ds)
    for i, d in enumerate(tasks):
        scores: dict = {}
        for r in results:
            scores.setdefault(r["row"], []).append(table_row(r, [t.task for t in tasks])[score_key(i, d.task)])
        paths.append(study_plots.plot_downstream(scores, os.path.join(out, plot_name(i, d.task)),
                                                 metric=f"{d.task} dev score", chance=d.chance,
                                                 title=f"{d.task}: dev score at equal pre-training FLOPs"))
    return paths


# ----------------------------------------------------------------------------- the study
def finetune_changes(old: dict, new: dict, tasks: dict) -> dict:
    """{task name: what changed} between two study.json records in how the runs are fine-tuned on
    each of `tasks` ({--downstream entry: task name}): the task's recipe (the shared `--finetune.*`
    and its own) or its data. {} when a resume may keep every fine-tune (a task the old study did
    not have is not a change: it is added)."""
    had, want = recorded_tasks(old), recorded_tasks(new)
    out = {}
    for kind, name in tasks.items():
        if kind not in had:
            continue
        before, after = task_recipe(old.get(RECIPE_KEY, []), name), task_recipe(new.get(RECIPE_KEY, []), name)
        what = [f"--finetune {before!r} -> {after!r}"] if before != after else []
        what += [f"data {had[kind]!r} -> {want[kind]!r}"] if had[kind] != want.get(kind, had[kind]) else []
        if what:
            out[name] = ", ".join(what)
    return out


def retire_finetunes(out: str, settings: dict, tasks: Sequence[str]) -> int:
    """Before a study is fine-tuned again on `tasks` (task names; `--refinetune`: a new recipe or task
    data): in every run folder of `out` (also rows this command does not name), their fine-tune files
    move to `finetune/recipe_<n>/` (with `recipe.json` holding `settings`, the study.json fields they
    were made with: recipe and tasks) and `result.json` forgets their scores, so `run_one`
    fine-tunes them again from the kept pre-training (other tasks' fine-tunes stay). Safe to
    repeat after an interruption (study.json records the new settings only afterwards). Returns the
    number of runs whose fine-tunes moved."""
    moved = 0
    for run_dir in sorted(glob.glob(os.path.join(out, "*", "seed*"))):
        folder = os.path.join(run_dir, "finetune")
        done = [p for p in (os.path.join(folder, f"{t}.json") for t in tasks) if os.path.isfile(p)]
        if done:
            kept = sorted(glob.glob(os.path.join(folder, "recipe_*")))
            same = [d for d in kept if _read_json(os.path.join(d, "recipe.json")) == settings]
            dest = same[0] if same else os.path.join(folder, f"recipe_{len(kept)}")
            os.makedirs(dest, exist_ok=True)
            files.write_json(os.path.join(dest, "recipe.json"), settings)
            for path in done:
                os.replace(path, os.path.join(dest, os.path.basename(path)))
            moved += 1
        result = _read_json(os.path.join(run_dir, "result.json"))
        scores = downstream_scores(result) if result else {}
        if any(t in scores for t in tasks):
            result["downstream"] = {t: v for t, v in scores.items() if t not in tasks}
            if result.get("downstream_task") in tasks:
                result.update(downstream_task=None, downstream_metric=None, **{SCORE_KEY: None})
            files.write_json(os.path.join(run_dir, "result.json"), result)
    return moved


def run_study(rows: Sequence[str], *, variant: str, budget: float, out: str, seeds: Sequence[int] = (0,),
              overrides: Sequence[str] = (), downstream="auto", task: str = "sst2",
              downstream_text: str = DEFAULT_TEXT, downstream_size: tuple | None = None,
              finetune_overrides: Sequence[str] = (), eval_rows: int | None = None, evals: int = 8,
              dry_run: bool = False, refinetune: bool = False) -> dict:
    """The whole study (see the module docstring); returns the table's JSON object. `downstream`: the
    tasks, comma-separated (as `--downstream`) or a list; "none" for none."""
    if not rows:
        raise UserError("no rows given; pass --rows=bert_small,electra_small,sas_small")
    if not seeds:
        raise UserError("no seeds given; pass --seeds=0 (or 0,1,2)")
    problems: list = []
    runs, corpora, configs = plan(rows, variant, overrides, budget, seeds, out, eval_rows=eval_rows, evals=evals,
                                  problems=problems)
    kinds, wrong = parse_downstream(downstream)
    problems += wrong
    say(f"budget: {fmt_flops(budget)} training FLOPs per run (paper convention, sas_jax.flops.train_flops)")
    for r in {r.row: r for r in runs}.values():
        if r.shape_from is not None:
            say(f"  {r.row}: no pre-training; {r.shape_from.row}'s encoder shape and tokenizer, weights from the "
                "initialiser (seeded per seed), fine-tuned as the others")
            continue
        say(f"  {r.row}: {fmt_flops(r.flops_per_step)} FLOPs/step x {r.steps} steps = {fmt_flops(r.train_flops)}"
            f" (batch {r.config.batch_size} x seq {r.config.seq_len}; held-out eval every "
            f"{r.config.log.eval_every_steps} steps on {r.config.data.eval_rows} rows)")
    tiny = "tiny" in variant.split(",")
    sizes = tuple(downstream_size) if downstream_size else ((256, 128) if tiny else (4000, 1000))
    recipe_sizes = tuple(downstream_size) if downstream_size else ((256, 128) if tiny else None)  # None: all rows
    manifest = {
        "variant": variant, "flops": float(budget), "overrides": list(overrides),
        "finetune_overrides": list(finetune_overrides),
        **downstream_record({k: task_settings(k, task=task, sizes=sizes, recipe_sizes=recipe_sizes) for k in kinds}),
        "eval_rows": eval_rows, "evals": int(evals), "rows": [r.row for r in runs]}
    try:
        manifest = check_manifest(out, manifest, write=False, refinetune=refinetune)
    except UserError as e:
        problems.append(str(e))
    with tempfile.TemporaryDirectory(prefix="sas_jax_study_") as stage:
        problems += check_downstream(kinds, configs=configs, corpora=corpora, variant=variant, task=task,
                                     baseline=any(row_name(r) == RANDOM_ROW for r in rows), text=downstream_text,
                                     sizes=sizes, finetune_overrides=finetune_overrides, stage=stage)
        if problems:  # nothing trained, no study.json: the corrected command runs in the same --out
            raise StudyProblems(problems)
        if dry_run:
            say(f"dry run: {len(runs)} runs checked against their corpus and the downstream data "
                f"({', '.join(kinds) or 'none'}); nothing trained")
            return {"runs": [{"row": r.row, "seed": r.seed, "steps": r.steps, "train_flops": r.train_flops}
                             for r in runs]}
        os.makedirs(out, exist_ok=True)
        shared, own = split_recipe(finetune_overrides)
        ds = [setup_downstream(k, out=out, variant=variant, runs=runs, corpora=corpora, task=task,
                               text=downstream_text, sizes=sizes, finetune_overrides=shared,
                               recipe_sizes=recipe_sizes, staged=stage) for k in kinds]
        for d in (d for d in ds if d is not None):
            d.overrides = [*d.overrides, *own.get(d.task, [])]
    old = _read_json(os.path.join(out, "study.json"))
    changes = finetune_changes(old, manifest, {k: d.task for k, d in zip(kinds, ds) if d}) if old else {}
    if changes:  # allowed by --refinetune (check_manifest): these tasks are fine-tuned again
        moved = retire_finetunes(out, {k: old.get(k) for k in (RECIPE_KEY, *DOWNSTREAM_KEYS)}, list(changes))
        say(f"fine-tuning settings changed ({'; '.join(f'{t}: {c}' for t, c in changes.items())}): every run is "
            f"fine-tuned again on {', '.join(changes)} (pre-training kept; the earlier fine-tunes of {moved} runs "
            "are in <run>/finetune/recipe_<n>/)")
    # Recorded once the downstream tasks are set up: a study that failed before training takes the
    # corrected command in the same --out.
    files.write_json(os.path.join(out, "study.json"), manifest)
    entropy = {d: unigram_entropy(c) for d, c in corpora.items()}
    results, cache = [], {}
    for run in runs:
        d = run.config.data.corpus_dir
        results.append(run_one(run, corpora[d], entropy[d], ds, cache))
    table = write_table(results, out, budget=budget, task=[d.task for d in ds])
    table["plots"] = write_plots(results, out, budget=budget, entropy=next(iter(entropy.values())), ds=ds)
    with open(os.path.join(out, TABLE + ".md")) as f:
        say(f.read().rstrip())
    say(f"wrote {os.path.join(out, TABLE)}.{{md,json,csv}} and {', '.join(table['plots'])}")
    return table


# ----------------------------------------------------------------------------- CLI
def parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m sas_jax.study", description=__doc__.split("\n\n")[0],
                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter,
                allow_abbrev=False)
    p.add_argument("--rows", required=True, help="comma-separated configs (names in configs/ or paths), "
                   "e.g. bert_small,electra_small,sas_small; add random for the no-pre-training baseline")
    p.add_argument("--variant", default="demo", help="config variant for every row: demo (default), tiny, "
                   "or empty (--variant=) for the paper's shape")
    p.add_argument("--flops", required=True, type=float, help="training FLOPs per run, paper convention "
                   "(e.g. 1.27e18; 3.7e12 is ~600 demo steps)")
    p.add_argument("--out", required=True, help="output folder (re-run with the same one to resume)")
    p.add_argument("--seeds", default="0", help="comma-separated pre-training seeds (default 0)")
    p.add_argument("--downstream", default="auto", help="comma-separated tasks, each run fine-tuned on every "
                   "one: auto (word-order task from --downstream_text), wordnet_supersense (a real labelled task "
                   "built from the installed wordnet-base package), a task file (path/to/task.json, docs/tasks.md) "
                   "or a GLUE TSV folder; or none. Re-run with a task appended to add it to a study")
    p.add_argument("--task", default="sst2", help="GLUE task when --downstream is a GLUE folder (default sst2)")
    p.add_argument("--downstream_text", default=DEFAULT_TEXT, help="text files (comma-separated globs) of "
                   "the word-order task (default: the bundled data/demo/*.txt)")
    p.add_argument("--downstream_size", default="", help="TRAIN,DEV lines of the word-order task "
                   "(default 4000,1000; tiny: 256,128), or the rows sampled from a real task (default all; tiny: 256,128)")
    p.add_argument("--eval_rows", type=int, default=None, help="held-out rows (default: the config's "
                   "data.eval_rows, else 8 batches)")
    p.add_argument("--evals", type=int, default=8, help="held-out evaluations per run, besides step 0 "
                   "(default 8)")
    p.add_argument("--refinetune", action="store_true", help="allow --finetune.* overrides other than the "
                   "study's, and other --downstream_size for its tasks: every run is fine-tuned again, its "
                   "pre-training kept (the earlier fine-tunes move to <run>/finetune/recipe_<n>/)")
    p.add_argument("--dry_run", action="store_true", help="check every row against its corpus and the downstream "
                   "data, print the steps of every row and stop (nothing trained, no study.json)")
    return p


def split_overrides(extra: Sequence[str]) -> tuple:
    """(pre-training, fine-tuning) "a.b=v" lists from `--config.a.b=v` and `--finetune.a.b=v`
    (`--config.a.b v` too); anything else is an unknown argument (UserError)."""
    out = {"--config.": [], "--finetune.": []}
    rest = list(extra)
    while rest:
        item = rest.pop(0)
        prefix = next((p for p in out if item.startswith(p) and len(item) > len(p)), None)
        if prefix is None:
            raise UserError(f"unknown argument {item!r}; overrides look like --config.KEY=VALUE (pre-training) "
                            "or --finetune.KEY=VALUE (configs/glue.py)")
        item = item[len(prefix):]
        if "=" not in item:
            if not rest:
                raise UserError(f"{prefix}{item} needs a value: {prefix}{item}=<value>")
            item = f"{item}={rest.pop(0)}"
        out[prefix].append(item)
    return out["--config."], out["--finetune."]


def _ints(text: str, what: str) -> list:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what}={text!r} must be comma-separated integers") from None


@cli.entry_point(user_errors=(FloatingPointError,))  # bad input or a diverged run: one line, exit 2
def main(argv=None) -> int:
    try:
        a, extra = parser().parse_known_args(argv)
        pre, ft = split_overrides(extra)
        sizes = _ints(a.downstream_size, "--downstream_size") if a.downstream_size else None
        if sizes is not None and (len(sizes) != 2 or min(sizes) < 2):
            raise UserError(f"--downstream_size={a.downstream_size!r} must be TRAIN,DEV (each at least 2)")
        files.check_dir(a.out, "--out")  # below a file, unwritable: one line, nothing run
        import jax  # noqa: PLC0415 (after parsing, so --help is fast)
        from absl import logging  # noqa: PLC0415

        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
        jax.config.update("jax_threefry_partitionable", True)
        if not jax.config.jax_compilation_cache_dir:  # the seeds of a row compile the same steps
            jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.abspath(a.out), "jax_cache"))
        run_study([r for r in a.rows.split(",") if r.strip()], variant=a.variant.strip(), budget=a.flops,
                  out=a.out, seeds=_ints(a.seeds, "--seeds"), overrides=pre, downstream=a.downstream,
                  task=a.task, downstream_text=a.downstream_text, downstream_size=sizes, finetune_overrides=ft,
                  eval_rows=a.eval_rows, evals=a.evals, dry_run=a.dry_run, refinetune=a.refinetune)
    except StudyProblems as e:  # one `error:` line per problem (`cli.report`), exit 2
        for problem in e.problems:
            cli.report(problem)
        return cli.EXIT_USER_ERROR
    except Stopped as e:  # as `sas_jax.main` after a SIGTERM: saved, exit 0, re-run to resume
        say(f"stopped: {e}")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
