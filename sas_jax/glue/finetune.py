"""One GLUE fine-tuning run: `finetune(config, ...) -> Finetuned` (the result dict, the
best epoch's params and the task spec it trained on).

The recipe is the reference's: AdamW with linear warm-up (int(0.1 · total) steps)
and linear decay to 0, gradient clip 1.0, dropout 0.1 — the pre-training optimizer
`sas_jax.optim.make_optimizer` with the task's settings; the dev set
is evaluated after every epoch and the best epoch's weights (by the task's
selection metric) are evaluated again at the end, so the reported dev score is
the best epoch's. MNLI is also evaluated on mismatched dev with those weights.

The step is pure and jitted once per (model shape, task head, batch shape, optimizer
settings and schedule): every seed of a grid point reuses the compiled step. Batches
are split over the host's devices (data parallel, `sas_jax.sharding`); parameters
are replicated.
"""
from __future__ import annotations

import dataclasses
import functools
import time

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sas_jax import files, optim, sharding, startup
from sas_jax.errors import UserError
from sas_jax.glue import data as data_lib
from sas_jax.glue import metrics as metrics_lib
from sas_jax.glue import model as model_lib
from sas_jax.glue.recipe import derive_steps
from sas_jax.glue.tasks import task_of

BATCH_KEYS = ("input_ids", "input_mask", "token_type_ids", "labels", "weights")


@flax.struct.dataclass
class FinetuneState:
    step: jax.Array
    params: dict
    opt_state: object


# ----------------------------------------------------------------------------- step
def optimizer_config(config, steps: dict) -> ml_collections.ConfigDict:
    """`config.opt` with this run's peak learning rate and warm-up: the settings
    `optim.make_optimizer` takes (with `steps["num_train_steps"]`)."""
    opt = ml_collections.ConfigDict(config.opt.to_dict() if hasattr(config.opt, "to_dict") else dict(config.opt))
    opt.learning_rate = float(config.learning_rate)
    opt.warmup_steps = int(steps["warmup_steps"])
    return opt


def loss_and_counts(logits_BxC, labels_B, weights_B, regression: bool):
    """Weighted mean loss (CE, or MSE on one output) and the sums behind the metrics."""
    w = weights_B.astype(jnp.float32)
    if regression:
        per = jnp.square(logits_BxC[:, 0] - labels_B.astype(jnp.float32))
        correct = jnp.zeros_like(w)
    else:
        per = optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B)
        correct = (jnp.argmax(logits_BxC, -1) == labels_B).astype(jnp.float32)
    loss = (per * w).sum() / jnp.maximum(w.sum(), 1.0)
    return loss, {"loss_sum": (per * w).sum(), "correct": (correct * w).sum(), "count": w.sum()}


def train_step(state, batch, rng, *, model, tx, regression: bool):
    dropout_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
        logits = model.apply({"params": params}, batch["input_ids"], batch["input_mask"],
                             batch["token_type_ids"], deterministic=False, rngs={"dropout": dropout_rng})
        return loss_and_counts(logits, batch["labels"], batch["weights"], regression)

    (_, counts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), counts


def predict_step(params, batch, *, model, regression: bool):
    logits = model.apply({"params": params}, batch["input_ids"], batch["input_mask"],
                         batch["token_type_ids"], deterministic=True)
    return logits[:, 0] if regression else jnp.argmax(logits, -1).astype(jnp.float32)


class Runner:
    """The compiled train and predict steps of one (model, head, optimizer, devices)."""

    def __init__(self, cfg, num_labels: int, regression: bool, opt_cfg, num_train_steps: int,
                 head_dropout: float, devices):
        self.mesh = sharding.make_mesh(ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1}),
                                       devices)
        self.rules = sharding.logical_rules(ml_collections.ConfigDict({"rules": "data_parallel"}))
        self.model = model_lib.GlueModel(cfg, num_labels, head_dropout)
        self.tx = optim.make_optimizer(opt_cfg, num_train_steps)
        self.regression = regression
        self.replicated = sharding.replicated(self.mesh)
        self.batch_sharding = sharding.batch_sharding(self.mesh, 2)
        self.row_sharding = sharding.batch_sharding(self.mesh, 1)
        self.num_shards = sharding.num_batch_shards(self.mesh)

        def traced_train(state, batch, rng):
            with sharding.activation_rules(self.mesh, self.rules):
                return train_step(state, batch, rng, model=self.model, tx=self.tx, regression=regression)

        def traced_predict(params, batch):
            with sharding.activation_rules(self.mesh, self.rules):
                return predict_step(params, batch, model=self.model, regression=regression)

        def init(rng):
            ids = jnp.zeros((1, 8), jnp.int32)
            variables = self.model.init({"params": rng, "dropout": rng}, ids, jnp.ones_like(ids), ids)
            return nn.meta.unbox(variables["params"])

        self.init_params = jax.jit(init, out_shardings=self.replicated)
        self.init_opt_state = jax.jit(self.tx.init, out_shardings=self.replicated)
        shard_batch = self._batch_shardings()
        self.train = jax.jit(traced_train, in_shardings=(self.replicated, shard_batch, self.replicated),
                             out_shardings=(self.replicated, self.replicated), donate_argnums=(0,))
        self.predict_batch = jax.jit(traced_predict, in_shardings=(self.replicated, shard_batch),
                                     out_shardings=self.row_sharding)

    def _batch_shardings(self):
        return {k: (self.row_sharding if k in ("labels", "weights") else self.batch_sharding)
                for k in BATCH_KEYS}

    def put_batch(self, batch: dict):
        return jax.device_put(batch, self._batch_shardings())

    def init_state(self, params) -> FinetuneState:
        params = jax.device_put(params, self.replicated)
        opt_state = self.init_opt_state(params)
        return FinetuneState(step=jax.device_put(jnp.zeros((), jnp.int32), self.replicated),
                             params=params, opt_state=opt_state)

    def predict(self, params, data: data_lib.EncodedSplit, batch_size: int) -> np.ndarray:
        """Predictions for every row: class ids (int) or regression values (float)."""
        out = []
        for batch, real in data_lib.batches(data, batch_size):
            out.append(np.asarray(jax.device_get(self.predict_batch(params, self.put_batch(batch))))[:real])
        preds = np.concatenate(out) if out else np.zeros((0,), np.float32)
        return preds if self.regression else preds.astype(np.int64)


@functools.lru_cache(maxsize=16)
def _runner(cfg, num_labels, regression, opt_items, num_train_steps, head_dropout, device_ids) -> Runner:
    devices = [d for d in jax.devices() if d.id in device_ids]
    return Runner(cfg, num_labels, regression, ml_collections.ConfigDict(dict(opt_items)), num_train_steps,
                  head_dropout, devices)


def get_runner(cfg, spec, config, steps: dict) -> Runner:
    """The cached Runner of this model shape, task head, optimizer, schedule and device count."""
    devices = jax.local_devices()
    n = int(config.num_devices)
    if n > 0:
        if n > len(devices):
            raise UserError(f"num_devices={n} but this host has {len(devices)} devices")
        devices = devices[:n]
    opt_items = tuple(sorted(optimizer_config(config, steps).items()))
    return _runner(cfg, spec.num_labels, spec.is_regression, opt_items, int(steps["num_train_steps"]),
                   float(config.dropout_rate), tuple(d.id for d in devices))


# ----------------------------------------------------------------------------- evaluation
def evaluate(runner: Runner, params, data: data_lib.EncodedSplit, task: str, batch_size: int) -> tuple:
    """(metrics of `task` on `data`, predictions)."""
    preds = runner.predict(params, data, batch_size)
    return metrics_lib.task_metrics(task, preds, data.labels), preds


def _encode(data: dict, split: str, tokenizer, max_seq_length: int) -> data_lib.EncodedSplit:
    d = data[split]
    if isinstance(d, data_lib.EncodedSplit):
        if d.input_ids.shape[1] != max_seq_length:
            raise UserError(f"{split} was encoded to length {d.input_ids.shape[1]}, the config says "
                            f"data.max_seq_length={max_seq_length}")
        return d
    return data_lib.encode_split(d, tokenizer, max_seq_length)


def load_data(config, tokenizer, splits=None) -> dict:
    """{split: EncodedSplit} of `config.task` from the config's source (a task file: its own files)."""
    raw = data_lib.load_task(task_of(config).name, glue_dir=config.data.glue_dir or None,
                             tfds_data_dir=config.data.tfds_data_dir or None, splits=splits,
                             skip_bad_rows=bool(config.data.get("skip_bad_rows", False)))
    return {k: data_lib.encode_split(v, tokenizer, int(config.data.max_seq_length)) for k, v in raw.items()}


# ----------------------------------------------------------------------------- run
@dataclasses.dataclass
class Finetuned:
    """What one fine-tuning run gives back: its `result` (the dict written as the run's
    JSON), the best epoch's `params` (host numpy), the `runner` that can predict other
    splits with them, and the task `spec` it trained on (labels, regression)."""

    result: dict
    params: dict
    runner: Runner
    spec: object


def finetune(config, *, pretrained: model_lib.Pretrained | None = None, data: dict | None = None,
             result_path: str | None = None, log=print) -> Finetuned:
    """Fine-tunes per `config` (a `configs/glue.py:task=<task>` ConfigDict).

    `pretrained` (default: `model.load_pretrained(config.init_from)`) and `data`
    ({split: GlueSplit or EncodedSplit}; default: loaded from `config.data`) let a
    sweep load both once. With `result_path` the result JSON is written there
    atomically at the end. The returned `Finetuned` holds the best epoch's params,
    so a caller can keep them (`glue.kept_model`) or predict other splits (`glue.predict`).
    """
    t0 = time.time()
    spec = task_of(config)  # a task file's spec is found again from data.task_file
    pre = pretrained if pretrained is not None else model_lib.load_pretrained(config.init_from)
    length = int(config.data.max_seq_length)
    if length > pre.cfg.max_position_embeddings:
        raise UserError(f"data.max_seq_length={length} exceeds the model's {pre.cfg.max_position_embeddings} "
                        "positions; lower it")
    if data is None:
        data = load_data(config, pre.tokenizer)
    absent = [s for s in ("train", *spec.dev_splits) if s not in data]
    if absent:
        raise UserError(f"{spec.title}: no {absent[0]} split given; load it with glue.data.load_task")
    train = _encode(data, "train", pre.tokenizer, length)
    devs = {s: _encode(data, s, pre.tokenizer, length) for s in spec.dev_splits}
    if not train.labels.size or (not spec.is_regression and train.labels.min() < 0):
        raise UserError(f"{spec.title} train split has no labels; fine-tune on a labelled split")

    cfg = dataclasses.replace(pre.cfg, dropout_rate=float(config.dropout_rate),
                              attention_dropout_rate=float(config.attention_dropout_rate))
    steps = derive_steps(config, len(train))
    startup.unroll_cpu_threefry()  # same dropout masks, a faster CPU step (startup's doc)
    runner = get_runner(cfg, spec, config, steps)
    bs, ebs = int(config.batch_size), int(config.eval_batch_size)
    for name, b in (("batch_size", bs), ("eval_batch_size", ebs)):
        if b % runner.num_shards:
            raise UserError(f"{name}={b} is not divisible by the {runner.num_shards} devices; use a "
                            f"multiple of {runner.num_shards} or set num_devices")
    if spec.is_glue and len(train) != int(config.data.train_size):  # only GLUE has a size to compare with
        log(f"{spec.title}: {len(train)} train rows (GLUE has {config.data.train_size}); "
            f"steps derive from {len(train)}")

    seed = int(config.seed)
    rng = jax.random.key(seed)
    fresh = jax.device_get(runner.init_params(jax.random.fold_in(rng, 0)))
    params, missing, unexpected = model_lib.merge_pretrained(fresh, pre.params)
    state = runner.init_state(params)
    dropout_key = jax.device_put(jax.random.fold_in(rng, 1), runner.replicated)
    tag = f"{spec.title} lr={float(config.learning_rate):g} bs={bs} seed={seed}"

    epochs, best, best_params = [], None, None
    step = 0
    for epoch in range(int(config.num_epochs)):
        te = time.time()
        order = np.random.default_rng([seed, epoch]).permutation(len(train))
        sums = []
        for batch, _ in data_lib.batches(train, bs, order=order):
            state, counts = runner.train(state, runner.put_batch(batch), dropout_key)
            if sums:  # at most two steps in flight: see HeldOut.evaluate on unbounded queues
                jax.block_until_ready(sums[-1])
            sums.append(counts)
            step += 1
            if config.log_every_steps and step % int(config.log_every_steps) == 0:
                c = jax.device_get(counts)
                log(f"{tag} step {step}/{steps['num_train_steps']}: loss "
                    f"{float(c['loss_sum']) / max(float(c['count']), 1):.4f}")
        totals = jax.tree.map(lambda *x: float(np.sum(x)), *jax.device_get(sums))
        n = max(totals["count"], 1.0)
        dev_metrics, _ = evaluate(runner, state.params, devs[spec.main_dev], spec.name, ebs)
        record = {"epoch": epoch + 1, "step": step, "train_loss": totals["loss_sum"] / n,
                  "dev": dev_metrics, "seconds": time.time() - te}
        if not spec.is_regression:
            record["train_accuracy"] = totals["correct"] / n
        epochs.append(record)
        if best is None or dev_metrics["selection"] > best["dev"]["selection"]:
            best = record
            best_params = jax.device_get(state.params)  # host copy: the state is donated next step
        log(f"{tag} epoch {epoch + 1}/{config.num_epochs}: train loss {record['train_loss']:.4f}"
            + (f" acc {record['train_accuracy']:.3f}" if "train_accuracy" in record else "")
            + f" | dev {spec.selection} {dev_metrics['selection']:.4f} (best {best['dev']['selection']:.4f}"
            f" @{best['epoch']}) | {record['seconds']:.1f}s")

    # The reference reloads the best epoch and evaluates it again.
    params = jax.device_put(best_params, runner.replicated)
    final = {s: evaluate(runner, params, devs[s], spec.name, ebs)[0] for s in spec.dev_splits}
    if spec.name == "mnli":
        dev = {**metrics_lib.combine_mnli(final["dev_matched"], final["dev_mismatched"]),
               "matched": final["dev_matched"], "mismatched": final["dev_mismatched"]}
    else:
        dev = final["dev"]
    result = {
        "status": "done", "task": spec.name, "title": spec.title,
        "learning_rate": float(config.learning_rate), "batch_size": bs, "seed": seed,
        "num_epochs": int(config.num_epochs), **steps,
        "best_epoch": best["epoch"], "selection_metric": spec.selection,
        "score": dev["score"], "dev": dev, "epochs": epochs,
        "init_from": pre.source, "dropped_params": list(pre.dropped),
        "missing_params": missing, "unexpected_params": unexpected,
        "config": config.to_dict() if hasattr(config, "to_dict") else dict(config),
        "seconds": time.time() - t0, "devices": runner.num_shards,
    }
    log(f"{tag}: best epoch {best['epoch']}, dev score {dev['score']:.4f}")
    if result_path:
        files.write_json(result_path, result)
    return Finetuned(result, best_params, runner, spec)
