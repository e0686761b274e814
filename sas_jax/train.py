"""Pre-training of every objective (SAS, BERT, ELECTRA, ...): `train_and_evaluate(config, workdir)`.

The objective (`config.objective`) picks the model and the batch builder through
`sas_jax/objectives.py`; the loop below is the same for every row.

Resume order: the latest checkpoint in `workdir/checkpoints`, else from scratch.
Re-running the same command after a stop (or SIGTERM / SIGKILL) continues from
the last checkpoint with the same data order, store and random streams, so the
losses match an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading

import jax
import numpy as np

from sas_jax import (checkpointing, distributed, evaluation, flops, interrupts, objectives, optim, profiling,
                     run_identity, sharding, startup, train_state, train_step)
from sas_jax.data import pipeline
from sas_jax.data.corpus import open_corpus
from sas_jax.errors import UserError
from sas_jax.metrics_log import MetricWriter
from sas_jax.workdir_lock import WorkdirLock


# The jitted steps of the last runs this process trained (a resume or a re-run in the same process:
# the tests, a retry), by everything the step depends on: the config but its outputs' settings
# (log., ckpt., note), the resolved vocabulary, the step settings and the mesh. A run like one
# before skips tracing and lowering its step again (seconds at the tests' tiny shape); jax keys its
# own cache of the function on its flags and the arguments' shapes and shardings, so a changed
# flag or shape is still traced anew. Runs only (a benchmark, workdir None, times its compiles).
_STEP_FNS: dict = {}
_STEP_FNS_KEPT = 4


def _step_fn_key(config, vocab: int, settings, mesh) -> tuple:
    kept = {k: v for k, v in config.to_dict().items() if k not in ("log", "ckpt", "note")}
    return json.dumps(kept, sort_keys=True, default=repr), vocab, settings, mesh


def _keep_step_fn(key: tuple, step_fn) -> None:
    _STEP_FNS.pop(key, None)  # the most recently run last
    _STEP_FNS[key] = step_fn
    while len(_STEP_FNS) > _STEP_FNS_KEPT:
        _STEP_FNS.pop(next(iter(_STEP_FNS)))


# ----------------------------------------------------------------------------- inputs
def check_config(config, corpus, num_devices: int, batch_shards: int) -> None:
    """Refuses a config that cannot run on `corpus` and this mesh (one-line UserError)."""
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
    objectives.check_objective(config)
    vocab = config.model.vocab_size
    if vocab != -1 and vocab < corpus.vocab_size:
        raise UserError(f"model.vocab_size={vocab} is smaller than the tokenizer's "
                        f"{corpus.vocab_size}; set it to -1 (take the tokenizer's) or larger")


STOP_SYNC_STEPS = 10  # multi-process: how often the processes agree on a SIGTERM
# A step's loss is computed before its update; the norms after it. All must be finite.
NON_FINITE_CHECKS = ("loss", "grad_norm", "update_norm", "param_norm")


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
    """Set by SIGTERM (preemption) or, once the first step is dispatched, by Ctrl-C of the command
    line (`sas_jax/interrupts.py`): the loop saves a checkpoint and exits cleanly."""

    def __init__(self):
        self.event = threading.Event()
        self.term = False
        self._looping = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_term)
        else:
            self._previous = None

    def _on_term(self, *_):
        self.term = True
        self.event.set()

    def looping(self) -> None:
        """The first step is dispatched (compiled): Ctrl-C now asks for a save instead of quitting."""
        if not self._looping:
            self._looping = True
            interrupts.loop_started(self.event)

    def reason(self) -> str:
        """What stopped this process's loop (another process's signal, in a multi-process run)."""
        return "Ctrl-C" if interrupts.requested() else "SIGTERM" if self.term else "stopped with the other processes"

    def restore(self):
        interrupts.loop_ended()
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def build_inputs(config, corpus, objective: objectives.Objective, held_out=()):
    """(ExampleOrder, batch builder) for this process; the builder (and its store, SAS only)
    is the objective's (`objectives.Objective.make_builder`). The `held_out` ids are never
    in the order."""
    order = pipeline.ExampleOrder(corpus.num_rows, config.batch_size, seed=config.seed,
                                  shuffle=config.data.shuffle, process_index=jax.process_index(),
                                  process_count=jax.process_count(), held_out=held_out)
    return order, objective.make_builder(corpus, order.example_ids, order.steps_per_epoch)


# ----------------------------------------------------------------------------- the run
class Trainer:
    """One pre-training run: everything the loop needs, built once, with small methods.

    Owns the mesh, the model, the train state and its shardings, the jitted step,
    the example order, the batch builder (and its store), the checkpointer and the
    metric writer. `run()` is the whole loop; the benchmark and the tests drive the
    same methods (`train_until`, `make_batch`, `dispatch`, `finish`), so no loop exists
    twice. With `workdir=None` nothing is written: no checkpoints, no logs (benchmarks).
    """

    def __init__(self, config, workdir: str | None, *, corpus=None, devices=None):
        self.config, self.workdir = config, workdir
        self.clock = startup.RunClock()  # where the run's wall time goes (its last line)
        self.lock = None
        if workdir is not None:
            os.makedirs(workdir, exist_ok=True)
            self.lock = self._lock(workdir)
        try:
            self._build(config, workdir, corpus, devices)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _lock(workdir: str):
        """The workdir's lock, taken by process 0 before anything is written there."""
        lock, error = None, None
        if jax.process_index() == 0:
            lock = WorkdirLock(workdir)
            try:
                note = lock.acquire()
                if note:
                    say(f"note: {note}")
            except UserError as e:
                lock, error = None, e
        if distributed.all_agree(error is not None):
            raise error or UserError(f"process 0 could not lock workdir {workdir} (its error says why)")
        return lock

    def _build(self, config, workdir, corpus, devices) -> None:
        self.writer = None  # opened by `run`
        self.ckpt = None
        self.profiler = profiling.StepProfiler(config.log.get("profile_steps", ""),
                                               os.path.join(workdir, "profile") if workdir else None)
        # A run (not a benchmark, which times its compiles) keeps its executables for re-runs and resumes.
        self.compilation_cache = startup.enable_compilation_cache(config) if workdir is not None else None
        startup.unroll_cpu_threefry()  # same random bits, a faster CPU step (startup's doc)
        self.corpus = corpus if corpus is not None else open_corpus(config, workdir)
        self.corpus_print = run_identity.corpus_fingerprint(self.corpus, note=say)  # hashed once, in every meta
        self._changes: dict = {}  # the differences from the checkpoint's run allowed on purpose
        self.mesh = sharding.make_mesh(config.mesh, devices)
        self.rules = sharding.logical_rules(config.mesh)
        check_config(config, self.corpus, self.mesh.size, sharding.num_batch_shards(self.mesh))
        vocab = config.model.vocab_size
        self.vocab = int(self.corpus.vocab_size if vocab == -1 else vocab)
        self.objective = objectives.build(config, self.vocab)  # model, builder and step settings of the row
        self.model = self.objective.model
        self.total_steps = int(config.num_train_steps)

        # --- data order, batch builder (+ store), held-out rows --------------------------
        held_out = evaluation.held_out_ids(self.corpus.num_rows, int(config.data.eval_rows))
        self.order, self.builder = build_inputs(config, self.corpus, self.objective, held_out)
        self.settings = self.objective.step_settings(self.order.steps_per_epoch)
        self.batch_shardings = sharding.batch_shardings(self.mesh, train_step.BATCH_KEYS)

        # --- model, optimizer, state, step ---------------------------------------------
        self.tx = optim.make_optimizer(config.opt, self.total_steps)
        self.lr_schedule = optim.learning_rate_schedule(config.opt, self.total_steps)
        self.state, self.state_shardings = train_state.create_sharded_state(
            jax.random.key(config.seed), model=self.model, tx=self.tx, mesh=self.mesh, rules=self.rules,
            seq_len=config.seq_len, max_predictions=config.sas.max_predictions)
        self._step_fn_key = (_step_fn_key(config, self.vocab, self.settings, self.mesh)
                             if workdir is not None else None)
        self.step_fn = _STEP_FNS.get(self._step_fn_key)
        if self.step_fn is None:
            self.step_fn = train_step.jit_train_step(model=self.model, tx=self.tx, lr_schedule=self.lr_schedule,
                                                     settings=self.settings, mesh=self.mesh, rules=self.rules,
                                                     state_shardings=self.state_shardings)
        # Made by a jitted function so it is a global array on every process's devices.
        self.step_key = jax.jit(lambda: jax.random.fold_in(jax.random.key(config.seed), 1),
                                out_shardings=sharding.replicated(self.mesh))()
        self.flops_per_step = flops.model_flops_per_step(config, model_cfg=self.objective.model_config)
        self.held_out = None
        if held_out.size:
            self.held_out = evaluation.HeldOut(config, self.corpus, vocab_size=self.vocab, model=self.model,
                                               mesh=self.mesh, rules=self.rules, ids=held_out)

        # --- outputs ---------------------------------------------------------------------
        if workdir is not None:
            self.ckpt = checkpointing.Checkpointer(workdir, keep=config.ckpt.keep,
                                                   async_save=config.ckpt.async_save)
        self.window: dict[str, list] = {}  # metrics since the last logged step
        self.last_logged: dict = {}
        self.last_eval: dict = {}
        self._restart_clock = True
        self.epoch_hit_rates: dict[int, tuple] = {}  # epoch -> (sum, steps) of this process's steps
        self.eval_history: dict[int, dict] = {}  # step -> held-out figures (kept in the checkpoints' meta)
        self._stop = None  # the SIGTERM flag while `run` runs

    @property
    def store(self):
        """The builder's SampleStore (SAS), or None."""
        return self.builder.store

    @property
    def step(self) -> int:
        return int(jax.device_get(self.state.step))

    # ------------------------------------------------------------------------- set up
    def restore(self) -> int:
        """Restores the newest intact checkpoint of this run in the workdir, if any (a damaged
        one falls back, another run's is refused: `checkpointing`, `run_identity`); returns
        the step to start at. The run's config record is written only after these checks."""
        self.resumed_from = None
        found = None
        if self.ckpt is not None:
            found = self.ckpt.restore_latest(self.state, self.store, check=self.check_identity)
        if found is not None:
            self.state, meta, step = found
            self.resumed_from = step
            self.window = {k: list(v) for k, v in meta.get("log_window", {}).items()}
            summary = meta.get("summary", {})
            self.epoch_hit_rates = {int(e): tuple(v) for e, v in summary.get("epoch_hit_rates", {}).items()}
            self.eval_history = {int(s): v for s, v in summary.get("eval_history", {}).items()}
            for key, (was, now) in self._changes.items():
                say(f"note: resuming with {key} changed from {was!r} to {now!r} (allowed: not the uninterrupted run)")
            if self.store is not None and any(k.startswith(run_identity.CORPUS) for k in self._changes):
                # The stored samples are keyed by example id of the old rows: they would land on other text.
                self.store.clear()
                self.ckpt.store_rows_missing = 0
                say(f"warning: the corpus changed (allowed by ckpt.allow_changes): the checkpoint's stored SAS "
                    f"samples are dropped; every row starts again from the {self.config.sas.cold_start} cold start")
            if self.ckpt.store_rows_missing:
                print(f"note: process {jax.process_index()}: {self.ckpt.store_rows_missing:,} rows of this run's "
                      "data order have no stored sample (the order changed): they start from the cold start", flush=True)
            say(f"resumed from {self.ckpt.directory} at step {step}")
        self.write_config()
        return self.step

    def identity(self) -> dict:
        return run_identity.identity(self.config.to_dict(), self.corpus_print)

    def check_identity(self, meta: dict) -> None:
        """Refuses (one line) a checkpoint of another run; notes the changes allowed on purpose."""
        saved = run_identity.identity(meta["config"], meta.get("corpus"))
        changes = run_identity.check_resume(saved, self.identity(), allow=self.config.ckpt.allow_changes,
                                            has_store=self.store is not None, where=self.ckpt.directory,
                                            corpus=getattr(self.corpus, "directory", "the corpus"))
        self._changes = changes  # noted once the restore succeeded

    def write_config(self) -> None:
        """config.json for a new run; config.resume_<step>.json for every resume (never overwritten)."""
        if self.workdir is None or jax.process_index() != 0:
            return
        step = self.resumed_from
        name = "config.json" if step is None else f"config.resume_{step}.json"
        path = os.path.join(self.workdir, name)
        if step is None and os.path.exists(path):  # a run without a checkpoint yet: keep the first record
            name, path = "config.restart.json", os.path.join(self.workdir, "config.restart.json")
        with open(path, "w") as f:
            json.dump({**self.config.to_dict(), "resolved": {"vocab_size": self.vocab}}, f, indent=2)

    def open_writer(self, start_step: int = 0) -> None:
        self.writer = MetricWriter(self.workdir, tensorboard=self.config.log.tensorboard,
                                   total_steps=self.total_steps,
                                   tokens_per_step=self.config.batch_size * self.config.seq_len,
                                   flops_per_step=self.flops_per_step, start_step=start_step)
        self.writer.text("config", f"```\n{self.config}\n```")

    # ------------------------------------------------------------------------- one step
    def make_batch(self, step: int):
        """(device batch, pending write) of `step`: host build, then global arrays."""
        ids = self.order.batch_ids(step)
        batch, pending = self.builder.build(self.corpus.read(ids), ids, step)
        return pipeline.to_global(batch, self.batch_shardings), pending

    def next_batch(self, prefetch):
        """(step, device batch, pending write) from the prefetch thread."""
        return prefetch.get()

    def dispatch(self, step: int, batch, write):
        """Starts step `step` on the device; returns what `finish` needs once it is done."""
        first = self.clock.counts["compile"] == 0  # this process's first dispatch compiles the step
        with self.profiler.step(step + 1), (self.clock.part("compile") if first else contextlib.nullcontext()):
            self.state, metrics, sampled = self.step_fn(self.state, batch, self.step_key)
        if first and self._step_fn_key is not None:  # a step that ran (traced) is kept for the next run like it
            _keep_step_fn(self._step_fn_key, self.step_fn)
        self.profiler.after(step + 1, self.state)
        if self.settings.sample:  # only SAS keeps the samples
            for shard in sampled.addressable_shards:
                shard.data.copy_to_host_async()
        return step, metrics, sampled, write

    def finish(self, pending) -> None:
        """Host work of a dispatched step: samples → store, metrics → window / log, NaN check."""
        step, metrics, sampled, write = pending
        if self.settings.sample:
            self.builder.write_back(write, local_rows(sampled))
        m = {k: float(v) for k, v in jax.device_get(metrics).items()}
        bad = [k for k in NON_FINITE_CHECKS if k in m and not np.isfinite(m[k])]
        if bad:  # checked before any save of this step: a non-finite update never reaches disk
            raise FloatingPointError(
                f"{' and '.join(f'{k} is {m[k]}' for k in bad)} at step {step + 1}; stopping without "
                f"saving. {self._last_good_checkpoint()}; lower opt.learning_rate (resuming with "
                "--config.ckpt.allow_changes=opt.learning_rate) or check the data, then re-run to resume from it")
        for k, v in m.items():
            self.window.setdefault(k, []).append(v)
        if "hit_rate" in m:  # per-epoch means: do the model's samples get more plausible?
            total, n = self.epoch_hit_rates.get(self.order.epoch_of(step), (0.0, 0))
            self.epoch_hit_rates[self.order.epoch_of(step)] = (total + m["hit_rate"], n + 1)
        if self._restart_clock and self.writer is not None:
            self.writer.rates(step + 1)  # rates and ETA start after the first step: compile time excluded
            self._restart_clock = False
        if (step + 1) % self.config.log.every_steps == 0 or step + 1 == self.total_steps:
            self.log(step + 1)

    def _last_good_checkpoint(self) -> str:
        """Names the newest saved checkpoint (its parameters were finite when saved: every saved
        step passed `finish`'s check first)."""
        if self.ckpt is None:
            return "No checkpoint was saved"
        self.ckpt.wait()
        kept = self.ckpt.latest_step()
        if kept is None:
            return "No checkpoint was saved"
        return f"The last good checkpoint (step {kept}) is intact in {self.ckpt.directory}"

    def log(self, step: int) -> None:
        """Writes the window's means (schedules at the step) as the metrics of `step`."""
        avg = {k: v[-1] if k in ("rtd_lambda", "learning_rate") else float(np.mean(v))
               for k, v in self.window.items()}
        if self.writer is not None:
            avg.update(self.writer.rates(step))
            self.writer.write(step, avg)
        self.window.clear()
        self.last_logged = {**avg, "step": step}

    # ------------------------------------------------------------------------- loop
    def train_until(self, step: int, stop: int) -> tuple[int, bool]:
        """Trains steps [step, stop) (within one epoch); returns (next step, stopping).

        Step s+1 is dispatched before step s is finished, so the device never waits on
        Python; pending work is flushed before every save and before returning (the next
        epoch reads the rows whose samples are written here).
        """
        prefetch = pipeline.Prefetcher(self.make_batch, step, stop, self.config.data.prefetch)
        pending, stopping = None, False
        try:
            while step < stop:
                s, batch, write = self.next_batch(prefetch)
                dispatched = self.dispatch(s, batch, write)
                if pending is not None:
                    self.finish(pending)  # step s-1, while step s runs
                pending, step = dispatched, s + 1
                stopping = self.stop_requested(step)
                if self.should_evaluate(step):  # before the save: its figures are in the checkpoint's meta
                    self.evaluate(step)  # queued behind step s on the device; s-1 is finished
                if self.should_save(step, stopping):
                    self.finish(pending)
                    pending = None
                    self.save(step)
                    if stopping:
                        break
            if pending is not None:
                self.finish(pending)
        finally:
            prefetch.close()
        return step, stopping

    def stop_requested(self, step: int) -> bool:
        """True once SIGTERM reached this run (every process agrees on the same step)."""
        if self._stop is None:
            return False
        self._stop.looping()
        if jax.process_count() == 1 or step % STOP_SYNC_STEPS == 0:
            with jax.transfer_guard("allow"):  # a tiny all-gather of the flags
                return distributed.all_agree(self._stop.event.is_set())
        return False

    def should_evaluate(self, step: int) -> bool:
        every = int(self.config.log.eval_every_steps)
        return self.held_out is not None and (step == self.total_steps or (every > 0 and step % every == 0))

    def evaluate(self, step: int) -> dict:
        """Held-out figures (`sas_jax/evaluation.py`) of the current parameters, logged as `eval/*`."""
        with self.clock.part("eval"):
            self.last_eval = {**self.held_out.evaluate(self.state.params), "step": step}
        self.eval_history[step] = self.last_eval
        if self.writer is not None:
            self.writer.write_eval(step, {k: v for k, v in self.last_eval.items() if k != "step"},
                                   unigram_entropy=self.held_out.unigram_entropy)
        return self.last_eval

    def should_save(self, step: int, stopping: bool) -> bool:
        return self.ckpt is not None and (step % self.config.ckpt.every_steps == 0
                                          or step == self.total_steps or stopping)

    def meta(self, step: int) -> dict:
        """The checkpoint's meta item: the run's config and identity (checked on resume), the
        data position, shapes, and the log window and summary so far (so a resumed run logs
        the same figures as an uninterrupted one)."""
        return {"config": self.config.to_dict(), "corpus": self.corpus_print,
                "data": self.order.state(step), "max_predictions": self.config.sas.max_predictions,
                "param_shapes": checkpointing.param_shapes(self.state.params),
                "process_count": jax.process_count(), "log_window": self.window,
                "store_rows": (self.store.example_ids.size * jax.process_count()) if self.store is not None else 0,
                "summary": {"epoch_hit_rates": {str(e): list(v) for e, v in self.epoch_hit_rates.items()},
                            "eval_history": {str(k): v for k, v in self.eval_history.items()}}}

    def save(self, step: int) -> None:
        with self.clock.part("save"):
            self.ckpt.save(step, self.state, self.store, self.meta(step))

    def run(self) -> dict:
        """Restores, trains to `num_train_steps` (or a SIGTERM), saves; returns the last logged metrics."""
        try:
            step = self.restore()
            self.open_writer(step)
            if self.config.get("note"):
                say(f"note: {self.config.note}")
            say(f"training steps {step}..{self.total_steps}, {self.order.steps_per_epoch} steps/epoch, "
                f"{train_state.param_count(self.state.params):,} parameters, mesh {dict(self.mesh.shape)}, "
                f"model FLOPs/step {self.flops_per_step:.3e} (6N + attention + heads, sas_jax/flops.py)")
            if self.settings.sample:  # every process: host memory scales as 1 / process_count
                print(f"process {jax.process_index()}/{jax.process_count()}: {self.store.describe()}", flush=True)
            if self.held_out is not None:
                say(f"held-out: {len(self.held_out):,} rows never trained on, evaluated every "
                    f"{self.config.log.eval_every_steps or self.total_steps} steps; unigram entropy "
                    f"{self.held_out.unigram_entropy:.3f} nats (the MLM loss of a model that ignores context)")
                if step == 0:
                    with jax.transfer_guard("disallow"):
                        self.evaluate(0)
            say("legend: mlm / rtd = training losses (rtd weighted by λ in loss), *_acc = training accuracies, "
                "hit = share of SAS samples equal to the original token; eval lines: held-out rows "
                "([MASK]ed and unigram-replaced), rtd_acc beside its all-original baseline")
            self.writer.rates(step)
            self.writer.extra_seconds = self._remaining_overhead
            self._stop = stop = _StopFlag()
            try:
                with self.clock.loop():
                    step, stopping = self._train_to_end(step)
            finally:
                stop.restore()
                self._stop = None
            if stopping:
                say(f"{stop.reason()}: saved step {step} to {self.ckpt.directory}; re-run the same command to resume")
            else:
                self.summarize(step)
            say(self.clock.line())
        finally:
            self.close()
        return self.last_logged

    def _remaining_overhead(self, step: int) -> float:
        """Seconds the evaluations and saves after `step` will take, at their mean so far (the ETA's share)."""
        def after(every: int) -> int:  # multiples of `every` in (step, total], + the last step if not one
            total = self.total_steps
            if step >= total:
                return 0
            return (total // every - step // every + (1 if total % every else 0)) if every > 0 else 1
        evals = after(int(self.config.log.eval_every_steps)) if self.held_out is not None else 0
        saves = after(int(self.config.ckpt.every_steps)) if self.ckpt is not None else 0
        return evals * self.clock.mean("eval") + saves * self.clock.mean("save")

    def _train_to_end(self, step: int) -> tuple[int, bool]:
        stopping = False
        # Inside the loop every host<->device copy must be explicit (device_put /
        # make_array_from_process_local_data / device_get): an accidental implicit one
        # would be a hidden per-step sync, so it fails loudly instead.
        with jax.transfer_guard("disallow"):
            while step < self.total_steps and not stopping:
                epoch_end = min((self.order.epoch_of(step) + 1) * self.order.steps_per_epoch, self.total_steps)
                step, stopping = self.train_until(step, epoch_end)
            with self.clock.part("save"):  # the last asynchronous write
                self.ckpt.wait(step)
        return step, stopping

    def summarize(self, step: int) -> None:
        """The run's last lines: held-out figures against their reference levels, one fill-mask
        line on a held-out row, and where the checkpoint is and what to do with it."""
        e = self.last_eval
        if e and "mlm_loss" in e:
            h, ce = self.held_out.unigram_entropy, self.held_out.unigram_ce
            gap = min(h, ce) - e["mlm_loss"]
            verdict = ("the model uses context" if gap >= 0.3 else
                       "about the level of a model that ignores context" if gap > -0.3 else "above the unigram level")
            say(f"held-out [MASK]ed MLM loss {e['mlm_loss']:.3f} nats; unigram entropy {h:.3f}, unigram "
                f"cross-entropy at these positions {ce:.3f}: {verdict}"
                + (f"; RTD accuracy {e['rtd_accuracy']:.4f} vs all-original {e['rtd_baseline']:.4f}, AUC {e['rtd_auc']:.3f}"
                   if "rtd_accuracy" in e else ""))
        if self.epoch_hit_rates:
            rates = ", ".join(f"{e + 1}: {t / n:.3f}" for e, (t, n) in sorted(self.epoch_hit_rates.items()))
            cold = int(self.config.sas.cold_start_epochs)
            cold_epochs = "epoch 1" if cold == 1 else f"epochs 1-{cold}"
            say(f"training hit rate (share of SAS samples equal to the original token) by epoch {rates} ({cold_epochs}: "
                f"drawn at the {self.config.sas.cold_start} cold start's inputs; later epochs: at the model's own "
                "samples of the epoch before; the two are not comparable)")
        hits = {s: e["sample_hit_replaced"] for s, e in sorted(self.eval_history.items()) if "sample_hit_replaced" in e}
        if self.settings.sample and len(hits) > 1:
            first, last, unigram = hits[min(hits)], hits[max(hits)], self.last_eval["unigram_hit"]
            verdict = ("rising above unigram draws: the samples become contextual" if last > max(first, unigram)
                       else "not above its start and unigram draws: the samples are not contextual")
            say(f"held-out P(an MLM-head sample equals the original token; unigram-replaced input; "
                f"{self.order.steps_per_epoch} steps/epoch) at step "
                + ", ".join(f"{s} {h:.3f}" for s, h in hits.items())
                + f"; unigram draws {unigram:.3f}: {verdict}")
        if self.held_out is not None and self.config.objective.mlm:
            example, position = evaluation.fill_mask_example(
                self.corpus, self.held_out.ids, mask_rate=self.config.sas.mask_rate,
                max_predictions=self.config.sas.max_predictions)
            say(evaluation.fill_mask_line(self.model, self.state.params, self.corpus, example, position,
                                          mesh=self.mesh, rules=self.rules))
        note, flags = self._export_flags()
        say(f"saved step {step} in {self.ckpt.directory}; fine-tune: python -m sas_jax.glue sweep "
            f"--checkpoint_dir={self.workdir} --glue_dir=<GLUE data>; export{note}: python -m sas_jax.convert export "
            f"--checkpoint_dir={self.workdir} --out=<folder>{flags}")

    def _export_flags(self) -> tuple[str, str]:
        """(a note, the flags) the printed export command needs to succeed on this run: an MLM
        head whose LayerNorm eps is not the encoder's (the SAS rows) is refused by default, so
        the command leaves it out (`--mlm_eps_gap=skip`) and the note says how to write it anyway."""
        cfg, params = self.objective.model_config, self.state.params
        if "mlm_head" in params and "discriminator" not in params and cfg.mlm_layer_norm_eps != cfg.layer_norm_eps:
            return (f" (the MLM head's LayerNorm eps {cfg.mlm_layer_norm_eps:g} is not the encoder's "
                    f"{cfg.layer_norm_eps:g}, which HF heads use: left out; --mlm_eps_gap=allow writes it with "
                    "the measured gap recorded)", " --mlm_eps_gap=skip")
        return "", ""

    def close(self) -> None:
        """Stops the profiler, the metrics log and the checkpointer, and releases the workdir. When
        an error is already in flight (the run failed, or the log's close did), a failed last save
        is cleaned up without replacing it: the first error is the one reported."""
        try:
            try:
                if getattr(self, "profiler", None) is not None:
                    self.profiler.stop()
                if getattr(self, "writer", None) is not None:
                    writer, self.writer = self.writer, None
                    writer.close()  # a full disk may fail its last line: the checkpointer still closes
            finally:
                if getattr(self, "ckpt", None) is not None:
                    ckpt, self.ckpt = self.ckpt, None
                    ckpt.close(failing=sys.exc_info()[1] is not None)
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None


def train_and_evaluate(config, workdir: str, corpus=None) -> dict:
    """Pre-trains per `config` in `workdir`; returns the last logged metrics.

    `corpus` may be given directly (tests, benchmarks); otherwise it is opened
    (or, for the demo, prepared) from `config.data.corpus_dir`.
    """
    return Trainer(config, workdir, corpus=corpus).run()
