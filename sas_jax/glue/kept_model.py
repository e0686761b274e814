"""Fine-tuned classifiers kept on disk: written by `glue sweep` (`--keep`), read by
`glue predict`, `glue predict_file` and `convert export --model`.

A sweep keeps, per task, the weights of its selected run (`selection_key`: the best dev
score; ties → the lowest seed, then learning rate, then batch size) in

    <sweep --out>/models/<task>/best/
        model.json       what the folder holds (below)
        params.npz       every parameter of `GlueModel`, float32, keyed by its path
                         ("embeddings/word_embeddings/embedding", ..., "classifier/out_proj/kernel")
        tokenizer.model  (or vocab.txt) a copy of the encoder's tokenizer

`model.json`: `format` ("sas_jax.glue.kept_model/1"); `task` (name, title, labels in id
order ([] = regression), regression, num_labels, pair, selection metric, the text column
names of a task file); `model` (the
`ModelConfig` fields) and `head_dropout`; `tokenizer` (file, kind, lowercase,
fingerprint); `max_seq_length` and `eval_batch_size` of the run; `run` (its id, learning
rate, batch size, seed, best epoch, dev score and dev metrics); `init_from` (the
pre-trained encoder); `config` (the run's whole config).

`--keep=best` (the default) costs one model per task: a finished run replaces `best/`
only when it beats the run kept there, so `best/` always holds the best run finished so
far. `--keep=all` also keeps every run in `models/<task>/<run id>/`; `--keep=none` keeps
nothing (as before: `glue predict` then fine-tunes the selected run again). Each folder
is written whole (`files.atomic_dir`): a killed sweep leaves the previous one. Only runs
finished by a sweep that keeps are offered: runs a resumed sweep skips (finished earlier
with `--keep=none`, or by an older version) are not kept afterwards, and `glue predict`
fine-tunes such a selected run again (`find` matches the kept run's id).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import jax
import numpy as np
from flax import traverse_util

from sas_jax import files
from sas_jax.errors import UserError
from sas_jax.glue import data as data_lib
from sas_jax.glue import results

FORMAT = "sas_jax.glue.kept_model/1"
MODELS = "models"
BEST = "best"
META, PARAMS = "model.json", "params.npz"
KEEP_CHOICES = ("best", "all", "none")
TOKENIZER_FILE = {"sentencepiece": "tokenizer.model", "wordpiece": "vocab.txt"}


# ----------------------------------------------------------------------------- selection
def selection_key(run: dict) -> tuple:
    """The order that picks a task's run (`max` wins): the dev score; ties → the lowest
    seed, then the lowest learning rate, then the lowest batch size."""
    return (float(run["score"]), -int(run["seed"]), -float(run["learning_rate"]), -int(run["batch_size"]))


def run_name(run: dict) -> str:
    """`lr<lr>_bs<bs>_seed<seed>`: the run's file name in `runs/<task>/`, without `.json`."""
    path = results.run_file("", run["task"], run["learning_rate"], run["batch_size"], run["seed"])
    return os.path.basename(path)[:-len(".json")]


def best_dir(sweep_dir: str, task: str) -> str:
    return os.path.join(sweep_dir, MODELS, task, BEST)


def run_dir(sweep_dir: str, task: str, name: str) -> str:
    return os.path.join(sweep_dir, MODELS, task, name)


def check_keep(keep: str) -> str:
    if keep not in KEEP_CHOICES:
        raise UserError(f"--keep={keep}; use one of {', '.join(KEEP_CHOICES)}")
    return keep


# ----------------------------------------------------------------------------- writing
def _flat(params) -> dict:
    return {k: np.asarray(x, np.float32) for k, x in traverse_util.flatten_dict(params, sep="/").items()}


def _nested(flat) -> dict:
    return traverse_util.unflatten_dict(dict(flat), sep="/")


def is_pair(spec) -> bool:
    """Does the task read two texts (text_a, text_b)?"""
    return getattr(spec, "tsv_b", None) is not None or (tuple(getattr(spec, "tfds_keys", ())) + (None, None))[1] is not None


def _task_record(spec) -> dict:
    pair = is_pair(spec)
    return {"name": spec.name, "title": getattr(spec, "title", spec.name), "labels": list(spec.labels),
            "regression": bool(spec.is_regression), "num_labels": int(spec.num_labels), "pair": bool(pair),
            "selection": getattr(spec, "selection", ""),
            # text column names of a task's files (a task file's), the default columns of predict_file
            "columns": [c for c in (getattr(spec, "tsv_a", None), getattr(spec, "tsv_b", None))
                        if isinstance(c, str)]}


def save(folder: str, finetuned, tokenizer) -> str:
    """Writes `finetuned` (a `finetune.Finetuned`) as a kept model in `folder`, whole."""
    result, spec, model = finetuned.result, finetuned.spec, finetuned.runner.model
    config = result.get("config") or {}
    tok_file = TOKENIZER_FILE.get(tokenizer.kind)
    if tok_file is None:
        raise UserError(f"tokenizer kind {tokenizer.kind!r} cannot be kept with the model")
    meta = {
        "format": FORMAT,
        "task": _task_record(spec),
        "model": dataclasses.asdict(model.cfg),
        "head_dropout": float(model.head_dropout_rate),
        "tokenizer": {"file": tok_file, "kind": tokenizer.kind, "fingerprint": tokenizer.fingerprint,
                      "lowercase": bool(getattr(tokenizer, "lowercase", False))},
        "max_seq_length": int((config.get("data") or {}).get("max_seq_length", 128)),
        "eval_batch_size": int(config.get("eval_batch_size", 128)),
        "run": {"id": run_name(result), **{k: result.get(k) for k in (
            "learning_rate", "batch_size", "seed", "best_epoch", "score", "selection_metric", "dev")}},
        "init_from": result.get("init_from"),
        "config": config,
    }
    with files.atomic_dir(folder) as tmp:
        np.savez(os.path.join(tmp, PARAMS), **_flat(finetuned.params))
        shutil.copyfile(tokenizer.path, os.path.join(tmp, tok_file))
        files.write_json(os.path.join(tmp, META), meta)
    return folder


def read_meta(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, META)) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return meta if meta.get("format") == FORMAT else None


def offer(sweep_dir: str, finetuned, tokenizer, *, keep: str = "best", log=print) -> list:
    """Keeps a finished run per `keep`; returns the folders written. `best/` is replaced
    only when this run beats the one kept there (`selection_key`)."""
    check_keep(keep)
    if keep == "none":
        return []
    result = finetuned.result
    task, name = result["task"], run_name(result)
    written = []
    if keep == "all":
        written.append(save(run_dir(sweep_dir, task, name), finetuned, tokenizer))
    folder = best_dir(sweep_dir, task)
    files.recover_dir(folder)
    kept = read_meta(folder)
    if kept is None or selection_key({**kept["run"], "task": task}) < selection_key(result):
        if written:  # the same files: copy the run's folder instead of writing it twice
            with files.atomic_dir(folder) as tmp:
                shutil.copytree(written[0], tmp, dirs_exist_ok=True)
            written.append(folder)
        else:
            written.append(save(folder, finetuned, tokenizer))
        log(f"{result.get('title', task)}: kept {name} (dev {result['score']:.4f}) in {folder}")
    return written


def find(sweep_dir: str, task: str, name: str) -> str | None:
    """The kept folder of run `name` of `task` in a sweep (its `best/`, or its own folder
    with --keep=all), or None when the sweep did not keep it."""
    for folder in (best_dir(sweep_dir, task), run_dir(sweep_dir, task, name)):
        files.recover_dir(folder)
        meta = read_meta(folder)
        if meta is not None and meta["run"].get("id") == name and os.path.isfile(os.path.join(folder, PARAMS)):
            return folder
    return None


# ----------------------------------------------------------------------------- reading
@dataclasses.dataclass
class KeptModel:
    """A kept classifier, loaded: its shape, params, tokenizer and task."""

    folder: str
    meta: dict
    cfg: object  # ModelConfig
    params: dict
    tokenizer: object

    @property
    def task(self) -> dict:
        return self.meta["task"]

    @property
    def labels(self) -> tuple:
        return tuple(self.task["labels"])

    @property
    def is_regression(self) -> bool:
        return bool(self.task["regression"])

    @property
    def num_labels(self) -> int:
        return int(self.task["num_labels"])

    @property
    def max_seq_length(self) -> int:
        return int(self.meta["max_seq_length"])

    def encode(self, text_a, text_b=None) -> data_lib.EncodedSplit:
        """`[CLS] a [SEP] (b [SEP])` rows, as the run was trained and evaluated on."""
        n = len(text_a)
        split = data_lib.GlueSplit(self.task["name"], "predict", list(text_a),
                                   None if text_b is None else list(text_b),
                                   np.full(n, -1, np.float32 if self.is_regression else np.int32),
                                   np.arange(n, dtype=np.int64))
        return data_lib.encode_split(split, self.tokenizer, self.max_seq_length)


def load(folder: str) -> KeptModel:
    """The kept model in `folder`; one-line UserError when it is not one."""
    from sas_jax.data.tokenizer import load_tokenizer  # noqa: PLC0415
    from sas_jax.models.config import ModelConfig  # noqa: PLC0415

    if not os.path.isdir(folder):
        raise UserError(f"model folder {folder} not found; pass --model=<sweep --out>/models/<task>/best")
    meta = read_meta(folder)
    if meta is None:
        raise UserError(f"{folder} is not a kept fine-tuned model (no readable {META} of format {FORMAT}); pass "
                        "--model=<sweep --out>/models/<task>/best, written by `glue sweep` (--keep=best)")
    tok_path = os.path.join(folder, meta["tokenizer"]["file"])
    params_path = os.path.join(folder, PARAMS)
    for path in (tok_path, params_path):
        if not os.path.isfile(path):
            raise UserError(f"{folder} has no {os.path.basename(path)}; the kept model is incomplete "
                            "(run the sweep again with the same --out)")
    with np.load(params_path) as z:
        params = _nested({k: z[k] for k in z.files})
    tok = load_tokenizer(tok_path, lowercase=bool(meta["tokenizer"].get("lowercase", True)))
    return KeptModel(os.path.abspath(folder), meta, ModelConfig(**meta["model"]), params, tok)


# ----------------------------------------------------------------------------- predicting
class Predictor:
    """Jitted logits of a kept model over this host's devices (data parallel, as the
    sweep's dev evaluation: the same batch size, model and shardings)."""

    def __init__(self, kept: KeptModel, batch_size: int | None = None):
        import jax.numpy as jnp  # noqa: PLC0415
        import ml_collections  # noqa: PLC0415

        from sas_jax import sharding  # noqa: PLC0415
        from sas_jax.glue.model import GlueModel  # noqa: PLC0415

        self.kept = kept
        self.mesh = sharding.make_mesh(ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1}),
                                       jax.local_devices())
        rules = sharding.logical_rules(ml_collections.ConfigDict({"rules": "data_parallel"}))
        shards = sharding.num_batch_shards(self.mesh)
        size = int(batch_size or kept.meta.get("eval_batch_size", 128))
        self.batch_size = -(-size // shards) * shards
        model = GlueModel(kept.cfg, kept.num_labels, float(kept.meta.get("head_dropout", 0.1)))
        batch_sharding = sharding.batch_sharding(self.mesh, 2)
        replicated = sharding.replicated(self.mesh)

        def logits(params, ids, mask, types):
            with sharding.activation_rules(self.mesh, rules):
                return model.apply({"params": params}, ids, mask, types, deterministic=True).astype(jnp.float32)

        self._logits = jax.jit(logits, in_shardings=(replicated, batch_sharding, batch_sharding, batch_sharding),
                               out_shardings=sharding.batch_sharding(self.mesh, 2))
        self.params = jax.device_put(kept.params, replicated)

    def logits(self, data: data_lib.EncodedSplit) -> np.ndarray:
        """[N, num_labels] float32 logits (regression: [N, 1], the score)."""
        out = []
        for batch, real in data_lib.batches(data, self.batch_size):
            y = self._logits(self.params, batch["input_ids"], batch["input_mask"], batch["token_type_ids"])
            out.append(np.asarray(jax.device_get(y))[:real])
        return np.concatenate(out) if out else np.zeros((0, self.kept.num_labels), np.float32)

    def predict(self, data: data_lib.EncodedSplit) -> np.ndarray:
        """Class ids (int64), or scores (float32) for regression, as `finetune.Runner.predict`."""
        logits = self.logits(data)
        return logits[:, 0] if self.kept.is_regression else np.argmax(logits, -1).astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)
