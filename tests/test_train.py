"""End-to-end pre-training on CPU: learning, exact resume, preemption, NaN stop."""
import contextlib
import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
from conftest import load_config, make_config

from sas_jax import train
from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.data.synthetic import markov_corpus, topic_corpus


def read_metrics(workdir):
    """Per-step metrics from metrics.jsonl (train and `eval/` lines of a step merged); a resumed
    run's lines replace the killed run's."""
    out = {}
    for line in pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines():
        d = json.loads(line)
        out.setdefault(d["step"], {}).update(d)
    return out


def learning_devices():
    """The learning tests train on one device: what they check is learning, which the layout does
    not change (an 8-device step equals the one-device step, tests/test_train_step.py; the
    8-device loop runs end to end in this file's other runs), and their hundreds of steps run
    up to twice as fast as on 8 fake devices sharing the CPU."""
    return jax.devices()[:1]


@pytest.fixture
def learning_config(config_factory):
    cfg = config_factory("sas_small", "tiny")
    cfg.batch_size = 32
    cfg.num_train_steps = 300
    cfg.opt.learning_rate = 3e-3
    cfg.opt.warmup_steps = 20
    # The paper's λ (50→200) lets the RTD gradient hold a 32-wide encoder on the
    # unigram plateau for far longer than a test can run; at λ = 1 both heads
    # leave it within 300 steps.
    cfg.sas.lambda_schedule, cfg.sas.lambda_start = "constant", 1.0
    cfg.log.every_steps = 10
    cfg.ckpt.every_steps = 300
    return cfg


def in_topic_fraction(corpus, ids, tokens, valid):
    """Share of replacement tokens from the row's own topic (chance: 1 / num_topics)."""
    return float((corpus.topic_of_token[tokens] == corpus.topic_of_row[ids][:, None])[valid].mean())


def model_log_likelihood(cfg, workdir, step, rows, positions, tokens, valid):
    """Mean log p(token) of the trained MLM head at `positions` of the clean `rows`."""
    import orbax.checkpoint as ocp  # noqa: PLC0415

    from sas_jax.models import ModelConfig, PretrainingModel  # noqa: PLC0415

    state = ocp.StandardCheckpointer().restore(pathlib.Path(workdir, "checkpoints", str(step), "state").absolute())
    model = PretrainingModel(ModelConfig.from_config(cfg.model))
    out = model.apply({"params": state["params"]}, rows, np.ones_like(rows), positions)
    logp = jax.nn.log_softmax(out["mlm_logits"], axis=-1)
    picked = np.take_along_axis(np.asarray(logp), tokens[..., None], axis=-1)[..., 0]
    return float(picked[valid].mean())


@pytest.mark.slow
def test_tiny_sas_learns_and_stores_its_own_samples(tmp_path, learning_config, optimized_compile):
    cfg = learning_config
    corpus = topic_corpus(256, cfg.seq_len, cfg.model.vocab_size, num_topics=2, seed=0)
    train.Trainer(cfg, str(tmp_path), corpus=corpus, devices=learning_devices()).run()
    m = read_metrics(tmp_path)
    first, last = m[10], m[300]
    assert last["mlm_loss"] < first["mlm_loss"] - 0.5
    assert last["mlm_accuracy"] > first["mlm_accuracy"]
    # RTD beats the all-"original" baseline (which scores 1 - replaced_rate).
    assert last["rtd_accuracy"] > first["rtd_accuracy"] + 0.05
    assert last["rtd_accuracy"] > 1.0 - last["replaced_rate"]

    # After training, the stored replacements are the model's samples: far more
    # plausible in context than cold-start draws at the same positions.
    store = np.load(next((tmp_path / "checkpoints" / "300" / "store").glob("process_*.npz")))
    ids = store["example_ids"]
    valid = np.arange(store["positions"].shape[1])[None, :] < store["count"][:, None]
    rows = corpus.rows[ids]
    positions = store["positions"].astype(np.int32)
    cold = ColdStartSampler("unigram", cfg.model.vocab_size, corpus.unigram_counts).draw(
        np.random.default_rng(0), positions.shape, step=10_000)
    tokens = store["tokens"].astype(np.int32)
    ours, baseline = in_topic_fraction(corpus, ids, tokens, valid), in_topic_fraction(corpus, ids, cold, valid)
    assert ours > baseline + 0.2, (ours, baseline)
    ours = model_log_likelihood(cfg, tmp_path, 300, rows, positions, tokens, valid)
    baseline = model_log_likelihood(cfg, tmp_path, 300, rows, positions, cold, valid)
    assert ours > baseline + 0.3, (ours, baseline)


STEPS = 30  # an interruption near step 10-20, then the re-run crosses the later checkpoints


def _run_args(workdir, corpus_dir, steps=STEPS):
    return ["-m", "sas_jax.main", "--config=configs/sas_small.py:tiny", f"--workdir={workdir}",
            f"--config.data.corpus_dir={corpus_dir}", "--config.model.vocab_size=-1",
            f"--config.num_train_steps={steps}", "--config.ckpt.every_steps=10",
            "--config.log.every_steps=1", "--config.log.tensorboard=False",
            "--config.data.eval_rows=16", "--config.log.eval_every_steps=10"]


def _start_and_signal(args, workdir, sig, root):
    """Starts a run and sends `sig` once its first checkpoint (step 10) is complete."""
    proc = subprocess.Popen([sys.executable, *args], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = pathlib.Path(workdir, "checkpoints", "10")
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _latest(workdir):
    return max(int(p.name) for p in pathlib.Path(workdir, "checkpoints").iterdir() if p.name.isdigit())


def _run_here(workdir, corpus_dir) -> str:
    """The command line's run of `_run_args`, in this process; returns what it printed. The
    reference and the re-runs of the stopped runs train here (only the stopped runs need a
    process of their own), so they share one compiled step."""
    config = load_config("sas_small", "tiny", [a.removeprefix("--config.") for a in _run_args(workdir, corpus_dir)[4:]])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        train.train_and_evaluate(config, str(workdir))
    return printed.getvalue()


@pytest.fixture(scope="module")
def reference_run(prepared_corpus, tmp_path_factory):
    """The uninterrupted run that the resumes after SIGKILL and Ctrl-C must reproduce."""
    ref = tmp_path_factory.mktemp("reference") / "ref"
    assert "held-out: 16 rows" in _run_here(ref, prepared_corpus)
    return ref


def _assert_continues_exactly(ref, resumed, resumed_from):
    """`resumed` (a run stopped at `resumed_from`, then re-run) logged each step once, and every
    figure after `resumed_from`, the held-out ones and the final store equal the reference's."""
    a, b = read_metrics(ref), read_metrics(resumed)
    # Each step is logged once (train and eval lines alike): the resume cut the stopped run's tail.
    lines = [json.loads(x) for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    for kind in (lambda d: "loss" in d, lambda d: "eval/mlm_loss" in d):
        steps = [d["step"] for d in lines if kind(d)]
        assert len(steps) == len(set(steps)) and steps == sorted(steps)
    for step in range(resumed_from + 1, STEPS + 1):
        for key in ("loss", "mlm_loss", "rtd_loss", "hit_rate", "mlm_slots", "grad_norm"):
            assert a[step][key] == pytest.approx(b[step][key], rel=1e-6, abs=1e-7), (step, key)
    # Held-out evaluation: the same rows and corruption, so the same figures, before and after.
    evals = [s for s in a if "eval/mlm_loss" in a[s]]
    assert evals == list(range(0, STEPS + 1, 10))
    for step in evals:
        for key in ("eval/mlm_loss", "eval/mlm_accuracy", "eval/mlm_loss_replaced", "eval/rtd_accuracy",
                    "eval/rtd_auc", "eval/rtd_baseline"):
            assert a[step][key] == pytest.approx(b[step][key], rel=1e-6, abs=1e-7), (step, key)
    # The store (the model's samples) and the data position end identical too.
    za = np.load(next((ref / "checkpoints" / str(STEPS) / "store").glob("*.npz")))
    zb = np.load(next((resumed / "checkpoints" / str(STEPS) / "store").glob("*.npz")))
    for key in ("example_ids", "positions", "tokens", "count"):
        np.testing.assert_array_equal(za[key], zb[key])


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(reference_run, prepared_corpus, tmp_path, repo_root):
    killed = tmp_path / "killed"
    rc, _, _ = _start_and_signal(_run_args(killed, prepared_corpus), killed, signal.SIGKILL, repo_root)
    assert rc == -signal.SIGKILL
    resumed_from = _latest(killed)
    assert 10 <= resumed_from < STEPS
    again = _run_here(killed, prepared_corpus)
    assert f"at step {resumed_from}" in again
    assert "took over the lock of a run that is gone" in again  # the killed run's lock was stale
    assert json.loads((killed / "config.json").read_text())["num_train_steps"] == STEPS  # the first record kept
    assert (killed / f"config.resume_{resumed_from}.json").exists()
    _assert_continues_exactly(reference_run, killed, resumed_from)


def _no_traceback(text):
    assert "Traceback" not in text and "Fatal Python error" not in text and "KeyboardInterrupt" not in text


@pytest.mark.slow
def test_ctrl_c_saves_and_the_rerun_continues_exactly(reference_run, prepared_corpus, tmp_path, repo_root):
    """SIGINT in the loop does what SIGTERM does (the step is finished and saved, one line says
    where), with exit status 130, and no traceback; the re-run continues as if never stopped."""
    stopped = tmp_path / "stopped"
    rc, out, err = _start_and_signal(_run_args(stopped, prepared_corpus), stopped, signal.SIGINT, repo_root)
    assert rc == 130, err[-3000:]
    _no_traceback(out + err)
    saved = _latest(stopped)
    assert 10 < saved < STEPS
    assert f"Ctrl-C: saved step {saved} to {stopped / 'checkpoints'}; re-run the same command to resume" in out
    meta = json.loads((stopped / "checkpoints" / str(saved) / "meta" / "metadata").read_text())
    assert meta["data"]["step"] == saved
    assert f"at step {saved}" in _run_here(stopped, prepared_corpus)
    _assert_continues_exactly(reference_run, stopped, saved)


def _stderr_lines(err):
    """stderr without absl's log records (`I1205 04:54:32.99 ... xla_bridge.py ...]`)."""
    return [line for line in err.splitlines() if line.strip() and not re.match(r"[IWEF]\d{4} ", line)]


@pytest.mark.slow
def test_ctrl_c_before_the_first_step_quits_at_once_in_one_line(prepared_corpus, tmp_path, repo_root):
    """During start-up or compilation there is nothing new to save: one line, status 130, no
    traceback (no segfault from a KeyboardInterrupt unwinding through XLA), nothing written."""
    proc = subprocess.Popen([sys.executable, *_run_args(tmp_path, prepared_corpus)], cwd=repo_root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the legend is printed just before the first step is compiled
        if line.startswith("legend:"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert _stderr_lines(err) == ["Ctrl-C before the first training step: quit, nothing new to save; re-run the "
                                  "same command to start (or resume)"]
    _no_traceback(out + err)
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(prepared_corpus, tmp_path, repo_root):
    rc, out, err = _start_and_signal(_run_args(tmp_path, prepared_corpus), tmp_path, signal.SIGTERM, repo_root)
    assert rc == 0, err[-3000:]
    stopped = _latest(tmp_path)
    assert f"SIGTERM: saved step {stopped}" in out
    assert 10 <= stopped < STEPS
    meta = json.loads((tmp_path / "checkpoints" / str(stopped) / "meta" / "metadata").read_text())
    assert meta["data"]["step"] == stopped


# The good start's length: the run is cut back to its step 4, so the 1e30 run's resume to step
# 5 + 3 = 8 is this run's config and reuses its compiled step (a persistent-cache hit).
GOOD_STEPS = 8


def _diverging_config(corpus, steps, lr):
    return make_config("sas_small", "tiny", **{
        "data.corpus_dir": str(corpus), "model.vocab_size": -1, "num_train_steps": steps,
        "log.tensorboard": False, "ckpt.every_steps": 1, "ckpt.keep": 100, "opt.learning_rate": lr,
        "ckpt.allow_changes": "opt.learning_rate"})


@pytest.fixture(scope="module")
def good_start(prepared_corpus, tmp_path_factory):
    """The good start of both diverging runs, trained once: a run of GOOD_STEPS at lr 1e-3 cut back
    to its checkpoints 1..4 (and their metrics), as a run stopped there leaves its workdir."""
    from sas_jax import metrics_log  # noqa: PLC0415

    workdir = tmp_path_factory.mktemp("good_start") / "run"
    train.train_and_evaluate(_diverging_config(prepared_corpus, GOOD_STEPS, 1e-3), str(workdir))
    for d in (workdir / "checkpoints").iterdir():
        if d.name.isdigit() and int(d.name) > 4:
            shutil.rmtree(d)
    metrics_log.keep_up_to(str(workdir / "metrics.jsonl"), 4)
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("learning_rate", [1e6, 1e30])
def test_a_non_finite_update_never_reaches_disk(good_start, prepared_corpus, tmp_path, learning_rate):
    """A diverging run stops before saving the step that broke, names it (1-based, as the
    progress lines) and the newest checkpoint, which is finite; re-running from it trains on."""
    from sas_jax import checkpointing  # noqa: PLC0415

    def cfg(steps, lr):
        return _diverging_config(prepared_corpus, steps, lr)

    workdir = tmp_path / "run"
    shutil.copytree(good_start, workdir)  # a good start: checkpoints 1..4
    assert checkpointing.checkpoint_steps(str(workdir)) == [1, 2, 3, 4]
    with pytest.raises(FloatingPointError) as err:
        train.train_and_evaluate(cfg(30, learning_rate), str(workdir))  # diverges, saving every step
    saved = checkpointing.checkpoint_steps(str(workdir))
    message = str(err.value)
    broke = int(re.search(r"at step (\d+); stopping without saving", message).group(1))
    assert f"The last good checkpoint (step {saved[-1]}) is intact" in message
    assert "--config.ckpt.allow_changes=opt.learning_rate" in message
    assert saved[-1] == broke - 1 >= 4  # every step up to the broken one was saved, that one was not
    for step in saved:
        params, _ = checkpointing.read_params(str(workdir), step)
        assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(params)), step
    if learning_rate == 1e30:  # the first huge update is already non-finite: the named checkpoint is step 4's
        assert saved[-1] == 4
        out = train.train_and_evaluate(cfg(broke + 3, 1e-3), str(workdir))  # resumes from the named one
        assert out["step"] == broke + 3 and np.isfinite(out["loss"])


@pytest.mark.slow
def test_the_loop_forbids_implicit_host_device_transfers(tmp_path, monkeypatch, config_factory):
    """Every copy in the loop is explicit; a sneaky implicit one (here, in the
    logger) fails instead of silently syncing the host with the device."""
    import jax.numpy as jnp  # noqa: PLC0415

    from sas_jax import metrics_log  # noqa: PLC0415

    cfg = config_factory("sas_small", "tiny")
    cfg.num_train_steps, cfg.log.tensorboard, cfg.log.every_steps = 6, False, 2
    corpus = markov_corpus(64, cfg.seq_len, cfg.model.vocab_size)
    out = train.train_and_evaluate(cfg, str(tmp_path / "ok"), corpus=corpus)
    assert out["step"] == 6
    original = metrics_log.MetricWriter.write
    monkeypatch.setattr(metrics_log.MetricWriter, "write",
                        lambda self, step, m: original(self, step, {**m, "x": float(jnp.float32(1.0) + 1)}))
    with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
        train.train_and_evaluate(cfg, str(tmp_path / "sneaky"), corpus=corpus)


@pytest.mark.slow
def test_tiny_sas_with_the_study_recipe_learns_context(tmp_path, config_factory, optimized_compile):
    """The recipe of docs/small_scale.md (disentangled attention, `mlm` cold start, constant λ = 1)
    at a tiny width on a Markov corpus: the held-out [MASK]ed MLM loss ends well below the unigram
    entropy, and keeps falling once the model reads its own samples (after the cold epochs)."""
    cfg = config_factory("sasda_small", "tiny", **{
        "model.hidden_size": 64, "model.embedding_size": 64, "model.intermediate_size": 256, "model.head_dim": 32,
        "batch_size": 32, "num_train_steps": 150, "opt.learning_rate": 3e-3, "opt.warmup_steps": 20,
        "sas.cold_start": "mlm", "sas.cold_start_epochs": 3, "sas.lambda_schedule": "constant", "sas.lambda_start": 1.0,
        "data.eval_rows": 64, "log.eval_every_steps": 50, "log.every_steps": 50, "ckpt.every_steps": 150,
        "log.tensorboard": False})
    corpus = markov_corpus(1024, cfg.seq_len, cfg.model.vocab_size, active_tokens=64)
    trainer = train.Trainer(cfg, str(tmp_path), corpus=corpus, devices=learning_devices())
    trainer.run()
    evals = {s: d for s, d in read_metrics(tmp_path).items() if "eval/mlm_loss" in d}
    assert trainer.order.steps_per_epoch == 30 and sorted(evals) == [0, 50, 100, 150]
    entropy = trainer.held_out.unigram_entropy
    assert evals[0]["eval/mlm_loss"] > entropy  # untrained
    assert evals[150]["eval/mlm_loss"] < entropy - 0.3 and evals[150]["eval/mlm_loss"] < evals[0]["eval/unigram_ce"] - 0.3
    assert evals[150]["eval/mlm_loss"] < evals[100]["eval/mlm_loss"]  # steps 90-150 read the model's own samples
    assert evals[50]["rtd_lambda"] == 0.0 and evals[150]["rtd_lambda"] == 1.0  # no RTD loss in the mlm cold phase
    # The samples SAS stores become contextual: far likelier to equal the original than unigram draws.
    hit = {s: d["eval/sample_hit_replaced"] for s, d in evals.items()}
    assert hit[150] > hit[0] and hit[150] > 2 * evals[150]["eval/unigram_hit"]
