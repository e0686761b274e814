"""GLUE sweeps: all tasks × learning rates × batch sizes × seeds for one checkpoint,
score tables, and GLUE-vs-pre-training-steps curves.

    python -m sas_jax.glue sweep --checkpoint_dir=/ckpt/sas_small --glue_dir=/data/glue \
        --out=/ckpt/sas_small/glue
    python -m sas_jax.glue table --model SAS=/ckpt/sas_s1/glue,/ckpt/sas_s2/glue \
        --model ELECTRA=/ckpt/el_s1/glue --out=results/table1
    python -m sas_jax.glue curve --checkpoint_dir=/ckpt/sas_small --steps=all \
        --glue_dir=/data/glue --out=/ckpt/sas_small/glue_curve --label=SAS
    python -m sas_jax.glue predict --sweep_dir=/ckpt/sas_small/glue --glue_dir=/data/glue \
        --out=/ckpt/sas_small/glue_submission        # test-set files for the GLUE server (predict.py)
    python -m sas_jax.glue predict_file --model=/ckpt/sas_small/glue/models/sst2/best \
        --input=new.txt --output=preds.tsv           # label new texts (predict_file.py)

The task configs are `configs/glue.py:task=<task>` (`--config=` picks another file
or a variant, e.g. `--config=configs/glue.py:tiny`); any field is overridden as in
`python -m sas_jax.main`: `--config.opt.eps=1e-8 --config.num_epochs=3`.

Each fine-tuning run writes its result JSON atomically when it finishes; a sweep
re-run with the same --out skips those and runs the rest, so an interrupted sweep
resumes. The pre-trained encoder and each task's data are loaded once, and only
if some run is left. The selected run of each task keeps its weights in
`<out>/models/<task>/best/` (`--keep`, `kept_model.py`). A sweep records what it fine-tunes (`sweep.json`) and refuses
to mix results of another checkpoint into the same --out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import ml_collections

from sas_jax import checkpointing, cli, config_lib, files
from sas_jax.errors import UserError
from sas_jax.glue import data as data_lib
from sas_jax.glue import finetune as finetune_lib
from sas_jax.glue import kept_model
from sas_jax.glue import model as model_lib
from sas_jax.glue import plots, random_init, results
from sas_jax.glue.tasks import parse_tasks

DEFAULT_CONFIG = "glue"  # configs/glue.py; `task=<task>` is added to its variant per task
TABLE_NAME = "glue_table"


# ----------------------------------------------------------------------------- configs
def with_variant(spec: str, *items: str) -> str:
    """`spec` (`path.py[:variant]` or a name) with `items` appended to its variant."""
    target, _, arg = str(spec).partition(":")
    parts = [x for x in (arg, *items) if x]
    return f"{target}:{','.join(parts)}" if parts else target


def load_task_config(task: str, config: str = DEFAULT_CONFIG,
                     overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """The config of one task: `config` (default `configs/glue.py`, any variant) with
    `task=<task>` added, then `overrides` ("a.b=v") applied; one-line UserErrors."""
    return config_lib.load_config(with_variant(config, f"task={task}"), overrides)


def resolve_source(init_from: dict) -> dict:
    """What a sweep fine-tunes, made concrete (the latest step resolved), without loading it."""
    if random_init.is_random(init_from):  # the no-pre-training baseline: a shape, no weights
        return random_init.shape_source(init_from)
    if init_from.get("hf_folder"):
        if not os.path.isdir(init_from["hf_folder"]):
            raise UserError(f"HF folder {init_from['hf_folder']} not found")
        return {"hf_folder": os.path.abspath(init_from["hf_folder"])}
    if not init_from.get("checkpoint_dir"):
        raise UserError("nothing to fine-tune: pass --checkpoint_dir=<pre-training workdir> or --hf_folder")
    _, step = checkpointing.resolve_step(init_from["checkpoint_dir"], int(init_from.get("step", -1)))
    return {"checkpoint_dir": os.path.abspath(init_from["checkpoint_dir"]), "step": step}


def _check_manifest(out_dir: str, source: dict, tokenizer: str) -> None:
    path = os.path.join(out_dir, "sweep.json")
    manifest = {"source": source, "tokenizer": tokenizer or ""}
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
        if old.get("source") != source:
            raise UserError(f"{out_dir} holds results of {old.get('source')}, not {source}; "
                            "use another --out for this checkpoint")
        return
    files.write_json(path, manifest)


# ----------------------------------------------------------------------------- sweep
def plan(tasks, *, config: str = DEFAULT_CONFIG, overrides: Sequence[str] = (), learning_rates=None,
         batch_sizes=None, num_seeds=None) -> list:
    """[(config, learning_rate, batch_size, seed)] of every run, task by task."""
    out = []
    for task in parse_tasks(tasks):
        task_config = load_task_config(task, config, overrides)
        lrs = tuple(learning_rates or task_config.learning_rates)
        bss = tuple(batch_sizes or task_config.batch_sizes)
        seeds = range(int(num_seeds if num_seeds is not None else task_config.num_seeds))
        for lr in lrs:
            for bs in bss:
                for seed in seeds:
                    out.append((task_config, float(lr), int(bs), int(seed)))
    return out


def run_sweep(init_from: dict, out_dir: str, *, tasks="all", glue_dir: str = "", tfds_data_dir: str = "",
              config: str = DEFAULT_CONFIG, overrides: Sequence[str] = (),
              learning_rates=None, batch_sizes=None, num_seeds=None, name: str | None = None,
              pretrained=None, keep: str = "best", log=print) -> dict:
    """Runs every missing run of the grid into `out_dir`; writes and returns the table row.

    `init_from`: {"checkpoint_dir", "step"} or {"hf_folder"} (+ optional "tokenizer").
    `config`: the task config file and variant (default `configs/glue.py`); `overrides`:
    "a.b=v" strings, as `--config.a.b=v` on the command line. `pretrained` (a
    `model.Pretrained`) skips loading, e.g. a random-init baseline. `keep`: which
    fine-tuned weights to keep in `out_dir/models/` (`glue.kept_model`): "best" (the
    selected run of each task), "all" or "none".
    """
    kept_model.check_keep(keep)
    runs = plan(tasks, config=config, overrides=overrides,  # bad configs and task files fail before anything
                learning_rates=learning_rates, batch_sizes=batch_sizes, num_seeds=num_seeds)  # is written
    glue_tasks = any(not r[0].data.get("task_file") for r in runs) or not runs  # task files need no GLUE source
    if glue_tasks and bool(glue_dir) == bool(tfds_data_dir):
        raise UserError("give exactly one GLUE source: --glue_dir=<folder with CoLA/, SST-2/, ...> "
                        "or --tfds_data_dir=<tensorflow-datasets data_dir>")
    source = pretrained.source if pretrained is not None else resolve_source(init_from)
    loaded = {"pre": pretrained, "data": {}}
    # What the runs to do read (the checkpoint, every task's files) is read before --out is
    # written: a damaged checkpoint or a bad data row leaves no half-made sweep behind.
    pending = [r for r in runs if not _finished(results.run_file(out_dir, r[0].task, *r[1:]))]
    if pending and loaded["pre"] is None:
        loaded["pre"] = model_lib.load_pretrained({**source, "tokenizer": init_from.get("tokenizer", "")})
    for task_config in {r[0].task: r[0] for r in pending}.values():  # its note comes when the task runs
        data_lib.load_task(finetune_lib.task_of(task_config).name, glue_dir=glue_dir or None,
                           tfds_data_dir=tfds_data_dir or None, log=lambda *_: None,
                           skip_bad_rows=bool(task_config.data.get("skip_bad_rows", False)))
    os.makedirs(out_dir, exist_ok=True)
    _check_manifest(out_dir, source, init_from.get("tokenizer", ""))
    done = skipped = 0
    for task_config, lr, bs, seed in runs:
        path = results.run_file(out_dir, task_config.task, lr, bs, seed)
        if _finished(path):
            skipped += 1
            continue
        if loaded["pre"] is None:
            loaded["pre"] = model_lib.load_pretrained({**source, "tokenizer": init_from.get("tokenizer", "")})
        pre = loaded["pre"]
        run = ml_collections.ConfigDict(task_config.to_dict())
        run.init_from.update({k: v for k, v in source.items() if k in run.init_from})
        run.data.glue_dir, run.data.tfds_data_dir = glue_dir or "", tfds_data_dir or ""
        run.learning_rate, run.batch_size, run.seed = lr, bs, seed
        if run.task not in loaded["data"]:
            loaded["data"] = {run.task: finetune_lib.load_data(run, pre.tokenizer)}  # one task held
        tuned = finetune_lib.finetune(run, pretrained=pre, data=loaded["data"][run.task], result_path=path,
                                      log=log)
        kept_model.offer(out_dir, tuned, pre.tokenizer, keep=keep, log=log)
        done += 1
    log(f"sweep {out_dir}: {done} runs done now, {skipped} already finished")
    row = results.sweep_row(name or _default_name(source), out_dir)
    results.write_table([row], os.path.join(out_dir, TABLE_NAME))
    return row


def _finished(path: str) -> bool:
    try:
        with open(path) as f:
            return json.load(f).get("status") == "done"
    except (OSError, json.JSONDecodeError):
        return False


def _default_name(source: dict) -> str:
    if source.get("init") == "random":
        shape = {k: v for k, v in source.items() if k != "init"}
        return f"random init ({source['model_config'] if 'model_config' in shape else _default_name(shape)})"
    if "checkpoint_dir" in source:
        return f"{os.path.basename(source['checkpoint_dir'].rstrip('/'))}@{source['step']}"
    if "hf_folder" in source:
        return os.path.basename(source["hf_folder"].rstrip("/"))
    return str(source.get("kind", "model"))


# ----------------------------------------------------------------------------- curve
def curve_point(step: int, row: dict) -> dict:
    scores = [t["mean"] for t in row["tasks"].values()]
    mnli = row["tasks"].get("mnli")
    return {"step": int(step), "glue": row["glue"]["mean"],
            "mean_score": sum(scores) / len(scores) if scores else None,
            "tasks": {t: v["mean"] for t, v in row["tasks"].items()},
            "mnli_m": mnli["details"].get("accuracy_matched") if mnli else None}


def run_curve(checkpoint_dir: str, out_dir: str, *, steps=None, label: str | None = None,
              also: dict | None = None, log=print, **sweep_kwargs) -> dict:
    """A sweep per pre-training checkpoint step (into `out_dir/step_<k>`), then
    `curve.json`/`.csv` and `glue_vs_steps.png` (with `also` = {label: other curve dir} overlaid)."""
    available = checkpointing.checkpoint_steps(checkpoint_dir)
    if not os.path.isdir(checkpoint_dir) or not available:
        checkpointing.resolve_step(checkpoint_dir, -1)  # raises the one-line error
    if steps in (None, "all", "") or steps == ["all"]:
        steps = available
    elif isinstance(steps, str):
        steps = [int(s) for s in steps.split(",") if s.strip()]
    absent = [s for s in steps if s not in available]
    if absent:
        raise UserError(f"{checkpoint_dir} has no checkpoint of step {absent[0]}; it has "
                        f"{', '.join(map(str, available))} (keep more with --config.ckpt.keep when pre-training)")
    label = label or os.path.basename(os.path.abspath(checkpoint_dir))
    tokenizer = sweep_kwargs.pop("tokenizer", "")
    baseline = random_init.is_random({"init": sweep_kwargs.pop("init", "pretrained")})
    sweep_kwargs.setdefault("keep", "none")  # a curve is for scores: no weights per step unless asked
    points = []
    if baseline:  # step 0 = no pre-training: the checkpoint's shape and tokenizer, initialiser weights
        row = run_sweep({"init": "random", "checkpoint_dir": checkpoint_dir, "step": min(steps), "tokenizer": tokenizer},
                        os.path.join(out_dir, "random_init"), name=f"{label}@0 (random init)", log=log, **sweep_kwargs)
        points.append(curve_point(0, row))
    for step in steps:
        row = run_sweep({"checkpoint_dir": checkpoint_dir, "step": step, "tokenizer": tokenizer},
                        os.path.join(out_dir, f"step_{step}"), name=f"{label}@{step}", log=log, **sweep_kwargs)
        points.append(curve_point(step, row))
    curve = {"label": label, "checkpoint_dir": os.path.abspath(checkpoint_dir), "points": points}
    files.write_json(os.path.join(out_dir, "curve.json"), curve)
    with open(os.path.join(out_dir, "curve.csv"), "w") as f:
        f.write("step,glue,mean_score,mnli_m\n")
        for p in points:
            f.write(",".join("" if p[k] is None else f"{p[k]:.6g}" for k in ("step", "glue", "mean_score", "mnli_m"))
                    + "\n")
    curves = {label: points}
    for other_label, other_dir in (also or {}).items():
        curves[other_label] = load_curve(other_dir)["points"]
    curve["png"] = plots.plot_glue_vs_steps(curves, os.path.join(out_dir, "glue_vs_steps.png"))
    return curve


def load_curve(curve_dir: str) -> dict:
    path = os.path.join(curve_dir, "curve.json")
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; run `python -m sas_jax.glue curve --out={curve_dir}` first")
    with open(path) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- table
def build_table(models: dict, out_prefix: str) -> list:
    """{name: [sweep dir, ...]} → one row per name (mean ± std over its pre-training runs)."""
    rows = []
    for name, dirs in models.items():
        missing = [d for d in dirs if not os.path.isdir(os.path.join(d, "runs"))]
        if missing:
            raise UserError(f"{missing[0]} is not a sweep directory (no runs/); pass the --out of "
                            "`python -m sas_jax.glue sweep`")
        per_run = [results.sweep_row(name, d) for d in dirs]
        rows.append(per_run[0] if len(per_run) == 1 else results.aggregate_rows(name, per_run))
    results.write_table(rows, out_prefix)
    plots.plot_task_scores(rows, out_prefix + ".png")
    return rows


# ----------------------------------------------------------------------------- CLI
def _key_values(items, what: str) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{what} {item!r} must look like NAME=VALUE")
        out[key.strip()] = value
    return out


def _floats(s):
    return [float(x) for x in s.split(",") if x.strip()] if s else None


def _ints(s):
    return [int(x) for x in s.split(",") if x.strip()] if s else None


def _add_sweep_args(p):
    p.add_argument("--checkpoint_dir", default="", help="pre-training --workdir")
    p.add_argument("--hf_folder", default="", help="or a Hugging Face model folder")
    p.add_argument("--tokenizer", default="", help="tokenizer override (.model or vocab.txt)")
    p.add_argument("--out", required=True, help="output folder (re-run with the same one to resume)")
    p.add_argument("--glue_dir", default="", help="GLUE TSV folder (CoLA/, SST-2/, ...)")
    p.add_argument("--tfds_data_dir", default="", help="or a tensorflow-datasets data_dir with glue/*")
    p.add_argument("--skip_bad_rows", action="store_true",
                   help="leave out (with a count) GLUE TSV rows of train/dev with too few columns, a label "
                        "outside the task's or an empty text, instead of refusing them (config "
                        "data.skip_bad_rows; the official QQP train.tsv needs it)")
    p.add_argument("--tasks", default="all", help="comma-separated GLUE tasks and/or task files, e.g. cola,rte or "
                   "data/mydata/task.json (docs/tasks.md; default all 8 GLUE tasks)")
    p.add_argument("--init", default="pretrained", choices=random_init.INIT_CHOICES,
                   help="random: the no-pre-training baseline, the encoder shape and tokenizer of --checkpoint_dir "
                        "(or --hf_folder, or --model_config) with initialiser weights seeded per fine-tuning seed; "
                        "in curve, it adds that baseline as step 0")
    p.add_argument("--model_config", default="", help="with --init=random: the shape of configs/<name>.py[:variant] "
                   "(with --tokenizer) instead of a checkpoint's")
    p.add_argument("--size", default="small", choices=("small", "base"), help="learning-rate grid of Table 6")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help="task config file[:variant] (default configs/glue.py; task=<task> is added), "
                        "e.g. --config=configs/glue.py:tiny")
    p.add_argument("--learning_rates", default="", help="override the grid, e.g. 1e-4,7.5e-5")
    p.add_argument("--batch_sizes", default="", help="e.g. 16,32 (default: the config's, 32)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per grid point (default: Table 6's)")


def _sweep_kwargs(a, overrides) -> dict:
    config = with_variant(a.config, "base") if a.size == "base" else a.config
    return dict(tasks=a.tasks, glue_dir=a.glue_dir, tfds_data_dir=a.tfds_data_dir, config=config,
                overrides=overrides, learning_rates=_floats(a.learning_rates), batch_sizes=_ints(a.batch_sizes),
                num_seeds=a.seeds)


def config_overrides(extra: Sequence[str]) -> list:
    """The "a.b=v" of every `--config.a.b=v` (or `--config.a.b v`) argument; anything
    else left over is an unknown argument (UserError)."""
    out, rest = [], list(extra)
    while rest:
        item = rest.pop(0)
        if item.startswith("--config.") and len(item) > len("--config."):
            item = item[len("--config."):]
            if "=" not in item:
                if not rest:
                    raise UserError(f"--config.{item} needs a value: --config.{item}=<value>")
                item = f"{item}={rest.pop(0)}"
            out.append(item)
        else:
            raise UserError(f"unknown argument {item!r}; config overrides look like --config.KEY=VALUE, "
                            "e.g. --config.num_epochs=3")
    return out


def parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m sas_jax.glue", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sweep", help="fine-tune one checkpoint on the GLUE grid and write its table")
    _add_sweep_args(s)
    s.add_argument("--step", type=int, default=-1, help="checkpoint step (-1 = latest)")
    s.add_argument("--name", default="", help="row name in the table")
    s.add_argument("--keep", default="best", choices=kept_model.KEEP_CHOICES,
                   help="fine-tuned weights kept in <out>/models/<task>/: best (default: the selected run "
                        "of each task, in best/), all (also every run), none")
    c = sub.add_parser("curve", help="sweep several checkpoint steps; plot GLUE and MNLI vs steps")
    _add_sweep_args(c)
    c.add_argument("--steps", default="all", help="comma-separated steps, or all")
    c.add_argument("--label", default="", help="line label (default: the workdir name)")
    c.add_argument("--also", action="append", default=[], metavar="LABEL=CURVE_DIR",
                   help="overlay another model's curve")
    t = sub.add_parser("table", help="aggregate sweeps into the paper's Table 1 (mean ± std)")
    t.add_argument("--model", action="append", required=True, metavar="NAME=DIR[,DIR...]",
                   help="a model and its sweep dirs (one per pre-training run)")
    t.add_argument("--out", required=True, help="output prefix: writes .md, .json, .csv and .png")
    r = sub.add_parser("predict", help="test-set predictions of each task's best run, as the GLUE server "
                                       "wants them (CoLA.tsv, ..., submission.zip)")
    r.add_argument("--sweep_dir", required=True, help="the --out of a sweep")
    r.add_argument("--out", required=True, help="output folder (re-run with the same one to resume)")
    r.add_argument("--glue_dir", default="", help="GLUE TSV folder with the test files")
    r.add_argument("--tfds_data_dir", default="", help="or a tensorflow-datasets data_dir with glue/*")
    r.add_argument("--tasks", default="all", help="comma-separated (default: every task of the sweep)")
    f = sub.add_parser("predict_file", help="label a file of new texts with a kept fine-tuned model "
                                            "(<sweep --out>/models/<task>/best)")
    f.add_argument("--model", required=True, help="a kept model folder: <sweep --out>/models/<task>/best")
    f.add_argument("--input", required=True, help="one text per line, or a .tsv/.csv/.jsonl with a header")
    f.add_argument("--output", required=True, help="predictions: .tsv, .csv or .jsonl (row, prediction, p_<class>)")
    f.add_argument("--text_column", default="", help="the text's column of a table (default: the task's, "
                                                     "or text/sentence/sentence1/question/...)")
    f.add_argument("--text_b_column", default="", help="the second text's column, for a model of text pairs")
    f.add_argument("--format", default="auto", choices=("auto", "text", "tsv", "csv", "jsonl"),
                   help="input format (default: by extension; other extensions: text)")
    f.add_argument("--batch_size", type=int, default=0, help="rows per batch (default: the run's eval_batch_size)")
    return p


@cli.entry_point  # bad arguments, configs, paths, checkpoints: one line `error: ...`, exit 2
def main(argv=None) -> int:
    a, extra = parser().parse_known_args(argv)
    import jax  # noqa: PLC0415 (after parsing, so --help is fast)

    jax.config.update("jax_threefry_partitionable", True)
    overrides = config_overrides(extra)
    if getattr(a, "skip_bad_rows", False):
        overrides.append("data.skip_bad_rows=true")
    if overrides and a.command in ("table", "predict", "predict_file"):
        raise UserError(f"{a.command} takes no --config.* overrides (it uses the configs of the sweep's runs)")
    if a.command in ("sweep", "curve", "predict"):  # below a file, unwritable: one line, nothing run
        files.check_dir(a.out, "--out")
    if a.command == "sweep":
        init_from = {"checkpoint_dir": a.checkpoint_dir, "step": a.step, "hf_folder": a.hf_folder,
                     "tokenizer": a.tokenizer, "init": a.init, "model_config": a.model_config}
        row = run_sweep(init_from, a.out, name=a.name or None, keep=a.keep, **_sweep_kwargs(a, overrides))
        print(results.markdown([row]))
    elif a.command == "curve":
        if not a.checkpoint_dir:
            raise UserError("curve needs --checkpoint_dir=<pre-training workdir>")
        curve = run_curve(a.checkpoint_dir, a.out, steps=a.steps, label=a.label or None,
                          also=_key_values(a.also, "--also"), tokenizer=a.tokenizer, init=a.init,
                          **_sweep_kwargs(a, overrides))
        print(f"wrote {curve['png']}")
    elif a.command == "predict":
        from sas_jax.glue import predict as predict_lib  # noqa: PLC0415

        predict_lib.predict(a.sweep_dir, a.out, glue_dir=a.glue_dir, tfds_data_dir=a.tfds_data_dir, tasks=a.tasks)
    elif a.command == "predict_file":
        from sas_jax.glue import predict_file as predict_file_lib  # noqa: PLC0415

        predict_file_lib.predict_file(a.model, a.input, a.output, fmt=a.format, text_column=a.text_column,
                                      text_b_column=a.text_b_column, batch_size=a.batch_size or None)
    else:
        models = {k: [d for d in v.split(",") if d] for k, v in _key_values(a.model, "--model").items()}
        rows = build_table(models, a.out)
        print(results.markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
