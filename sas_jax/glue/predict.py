"""GLUE test-set predictions in the form the GLUE server (gluebenchmark.com) takes.

    python -m sas_jax.glue predict --sweep_dir=/ckpt/sas_small/glue --glue_dir=/data/glue \
        --out=/ckpt/sas_small/glue_submission

For each task of the sweep, the run that predicts is the sweep's selected run: the
best dev score of the task's runs (ties: the lowest seed, then learning rate, then batch
size; `kept_model.selection_key`), the run whose weights the sweep keeps in
`models/<task>/best/` (`glue sweep --keep=best`, the default). Those kept weights
predict the test split(s): nothing is fine-tuned again. A sweep without them (run
with `--keep=none`, or written before weights were kept) falls back to fine-tuning
that run again from its recorded config: the same encoder (`sweep.json`), data,
config and seed give the same model — the data order, head init and dropout keys
all derive from the seed. On CPU this is bit-exact; on GPUs a few reductions may be
nondeterministic, so the re-fine-tuned dev score is compared with the sweep's, and a
difference is reported (and kept in `predict.json`), never hidden. Each task's line
of output and its `predict.json` entry (`weights`: kept or refinetuned) say which.

Written into --out, in test-file row order with the test file's `index` column
(header `index<TAB>prediction`): CoLA.tsv, SST-2.tsv, MRPC.tsv, QQP.tsv (0/1),
STS-B.tsv (score clipped to [0, 5], 3 decimals), MNLI-m.tsv, MNLI-mm.tsv and AX.tsv
(entailment/neutral/contradiction; AX = the diagnostic set, predicted by the MNLI
model), QNLI.tsv, RTE.tsv (entailment/not_entailment), WNLI.tsv (the majority class
0 for every row, the usual placeholder: WNLI is not fine-tuned, as in the paper),
and submission.zip holding them all (flat). Tasks absent from the sweep, and WNLI/AX
when their test files are absent, are skipped with a note.

A task given by files (a task.json, docs/tasks.md) with a `test` file gets `<name>.tsv`
(`index<TAB>prediction`: the test file's data-row number from 0, the class name or the
number), beside the GLUE files and not in submission.zip; one without a test file is
skipped with a note. A sweep of task files only needs no --glue_dir.

A re-run with the same --out skips every task whose files were written for the same
best run (`predict.json` records each task when its files are complete), so an
interrupted predict resumes where it stopped.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import zipfile

import jax
import ml_collections
import numpy as np

from sas_jax import files
from sas_jax.errors import UserError
from sas_jax.glue import data as data_lib
from sas_jax.glue import finetune as finetune_lib
from sas_jax.glue import kept_model
from sas_jax.glue import model as model_lib
from sas_jax.glue import results, user_task
from sas_jax.glue.tasks import SPECS, TASKS, get_task, parse_tasks

# Our split → the GLUE server's file name.
FILES = {
    "cola": {"test": "CoLA.tsv"}, "sst2": {"test": "SST-2.tsv"}, "mrpc": {"test": "MRPC.tsv"},
    "stsb": {"test": "STS-B.tsv"}, "qqp": {"test": "QQP.tsv"},
    "mnli": {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
    "qnli": {"test": "QNLI.tsv"}, "rte": {"test": "RTE.tsv"},
}
AX_FILE, WNLI_FILE, ZIP_NAME, STATE_NAME = "AX.tsv", "WNLI.tsv", "submission.zip", "predict.json"
ORDER = [f for t in TASKS for f in FILES[t].values()] + [WNLI_FILE, AX_FILE]  # zip member order
# Where the diagnostic set (AX) may be in a GLUE folder: the download script's, then other layouts.
AX_PATHS = ("diagnostic/diagnostic.tsv", "diagnostic/AX.tsv", "AX/test.tsv", "AX.tsv")
WNLI_PATH = "WNLI/test.tsv"
STSB_RANGE = (0.0, 5.0)


# ----------------------------------------------------------------------------- choosing the run
def best_run(runs: list) -> dict | None:
    """The run that predicts for one task: the best dev score (`kept_model.selection_key`:
    ties → the lowest seed, learning rate, batch size), the one a sweep keeps."""
    return max(runs, key=kept_model.selection_key) if runs else None


def run_id(run: dict) -> str:
    return os.path.basename(results.run_file("", run["task"], run["learning_rate"], run["batch_size"],
                                             run["seed"]))[:-len(".json")]


# ----------------------------------------------------------------------------- writing
def format_prediction(spec, value) -> str:
    """The GLUE server's label: a class name (0/1 for CoLA, SST-2, MRPC, QQP) or an STS-B score;
    a task file's: its class name, or its number (not clipped)."""
    if spec.is_regression:
        return f"{float(np.clip(float(value), *STSB_RANGE)):.3f}" if spec.name == "stsb" else f"{float(value):.4f}"
    return spec.labels[int(value)]


def files_of(spec) -> dict:
    """{test split: file name}: the GLUE server's names, or `<name>.tsv` for a task given by files
    (written beside them, never into the server's submission.zip)."""
    return FILES.get(spec.name) or {"test": f"{spec.name}.tsv"}


def _file_tasks(runs: list) -> tuple:
    """The tasks given by files in a sweep, read again (and registered) from their recorded task.json."""
    out = []
    for r in runs:
        task_file = (r.get("config", {}).get("data", {}) or {}).get("task_file")
        if task_file and r["task"] not in out:
            get_task(task_file)
            out.append(r["task"])
    return tuple(out)


def write_tsv(path: str, idx, labels) -> None:
    """`index<TAB>prediction` rows, atomically (a killed run leaves no half file)."""
    with files.atomic_open(path, "w", newline="") as f:
        f.write("index\tprediction\n")
        for i, label in zip(idx, labels):
            f.write(f"{int(i)}\t{label}\n")


def write_zip(out_dir: str, names: list) -> str:
    path = os.path.join(out_dir, ZIP_NAME)
    with files.atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            z.write(os.path.join(out_dir, name), arcname=name)  # flat: the server wants no folder
    return path


# ----------------------------------------------------------------------------- reading
def _read_unlabelled_tsv(path: str, name: str) -> data_lib.GlueSplit:
    """AX / WNLI test files: `index`, `sentence1`, `sentence2` columns (+ others)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows.pop(0) if rows else []
    cols = [c for c in ("index", "sentence1", "sentence2") if c not in header]
    if cols:
        raise UserError(f"{path} has no column {cols[0]!r} (header: {header}); is it the GLUE {name} test file?")
    ci, ca, cb = (header.index(c) for c in ("index", "sentence1", "sentence2"))
    rows = [r for r in rows if len(r) > max(ci, ca, cb)]
    if not rows:
        raise UserError(f"{path} has no usable rows; re-download the GLUE data")
    return data_lib.GlueSplit("mnli", name, [r[ca] for r in rows], [r[cb] for r in rows],
                              np.full(len(rows), -1, np.int32), np.asarray([int(r[ci]) for r in rows], np.int64))


def _extra_split(name: str, glue_dir: str, tfds_data_dir: str):
    """(GlueSplit, where) of AX or WNLI test rows, or (None, why not)."""
    if glue_dir:
        paths = AX_PATHS if name == "AX" else (WNLI_PATH,)
        for rel in paths:
            path = os.path.join(glue_dir, rel)
            if os.path.isfile(path):
                return _read_unlabelled_tsv(path, name), path
        return None, f"no {' or '.join(paths)} in {glue_dir}"
    spec = (dataclasses.replace(SPECS["mnli"], tfds_name="glue/ax") if name == "AX"
            else dataclasses.replace(SPECS["rte"], tfds_name="glue/wnli"))
    try:
        return data_lib.read_tfds_split(spec, tfds_data_dir, "test"), f"{spec.tfds_name} in {tfds_data_dir}"
    except (UserError, OSError) as e:
        return None, " ".join(str(e).split())


def _check_test_files(tasks, glue_dir: str) -> None:
    """A task of the sweep whose test split is missing: one line naming the file, before any work."""
    for t in tasks:
        spec = SPECS[t]
        for split in spec.test_splits:
            path = data_lib.tsv_path(spec, glue_dir, split)
            if not os.path.isfile(path):
                raise UserError(f"GLUE test file {path} not found: the sweep has {spec.title} runs, so "
                                f"predict needs {spec.folder}/{split}.tsv in --glue_dir (the standard GLUE "
                                f"download has it; or leave {t} out with --tasks)")


def _load_state(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return {}


def _load_pretrained(sweep_dir: str, manifest: dict):
    source = manifest.get("source", {})
    if not (source.get("checkpoint_dir") or source.get("hf_folder") or source.get("model_config")):
        raise UserError(f"{sweep_dir} fine-tuned {source or 'an unknown encoder'}, which predict cannot "
                        "load again; call sas_jax.glue.predict.predict(..., pretrained=<the same encoder>)")
    return model_lib.load_pretrained({**source, "tokenizer": manifest.get("tokenizer", "")})


# ----------------------------------------------------------------------------- predict
def predict(sweep_dir: str, out_dir: str, *, glue_dir: str = "", tfds_data_dir: str = "", tasks="all",
            pretrained=None, log=print) -> dict:
    """Writes the GLUE server's files for the best run of every task in `sweep_dir`.

    Returns {"files": [...], "zip": path, "notes": [...], "tasks": {task: entry}}.
    `pretrained` (a `model.Pretrained`) stands in for the sweep's encoder (e.g. a
    random-init baseline, which `sweep.json` cannot name)."""
    manifest_path = os.path.join(sweep_dir, "sweep.json")
    if not os.path.isfile(manifest_path):
        raise UserError(f"{sweep_dir} is not a sweep directory (no sweep.json); pass the --out of "
                        "`python -m sas_jax.glue sweep`")
    with open(manifest_path) as f:
        manifest = json.load(f)
    runs = results.load_runs(sweep_dir)
    file_tasks = _file_tasks(runs)  # registered first, so --tasks can name them
    wanted = parse_tasks(tasks) + (file_tasks if str(tasks).strip().lower() in ("all", "") else ())
    best = {t: b for t in wanted if (b := best_run([r for r in runs if r["task"] == t])) is not None}
    if not best:
        raise UserError(f"{sweep_dir} has no finished runs of {', '.join(get_task(t).title for t in wanted)}; "
                        "run `python -m sas_jax.glue sweep` first")
    glue = any(t in SPECS for t in best)  # a sweep of task files only needs no GLUE data
    if glue and bool(glue_dir) == bool(tfds_data_dir):
        raise UserError("give exactly one GLUE source: --glue_dir=<folder with CoLA/, SST-2/, ...> "
                        "or --tfds_data_dir=<tensorflow-datasets data_dir>")
    notes = []
    not_run = [get_task(t).title for t in wanted if t not in best and (glue or t not in SPECS)]
    if not_run:
        notes.append(f"not in the sweep, skipped: {', '.join(not_run)}")
    no_test = [t for t in best if t not in SPECS and "test" not in user_task.load(get_task(t).file).splits]
    for t in no_test:
        notes.append(f"{get_task(t).title}: its task.json names no test file, skipped")
        del best[t]
    if glue_dir:
        _check_test_files([t for t in best if t in SPECS], glue_dir)
    os.makedirs(out_dir, exist_ok=True)
    state_path = os.path.join(out_dir, STATE_NAME)
    state = _load_state(state_path)
    if state.get("sweep", {}).get("source") not in (None, manifest.get("source")):
        raise UserError(f"{out_dir} holds predictions of another sweep ({state['sweep'].get('source')}); "
                        "use another --out")
    state["sweep"] = {"dir": os.path.abspath(sweep_dir), "source": manifest.get("source")}
    entries = state.setdefault("tasks", {})
    ax, ax_where = _extra_split("AX", glue_dir, tfds_data_dir) if "mnli" in best else (None, "no MNLI run")
    loaded = {"pre": pretrained}

    for t, run in best.items():
        spec = get_task(t)
        outputs = list(files_of(spec).values()) + ([AX_FILE] if t == "mnli" and ax is not None else [])
        ident = {"run": run_id(run), "sweep_score": run["score"], "files": outputs}
        old = entries.get(t, {})
        if {k: old.get(k) for k in ident} == ident and all(os.path.isfile(os.path.join(out_dir, f)) for f in outputs):
            log(f"{spec.title}: {', '.join(outputs)} already written for {ident['run']}; skipped")
            continue
        config = ml_collections.ConfigDict(run["config"])
        config.data.glue_dir, config.data.tfds_data_dir = glue_dir or "", tfds_data_dir or ""
        folder = kept_model.find(sweep_dir, t, ident["run"])
        if folder is not None:  # the sweep kept this run's weights: predict with them
            kept = kept_model.load(folder)
            tokenizer, result = kept.tokenizer, None
            tests = finetune_lib.load_data(config, tokenizer, splits=spec.test_splits)
            log(f"{spec.title}: predicting with the kept weights of {ident['run']} in {folder} "
                f"(dev {run['score']:.4f}; not fine-tuned again)")
            predictor = kept_model.Predictor(kept, int(config.eval_batch_size))
            predict_split = predictor.predict
        else:  # an old sweep, or --keep=none: fine-tune the run again
            if loaded["pre"] is None:
                loaded["pre"] = _load_pretrained(sweep_dir, manifest)
            tokenizer = loaded["pre"].tokenizer
            tests = finetune_lib.load_data(config, tokenizer, splits=spec.test_splits)  # fails before training
            log(f"{spec.title}: no kept weights of {ident['run']} in {sweep_dir}; fine-tuning it again "
                f"(the sweep's best, dev {run['score']:.4f})")
            tuned = finetune_lib.finetune(config, pretrained=loaded["pre"], log=log)
            result, ebs = tuned.result, int(config.eval_batch_size)
            params = jax.device_put(tuned.params, tuned.runner.replicated)
            predict_split = lambda enc, tuned=tuned, params=params, ebs=ebs: tuned.runner.predict(params, enc, ebs)  # noqa: E731
        if t == "mnli" and ax is not None:
            tests["ax"] = data_lib.encode_split(ax, tokenizer, int(config.data.max_seq_length))
        for split, enc in tests.items():
            name = AX_FILE if split == "ax" else files_of(spec)[split]
            preds = predict_split(enc)
            write_tsv(os.path.join(out_dir, name), enc.idx, [format_prediction(spec, p) for p in preds])
        entry = {**ident, "learning_rate": run["learning_rate"], "batch_size": run["batch_size"],
                 "seed": run["seed"], "rows": {files_of(spec).get(s, AX_FILE): len(e) for s, e in tests.items()}}
        if result is None:
            entry.update(weights="kept", model=folder)
        else:
            entry.update(weights="refinetuned", refinetuned_score=result["score"])
        if result is not None and abs(result["score"] - run["score"]) > 1e-6:
            entry["note"] = (f"{spec.title}: the re-fine-tuned dev score {result['score']:.4f} differs from the "
                             f"sweep's {run['score']:.4f} (nondeterministic ops on this backend); its "
                             "predictions are the re-fine-tuned model's")
            log(entry["note"])
        entries[t] = entry
        files.write_json(state_path, state)  # this task is finished: a re-run skips it

    for t in list(entries):
        if t not in best:  # no longer in the selection: its files are not part of this submission
            del entries[t]
    if "mnli" in best and ax is None:
        notes.append(f"AX (diagnostic) skipped: {ax_where}")
    wnli, wnli_where = _extra_split("WNLI", glue_dir, tfds_data_dir) if glue else (None, "no GLUE task")
    if wnli is not None:
        write_tsv(os.path.join(out_dir, WNLI_FILE), wnli.idx, ["0"] * len(wnli))
        entries["wnli"] = {"files": [WNLI_FILE], "rows": {WNLI_FILE: len(wnli)}, "note": "majority class 0"}
    else:
        entries.pop("wnli", None)
        if glue:
            notes.append(f"WNLI skipped: {wnli_where}")
    notes += [e["note"] for t, e in entries.items() if t != "wnli" and "note" in e]
    state["notes"] = notes
    files.write_json(state_path, state)
    written = {f for e in entries.values() for f in e["files"]}
    names = [f for f in ORDER if f in written]
    zip_path = write_zip(out_dir, names) if names or glue else None
    for note in notes:
        log(f"note: {note}")
    if zip_path:
        log(f"wrote {len(names)} files and {zip_path}")
    others = sorted(written - set(names))
    if others:  # tasks given by files: `index<TAB>prediction` per test row, not for the GLUE server
        log(f"wrote {', '.join(others)} (test rows of task files, index = row number)")
    return {"files": names + others, "zip": zip_path, "notes": notes, "tasks": entries}
