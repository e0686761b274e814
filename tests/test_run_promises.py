"""What a run promises (docs/run_promises.md): another run's workdir is refused, a damaged
checkpoint falls back, a full disk is one line, one run per workdir, logs true across resumes."""
import gc
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from sas_jax import checkpointing, train
from sas_jax.errors import UserError
from sas_jax.workdir_lock import WorkdirLock


@pytest.fixture
def tiny_on(config_factory, prepared_corpus):
    """`tiny_on(name="sas_small", **overrides)`: a tiny config on the prepared corpus, 4 steps,
    checkpoints at 2 and 4, synchronous saves."""
    def make(name="sas_small", **overrides):
        return config_factory(name, "tiny", **{
            "data.corpus_dir": str(prepared_corpus), "model.vocab_size": -1, "num_train_steps": 4,
            "ckpt.every_steps": 2, "ckpt.async_save": False, "log.tensorboard": False, **overrides})
    return make


@pytest.fixture(scope="module")
def finished(tiny_workdir):
    """A finished tiny SAS workdir (checkpoints 2 and 4), copied by each test that changes it: the
    session's `tiny_workdir` (conftest), the run `tiny_on()` trains (they differ only in log.
    settings, free in a resume), trained once per worker for every file that needs it."""
    workdir = pathlib.Path(tiny_workdir)
    assert checkpointing.checkpoint_steps(str(workdir)) == [2, 4]
    return workdir


def copy_of(finished, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(finished, dst)
    return dst


def snapshot(workdir):
    """Every file of the workdir with its bytes (to show nothing was touched)."""
    root = pathlib.Path(workdir)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- identity
@pytest.mark.parametrize("change, overrides, field", [
    ("objective", {"name": "unig_mlm_rtd"}, "objective.corruption"),  # same shapes, another row
    ("batch size", {"batch_size": 16}, "batch_size"),
    ("seed", {"seed": 7}, "seed"),
    ("lambda", {"sas.lambda_start": 1.0}, "sas.lambda_start"),
])
def test_resuming_another_run_is_refused_in_one_line_and_touches_nothing(finished, tmp_path, tiny_on, change,
                                                                          overrides, field):
    workdir = copy_of(finished, tmp_path)
    before = snapshot(workdir)
    overrides = dict(overrides)
    cfg = tiny_on(overrides.pop("name", "sas_small"), num_train_steps=6, **overrides)
    with pytest.raises(UserError) as e:
        train.train_and_evaluate(cfg, str(workdir))
    msg = str(e.value)
    assert "\n" not in msg and f"holds another run: {field} is" in msg and "use a new --workdir" in msg
    if field != "objective.corruption":  # the store cannot follow another corruption: no opt-in
        assert f"--config.ckpt.allow_changes={field}" in msg
    after = snapshot(workdir)
    after.pop("run.lock", None), before.pop("run.lock", None)
    assert after == before  # config.json, checkpoints and logs untouched


@pytest.mark.slow
def test_an_allowed_change_resumes_and_keeps_every_config_record(finished, tmp_path, tiny_on, capsys):
    workdir = copy_of(finished, tmp_path)
    first = (workdir / "config.json").read_text()
    cfg = tiny_on(num_train_steps=6, seed=7, **{"ckpt.allow_changes": "seed"})
    train.train_and_evaluate(cfg, str(workdir))
    out = capsys.readouterr().out
    assert "resuming with seed changed from 99 to 7" in out and "resumed from" in out
    assert "resuming with num_train_steps changed from 4 to 6" in out  # allowed, with a note
    assert (workdir / "config.json").read_text() == first  # the original run's record
    assert json.loads((workdir / "config.resume_4.json").read_text())["seed"] == 7
    assert checkpointing.latest_step(str(workdir)) == 6


def _swap_two_rows(prepared_corpus, dst, *, record_hash=True):
    """A copy of the corpus with two different rows swapped: the same counts (the old
    fingerprint could not tell), other content. `record_hash=False`: a corpus prepared before
    meta.json recorded rows_sha256."""
    import hashlib  # noqa: PLC0415

    shutil.copytree(prepared_corpus, dst)
    meta = json.loads((dst / "meta.json").read_text())
    rows = np.fromfile(dst / "rows.bin", meta["dtype"]).reshape(meta["num_rows"], meta["seq_len"])
    j = next(j for j in range(1, len(rows)) if not np.array_equal(rows[0], rows[j]))
    rows[[0, j]] = rows[[j, 0]]
    rows.tofile(dst / "rows.bin")
    meta.pop("rows_sha256")
    if record_hash:
        meta["rows_sha256"] = hashlib.sha256((dst / "rows.bin").read_bytes()).hexdigest()
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


@pytest.mark.parametrize("recorded", [True, False], ids=["hash in meta", "old corpus"])
def test_a_reordered_corpus_is_refused_in_one_line(finished, tmp_path, tiny_on, prepared_corpus, capsys, recorded):
    """Two rows swapped: the token counts are the same, the rows are not, and the SAS store is keyed
    by row. A corpus without the recorded hash has its rows.bin hashed at start, with a note."""
    workdir = copy_of(finished, tmp_path)
    other = _swap_two_rows(prepared_corpus, tmp_path / "corpus", record_hash=recorded)
    with pytest.raises(UserError) as e:
        train.train_and_evaluate(tiny_on(num_train_steps=6, **{"data.corpus_dir": str(other)}), str(workdir))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"corpus {other} is not the one ")
    assert "its rows changed (edited or reordered)" in msg and "corpus.rows_sha256 is" in msg
    assert "--config.ckpt.allow_changes=corpus; its stored SAS samples are then dropped" in msg
    notes = [line for line in capsys.readouterr().out.splitlines() if "records no rows_sha256" in line]
    assert len(notes) == (0 if recorded else 1)
    assert checkpointing.latest_step(str(workdir)) == 4


def test_another_corpus_allowed_on_purpose_drops_the_stored_samples(finished, tmp_path, tiny_on, prepared_corpus,
                                                                   capsys):
    from sas_jax.corruption.store import NOT_VISITED  # noqa: PLC0415

    workdir = copy_of(finished, tmp_path)
    other = _swap_two_rows(prepared_corpus, tmp_path / "corpus")
    trainer = train.Trainer(tiny_on(num_train_steps=6, **{"data.corpus_dir": str(other),
                                                          "ckpt.allow_changes": "corpus"}), str(workdir))
    try:
        assert trainer.restore() == 4
        assert (trainer.store.count == NOT_VISITED).all()  # not one sample of the old rows is kept
    finally:
        trainer.close()
    out = capsys.readouterr().out
    assert "warning: the corpus changed (allowed by ckpt.allow_changes): the checkpoint's stored SAS samples " \
           "are dropped" in out and "resuming with corpus.rows_sha256 changed" in out


# ----------------------------------------------------------------------------- damaged checkpoints
def _truncate_data_files(folder):
    """Every array data file of the state (orbax's OCDBT `d/` folders) cut to a third."""
    files = [p for p in pathlib.Path(folder).rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for path in files:
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 3)


@pytest.fixture(scope="module")
def finished_params_4(finished):
    """The undamaged run's parameters at step 4, read once for every damage."""
    return checkpointing.read_params(str(finished), 4)[0]


@pytest.mark.parametrize("damage", ["state truncated", "meta deleted", "store truncated", "store deleted"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(finished, finished_params_4, tmp_path, tiny_on,
                                                                  capsys, damage):
    workdir = copy_of(finished, tmp_path)
    step4 = workdir / "checkpoints" / "4"
    if damage == "state truncated":
        _truncate_data_files(step4 / "state")
    elif damage == "meta deleted":
        shutil.rmtree(step4 / "meta")
    elif damage == "store truncated":
        npz = next((step4 / "store").glob("*.npz"))
        npz.write_bytes(npz.read_bytes()[:200])
    else:
        for npz in (step4 / "store").glob("*.npz"):
            npz.unlink()
    train.train_and_evaluate(tiny_on(), str(workdir))
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: the checkpoint of step 4 is damaged")]
    assert len(warnings) == 1 and "trying the one before" in warnings[0]
    assert "resumed from" in out and "at step 2" in out
    assert (workdir / "checkpoints" / "4.damaged").is_dir()
    assert checkpointing.checkpoint_steps(str(workdir)) == [2, 4]  # step 4 trained again from step 2
    # ... and equals the undamaged run's step 4 (exact resume from step 2).
    a = finished_params_4
    b, _ = checkpointing.read_params(str(workdir), 4)
    assert len(jax_leaves(a)) == len(jax_leaves(b))
    for x, y in zip(jax_leaves(a), jax_leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def jax_leaves(tree):
    import jax  # noqa: PLC0415

    return jax.tree.leaves(tree)


def test_no_intact_checkpoint_is_one_line(finished, tmp_path, tiny_on):
    workdir = copy_of(finished, tmp_path)
    for step in (2, 4):
        shutil.rmtree(workdir / "checkpoints" / str(step) / "meta")
    with pytest.raises(UserError) as e:
        train.train_and_evaluate(tiny_on(), str(workdir))
    msg = str(e.value)
    assert "\n" not in msg and "no intact checkpoint in" in msg and "step 4: its meta item" in msg
    assert "step 2: its meta item" in msg


@pytest.mark.slow
def test_a_leftover_unfinished_save_is_removed_with_a_note(finished, tmp_path, tiny_on, capsys):
    workdir = copy_of(finished, tmp_path)
    tmp = workdir / "checkpoints" / "6.orbax-checkpoint-tmp"
    shutil.copytree(workdir / "checkpoints" / "4", tmp)
    train.train_and_evaluate(tiny_on(num_train_steps=6), str(workdir))
    assert "removed 1 unfinished checkpoint folder(s)" in capsys.readouterr().out
    assert not tmp.exists() and checkpointing.latest_step(str(workdir)) == 6


# ----------------------------------------------------------------------------- disk full
def _mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


@pytest.mark.slow
def test_a_full_disk_is_one_line_exit_2_and_the_earlier_checkpoints_resume(tmp_path, cli, prepared_corpus):
    """A real full disk where this machine lets the test mount a small tmpfs; else skipped
    (test_main's simulated write error covers the message)."""
    mnt = tmp_path / "small_disk"
    if not _mount_tmpfs(mnt, "4m"):  # room for about 5 checkpoints of the tiny run (0.6 MiB each on a tmpfs)
        pytest.skip("cannot mount a tmpfs here")
    try:
        workdir = mnt / "run"
        args = ["-m", "sas_jax.main", "--config=configs/sas_small.py:tiny", f"--workdir={workdir}",
                f"--config.data.corpus_dir={prepared_corpus}", "--config.model.vocab_size=-1",
                "--config.ckpt.every_steps=2", "--config.ckpt.keep=100", "--config.log.tensorboard=False"]
        r = cli(*args, "--config.num_train_steps=60")
        assert r.returncode == 2, r.stderr[-3000:]
        errors = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and "No space left on device" in errors[0], r.stderr[-3000:]
        assert "Traceback" not in r.stderr + r.stdout
        kept = checkpointing.checkpoint_steps(str(workdir))
        assert len(kept) >= 2 and not list((workdir / "checkpoints").glob("*orbax-checkpoint-tmp*"))
        if errors[0].startswith("error: checkpoint of step"):  # the disk filled during a save
            assert "MiB free there" in errors[0]
            assert f"the checkpoint of step {kept[-1]} is intact and resumable" in errors[0]
        else:  # ... or while the metrics line was written
            assert errors[0].startswith(f"error: could not write {workdir / 'metrics.jsonl'} "), errors[0]
            assert "re-run the same command to resume" in errors[0]
        for step in kept[:-1]:  # free space: the latest resumes
            shutil.rmtree(workdir / "checkpoints" / str(step))
        again = cli(*args, f"--config.num_train_steps={kept[-1] + 2}")
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.stderr.strip() == "", again.stderr[-3000:]
        assert f"at step {kept[-1]}" in again.stdout
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_full_disk_leaves_nothing_to_report_at_the_interpreters_exit(tmp_path, tiny_on):
    """The subprocess test's failure in-process, its error kept as main keeps it while it exits:
    what orbax leaves behind (coroutines of the failed writes, tasks on its closed loop, their
    errors) is collected only then, at the interpreter's exit, when it prints "Exception ignored
    in: <coroutine ...>", "Task was destroyed but it is pending!", "coroutine ... was never
    awaited" or "... exception was never retrieved". Once the checkpointer is closed, collecting
    it must report nothing."""
    import gc  # noqa: PLC0415
    import logging  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    mnt = tmp_path / "small_disk"
    if not _mount_tmpfs(mnt, "1000k"):  # room for one checkpoint (about 0.8 MiB on a tmpfs), not two
        pytest.skip("cannot mount a tmpfs here")
    records, unraisable = [], []
    handler = logging.Handler()
    handler.emit = records.append
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(UserError, match="No space left on device") as error:
                train.train_and_evaluate(tiny_on(**{"ckpt.async_save": True, "ckpt.keep": 100}), str(mnt / "run"))
            hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
            logging.getLogger("asyncio").addHandler(handler)
            try:
                del error  # the failure's traceback: the last reference to orbax's leftovers
                gc.collect()
            finally:
                sys.unraisablehook = hook
                logging.getLogger("asyncio").removeHandler(handler)
        assert [u.exc_value for u in unraisable] == []
        assert [r.getMessage() for r in records] == []
        assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_a_write_error_inside_orbax_is_one_line(finished, tmp_path, tiny_on, monkeypatch):
    """tensorstore's way of failing (a ValueError with a status), raised inside orbax's state save."""
    import orbax.checkpoint as ocp  # noqa: PLC0415

    workdir = copy_of(finished, tmp_path)

    def full(self, *args, **kwargs):
        raise ValueError('RESOURCE_EXHAUSTED: Error writing "params.x/0.0" in OCDBT database at local file "...": '
                         "Failed writing [OS error 28: No space left on device]")

    monkeypatch.setattr(ocp.StandardCheckpointHandler, "async_save", full)
    with pytest.raises(UserError, match=r"checkpoint of step 6 could not be written in .* \(No space left on "
                                        r"device\); .*the checkpoint of step 4 is intact and resumable"):
        train.train_and_evaluate(tiny_on(num_train_steps=6), str(workdir))
    monkeypatch.undo()
    train.train_and_evaluate(tiny_on(num_train_steps=6), str(workdir))
    assert checkpointing.latest_step(str(workdir)) == 6


def _save_fails_when_waited(monkeypatch):
    """The last save fails only when the checkpointer closes (an async save on a disk that
    filled meanwhile), as orbax reports it there: tensorstore's ValueError with a status."""
    import orbax.checkpoint as ocp  # noqa: PLC0415

    def close(self):
        raise ValueError('RESOURCE_EXHAUSTED: Error opening "zarr" driver: Error writing "params.x/.zarray": '
                         "Failed to write 229 bytes to file 9: No space left on device [os_error_code='28']")

    monkeypatch.setattr(ocp.CheckpointManager, "close", close)


@pytest.mark.slow
def test_a_full_disk_seen_first_by_the_metrics_log_stays_the_one_error(finished, tmp_path, tiny_on, monkeypatch):
    """The race the real full disk runs into: the metrics line fails while a save is in flight;
    the save's own failure, met while closing, must not replace the first error."""
    from sas_jax import metrics_log  # noqa: PLC0415

    workdir = copy_of(finished, tmp_path)
    write = metrics_log.MetricWriter.write

    def full_at_6(self, step, metrics):
        if step == 6:
            self._write_failed(OSError(28, "No space left on device"))
        write(self, step, metrics)

    monkeypatch.setattr(metrics_log.MetricWriter, "write", full_at_6)
    _save_fails_when_waited(monkeypatch)
    with pytest.raises(UserError, match=r"^could not write .*metrics\.jsonl \(No space left on device\)"):
        train.train_and_evaluate(tiny_on(num_train_steps=6, **{"log.every_steps": 1}), str(workdir))
    assert not list((workdir / "checkpoints").glob("*orbax-checkpoint-tmp*"))


# ----------------------------------------------------------------------------- the lock
@pytest.mark.slow
def test_a_second_run_on_a_workdir_in_use_is_refused_naming_the_holder(finished, tmp_path, cli, prepared_corpus):
    workdir = copy_of(finished, tmp_path)
    lock = WorkdirLock(str(workdir))
    assert lock.acquire() is None
    try:
        r = cli("-m", "sas_jax.main", "--config=configs/sas_small.py:tiny", f"--workdir={workdir}",
                f"--config.data.corpus_dir={prepared_corpus}", "--config.model.vocab_size=-1",
                "--config.num_train_steps=6", "--config.log.tensorboard=False")
    finally:
        lock.release()
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr[-2000:]
    assert f"is in use by another run (pid {os.getpid()} on host {socket.gethostname()}" in lines[0]
    assert checkpointing.latest_step(str(workdir)) == 4


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    code = ("import sys, os, signal; sys.path.insert(0, %r); from sas_jax.workdir_lock import WorkdirLock; "
            "WorkdirLock(%r).acquire(); os.kill(os.getpid(), signal.SIGKILL)") % (str(pathlib.Path.cwd()), str(tmp_path))
    subprocess.run([sys.executable, "-c", code], cwd=pathlib.Path(__file__).resolve().parents[1])
    assert (tmp_path / "run.lock").read_text().startswith("pid ")  # the killed holder's record
    lock = WorkdirLock(str(tmp_path))
    note = lock.acquire()
    assert note and note.startswith("took over the lock of a run that is gone (pid ")
    with pytest.raises(UserError, match="is in use by another run"):
        WorkdirLock(str(tmp_path)).acquire()  # held now
    lock.release()
    assert WorkdirLock(str(tmp_path)).acquire() is None  # released cleanly: no takeover note


# ----------------------------------------------------------------------------- logs
@pytest.mark.slow
def test_the_first_log_window_after_a_resume_is_the_uninterrupted_one(tmp_path, tiny_on):
    """Logged every 3 steps, saved every 2: a resume from step 4 logs step 6 over steps 4-6,
    like the uninterrupted run, because the window is in the checkpoint."""
    cfg = tiny_on(num_train_steps=6, **{"log.every_steps": 3})
    ref = tmp_path / "ref"
    train.train_and_evaluate(cfg, str(ref))
    resumed = tmp_path / "resumed"
    shutil.copytree(ref, resumed)
    shutil.rmtree(resumed / "checkpoints" / "6")
    train.train_and_evaluate(cfg, str(resumed))

    def lines(w):
        return [json.loads(x) for x in (w / "metrics.jsonl").read_text().splitlines()]

    a, b = lines(ref), lines(resumed)
    assert [d["step"] for d in a] == [d["step"] for d in b] == [3, 6]
    for key in ("loss", "mlm_loss", "rtd_loss", "grad_norm", "hit_rate"):
        assert a[1][key] == pytest.approx(b[1][key], rel=1e-6), key


# ----------------------------------------------------------------------------- the demo's corpus
def test_the_demo_prepares_its_corpus_only_at_its_default_place(tmp_path, config_factory):
    cfg = config_factory("sas_demo", "smoke", **{"data.corpus_dir": str(tmp_path / "demo_corpsu")})
    with pytest.raises(UserError, match=r"holds no prepared corpus; this config prepares its corpus only at its "
                                        r"default data.corpus_dir=demo_corpus"):
        train.Trainer(cfg, str(tmp_path / "w"))
    assert not (tmp_path / "demo_corpsu").exists()
