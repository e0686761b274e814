"""Pre-training of every objective (SAS, BERT, ELECTRA, ...): `train_and_evaluate(config, workdir)`.

The objective (`config.objective`) picks the model and the batch builder through
`sas_jax/objectives.py`; the loop below is the same for every row.

Resume order: the latest checkpoint in `workdir/checkpoints`, else from scratch.
Re-running the same command after a stop (or SIGTERM / SIGKILL) continues from
the last checkpoint with the same data order, store and random streams, so the
losses match an uninterrupted run.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import threading

import jax
import numpy as np

from sas_jax import checkpointing, distributed, flops, objectives, optim, sharding, train_state, train_step
from sas_jax.data import pipeline
from sas_jax.errors import UserError
from sas_jax.metrics_log import MetricWriter


# ----------------------------------------------------------------------------- inputs
def open_corpus(config, workdir: str):
    """The prepared corpus named by `data.corpus_dir`, preparing the demo if asked."""
    from sas_jax.data.corpus import Corpus  # noqa: PLC0415 (keeps tests free of sentencepiece)

    corpus_dir = config.data.corpus_dir
    if not corpus_dir:
        raise UserError("data.corpus_dir is empty; prepare a corpus with `python -m sas_jax.prepare` "
                        "and pass --config.data.corpus_dir=<dir>")
    if not os.path.isabs(corpus_dir):
        corpus_dir = os.path.join(workdir, corpus_dir)
    prep = config.data.prepare
    if prep.tokenizer and not os.path.exists(prep.tokenizer):
        raise UserError(f"data.prepare.tokenizer={prep.tokenizer!r} does not exist; give the path of a "
                        "SentencePiece .model or a WordPiece vocab.txt")
    if prep.text_files and not os.path.exists(os.path.join(corpus_dir, "meta.json")):
        from sas_jax.data.prepare import prepare_corpus  # noqa: PLC0415

        files = sorted(f for pat in prep.text_files.split(",") for f in glob.glob(pat.strip()))
        if not files:
            raise UserError(f"data.prepare.text_files={prep.text_files!r} matches no file; "
                            "run from the repository root or give absolute paths")
        prepare_corpus(files, corpus_dir, seq_len=config.seq_len, tokenizer_path=prep.tokenizer or None,
                       train_vocab_size=prep.vocab_size, max_rows=prep.max_rows or None)
    # A tokenizer named in the config must be the one the corpus was prepared with.
    return Corpus.open(corpus_dir, tokenizer=prep.tokenizer or None)


def validate(config, corpus, num_devices: int, batch_shards: int) -> None:
    if config.seq_len > config.model.max_position_embeddings:
        raise UserError(f"seq_len={config.seq_len} exceeds model.max_position_embeddings="
                        f"{config.model.max_position_embeddings}; lower seq_len or raise the table size")
    if corpus.seq_len != config.seq_len:
        raise UserError(f"seq_len={config.seq_len} but the corpus was prepared with "
                        f"{corpus.seq_len}; set --config.seq_len={corpus.seq_len} or re-prepare")
    if config.batch_size % batch_shards:
        raise UserError(f"batch_size={config.batch_size} is not divisible by the {batch_shards} "
                        f"batch shards of {num_devices} devices; use a multiple of {batch_shards}")
    need = int(np.round(config.sas.mask_rate * config.seq_len))
    if config.sas.max_predictions < need:
        raise UserError(f"sas.max_predictions={config.sas.max_predictions} < round(mask_rate*seq_len)="
                        f"{need}; raise sas.max_predictions")
    objectives.validate(config)
    vocab = config.model.vocab_size
    if vocab != -1 and vocab < corpus.vocab_size:
        raise UserError(f"model.vocab_size={vocab} is smaller than the tokenizer's "
                        f"{corpus.vocab_size}; set it to -1 (take the tokenizer's) or larger")


STOP_SYNC_STEPS = 10  # multi-process: how often the processes agree on a SIGTERM


def say(message: str) -> None:
    """Console output from process 0 only."""
    if jax.process_index() == 0:
        print(message, flush=True)


def local_rows(arr) -> np.ndarray:
    """This process's rows of a batch-sharded global array, without an all-gather."""
    shards = {}
    for s in arr.addressable_shards:
        shards.setdefault(s.index[0].start or 0, s.data)
    return np.concatenate([np.asarray(shards[k]) for k in sorted(shards)], axis=0)


class _StopFlag:
    """Set by SIGTERM (preemption): the loop saves a checkpoint and exits cleanly."""

    def __init__(self):
        self.event = threading.Event()
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, lambda *_: self.event.set())
        else:
            self._previous = None

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def build_inputs(config, corpus, vocab: int):
    """(ExampleOrder, SampleStore, batch builder) for this process; the builder (and whether the
    store holds anything) follows `config.objective.corruption` (`objectives.make_batch_builder`)."""
    order = pipeline.ExampleOrder(corpus.num_rows, config.batch_size, seed=config.seed,
                                  shuffle=config.data.shuffle, process_index=jax.process_index(),
                                  process_count=jax.process_count())
    store, builder = objectives.make_batch_builder(config, corpus, vocab, order.example_ids,
                                                   process_index=jax.process_index())
    return order, store, builder


# ----------------------------------------------------------------------------- train
def train_and_evaluate(config, workdir: str, corpus=None) -> dict:
    """Pre-trains per `config` in `workdir`; returns the last logged metrics.

    `corpus` may be given directly (tests, benchmarks); otherwise it is opened
    (or, for the demo, prepared) from `config.data.corpus_dir`.
    """
    os.makedirs(workdir, exist_ok=True)
    corpus = corpus if corpus is not None else open_corpus(config, workdir)
    mesh = sharding.make_mesh(config.mesh)
    rules = sharding.logical_rules(config.mesh)
    validate(config, corpus, mesh.size, sharding.num_batch_shards(mesh))
    vocab = corpus.vocab_size if config.model.vocab_size == -1 else config.model.vocab_size
    model = objectives.make_model(config, vocab)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump({**config.to_dict(), "resolved": {"vocab_size": vocab}}, f, indent=2)

    # --- data order, store, batch builder --------------------------------------------
    order, store, builder = build_inputs(config, corpus, vocab)
    total = int(config.num_train_steps)
    settings = train_step.StepSettings.from_config(config, order.steps_per_epoch)
    if settings.sample:  # every process: host memory scales as 1 / process_count
        print(f"process {jax.process_index()}/{jax.process_count()}: {store.describe()}", flush=True)
    batch_shardings = {k: sharding.batch_sharding(mesh) for k in train_step.BATCH_KEYS}

    def make_batch(step):
        ids = order.batch_ids(step)
        batch, pending = builder.build(corpus.read(ids), ids, step)
        return pipeline.to_global(batch, batch_shardings), pending

    # --- model, optimizer, state -------------------------------------------------------
    tx = optim.make_optimizer(config.opt, total)
    lr_schedule = optim.learning_rate_schedule(config.opt, total)
    rng = jax.random.key(config.seed)
    state, state_shardings = train_state.create_sharded_state(
        rng, model=model, tx=tx, mesh=mesh, rules=rules, seq_len=config.seq_len,
        max_predictions=config.sas.max_predictions)
    p_step = train_step.jit_train_step(model=model, tx=tx, lr_schedule=lr_schedule,
                                       settings=settings, mesh=mesh, rules=rules,
                                       state_shardings=state_shardings)
    # Made by a jitted function so it is a global array on every process's devices.
    step_key = jax.jit(lambda: jax.random.fold_in(jax.random.key(config.seed), 1),
                       out_shardings=sharding.replicated(mesh))()

    ckpt = checkpointing.Checkpointer(workdir, keep=config.ckpt.keep, async_save=config.ckpt.async_save)
    latest = ckpt.latest_step()
    if latest is not None:
        state, _ = ckpt.restore(latest, state, store)
        say(f"resumed from {ckpt.directory} at step {latest}")
    start = int(jax.device_get(state.step))

    def meta(step):
        return {"config": config.to_dict(), "data": order.state(step), "max_predictions":
                config.sas.max_predictions, "param_shapes": checkpointing.param_shapes(state.params),
                "process_count": jax.process_count()}

    flops_per_step = flops.model_flops_per_step(config, vocab_size=vocab)
    writer = MetricWriter(workdir, tensorboard=config.log.tensorboard, total_steps=total,
                          tokens_per_step=config.batch_size * config.seq_len, flops_per_step=flops_per_step)
    writer.text("config", f"```\n{config}\n```")
    say(f"training steps {start}..{total}, {order.steps_per_epoch} steps/epoch, "
          f"{train_state.param_count(state.params):,} parameters, mesh {dict(mesh.shape)}, "
          f"model FLOPs/step {flops_per_step:.3e} (6N + attention + heads, sas_jax/flops.py)")

    # --- loop ---------------------------------------------------------------------------
    window: dict[str, list] = {}
    last_logged: dict = {}
    stop = _StopFlag()

    def finish(pending):
        """Host work for a dispatched step: samples → store, metrics → log / NaN check."""
        step, metrics, sampled, write = pending
        if settings.sample:
            builder.write_back(write, local_rows(sampled))
        m = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not np.isfinite(m["loss"]):
            kept = ckpt.latest_step()
            raise FloatingPointError(
                f"loss is {m['loss']} at step {step}; stopping without saving. The last good "
                f"checkpoint ({'step ' + str(kept) if kept is not None else 'none'}) is intact; "
                "lower opt.learning_rate or check the data, then re-run to resume")
        for k, v in m.items():
            window.setdefault(k, []).append(v)
        if (step + 1) % config.log.every_steps == 0 or step + 1 == total:
            # Schedules are reported at the step, everything else as a window mean.
            avg = {k: v[-1] if k in ("rtd_lambda", "learning_rate") else float(np.mean(v))
                   for k, v in window.items()}
            avg.update(writer.rates(step + 1))
            writer.write(step + 1, avg)
            window.clear()
            last_logged.clear()
            last_logged.update(avg, step=step + 1)

    step = start
    stopping = False  # agreed by every process (a SIGTERM may reach them at different steps)
    writer.rates(step)
    # Inside the loop every host<->device copy must be explicit (device_put /
    # make_array_from_process_local_data / device_get): an accidental implicit one
    # would be a hidden per-step sync, so it fails loudly instead.
    guard = jax.transfer_guard("disallow")
    guard.__enter__()
    try:
        while step < total and not stopping:
            epoch_end = min((order.epoch_of(step) + 1) * order.steps_per_epoch, total)
            prefetch = pipeline.Prefetcher(make_batch, step, epoch_end, config.data.prefetch)
            pending = None
            try:
                while step < epoch_end:
                    s, batch, write = prefetch.get()
                    state, metrics, sampled = p_step(state, batch, step_key)
                    if settings.sample:  # only SAS keeps the samples
                        for shard in sampled.addressable_shards:
                            shard.data.copy_to_host_async()
                    if pending is not None:
                        finish(pending)  # step s-1, while step s runs
                    pending = (s, metrics, sampled, write)
                    step = s + 1
                    if jax.process_count() == 1 or step % STOP_SYNC_STEPS == 0:
                        with jax.transfer_guard("allow"):  # a tiny all-gather of the flags
                            stopping = distributed.all_agree(stop.event.is_set())
                    if step % config.ckpt.every_steps == 0 or step == total or stopping:
                        finish(pending)
                        pending = None
                        ckpt.save(step, state, store, meta(step))
                        if stopping:
                            break
                if pending is not None:
                    finish(pending)  # flush before the epoch ends: the next epoch reads these rows
            finally:
                prefetch.close()
        ckpt.wait(step)
        if stopping:
            say(f"SIGTERM: saved step {step} to {ckpt.directory}; re-run the same command to resume")
    finally:
        guard.__exit__(None, None, None)
        stop.restore()
        writer.close()
        ckpt.close()
    return last_logged
