"""No library noise on a failure path (docs/run_promises.md): a damaged checkpoint, resumed or
read, prints its one warning or error line and nothing of orbax's or tensorstore's teardown
(`checkpointing.quiet_io`), also on a busy machine, where the leftovers of the failed read
arrive late."""
import contextlib
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from sas_jax import checkpoint_damage, checkpointing


def _truncate_state(step_dir: pathlib.Path) -> None:
    """Every array data file of the state cut to two thirds: some reads fail while others are
    still in flight (the case that leaves the most behind)."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for path in files:
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size * 2 // 3)


def _truncate_store(step_dir: pathlib.Path) -> None:
    npz = next((step_dir / "store").glob("*.npz"))
    npz.write_bytes(npz.read_bytes()[:200])


DAMAGES = {
    "state truncated": (_truncate_state, "state/ cannot be read (OUT_OF_RANGE"),
    "manifest deleted": (lambda d: (d / "state" / "manifest.ocdbt").unlink(), "state/ cannot be read (NOT_FOUND"),
    "meta deleted": (lambda d: shutil.rmtree(d / "meta"), "its meta item is missing"),
    "store truncated": (_truncate_store, "store/process_00000_of_00001.npz is not a whole .npz"),
}


@contextlib.contextmanager
def _burners(n=1):
    """A busy CPU (the leftovers of a failed read then arrive late): this test's process, the
    processes it starts and `n` CPU burners share one CPU, so what the test runs gets at most
    1 / (n + 1) of it, as on a busy machine. The suite's other workers keep the other CPUs:
    the burners slow this test only."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(cpus)})  # inherited by the burners and the CLI run
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in burners:
            p.kill()
            p.wait()
        os.sched_setaffinity(0, cpus)


@pytest.fixture
def busy():
    with _burners():
        yield


# The state truncated (the damage that leaves the most behind) is resumed on a busy CPU; the
# others on the machine as it is.
BUSY = {"state truncated"}


def _resume_args(workdir, corpus):
    # tiny_workdir's run (conftest): the same identity, so the resume is allowed.
    return ["-m", "sas_jax.main", "--config=configs/sas_small.py:tiny", f"--workdir={workdir}",
            f"--config.data.corpus_dir={corpus}", "--config.model.vocab_size=-1", "--config.num_train_steps=4",
            "--config.ckpt.every_steps=2", "--config.ckpt.async_save=False", "--config.log.every_steps=1"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_checkpoint_resumes_with_one_warning_and_a_clean_stderr(damage, tiny_workdir, prepared_corpus,
                                                                          tmp_path, cli):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_workdir, workdir)
    make, reason = DAMAGES[damage]
    make(workdir / "checkpoints" / "4")
    with _burners() if damage in BUSY else contextlib.nullcontext():
        r = cli(*_resume_args(workdir, prepared_corpus))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.strip() == "", r.stderr[:3000]  # no orbax/tensorstore teardown tracebacks
    warnings = [line for line in r.stdout.splitlines() if line.startswith("warning: the checkpoint of step 4")]
    assert len(warnings) == 1 and reason in warnings[0], r.stdout[-2000:]
    assert "See full TensorStore details" not in warnings[0]  # the damage, not orbax's wrapper
    assert "resumed from" in r.stdout and "at step 2" in r.stdout


@pytest.mark.slow
def test_a_reader_on_a_damaged_checkpoint_is_one_error_line_on_a_busy_machine(tiny_workdir, tmp_path, cli, busy):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_workdir, workdir)
    _truncate_state(workdir / "checkpoints" / "4")
    r = cli("-m", "sas_jax.convert", "export", f"--checkpoint_dir={workdir}", f"--out={tmp_path}/hf")
    assert r.returncode == 2, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "state/ cannot be read (OUT_OF_RANGE" in lines[0], r.stderr[:3000]
    assert not (tmp_path / "hf").exists()


def test_quiet_io_puts_the_hooks_back_and_drops_only_the_io_noise(tiny_workdir, tmp_path, monkeypatch):
    """In-process: the hooks are wrapped only inside the region (nested ones too), and put back
    after a failed read; the same diagnosis names the damage for resume and readers."""
    # No region open before this test (a Checkpointer that another test of this worker left open
    # holds one, and its hooks wrap the ones this test sets).
    import threading  # noqa: PLC0415

    monkeypatch.setattr(checkpointing, "_quiet", {"depth": 0, "saved": None, "lock": threading.Lock()})
    hooks = (sys.excepthook, sys.unraisablehook, __import__("threading").excepthook)
    seen = []
    sys.unraisablehook = seen.append
    try:
        with checkpointing.quiet_io():
            with checkpointing.quiet_io():
                sys.unraisablehook(type("U", (), {"exc_value": RuntimeError("Event loop is closed"),
                                                  "object": None})())
            sys.unraisablehook(type("U", (), {"exc_value": RuntimeError("mine"), "object": None})())
        assert [str(u.exc_value) for u in seen] == ["mine"]  # ours reaches the user's hook
        assert sys.unraisablehook == seen.append
    finally:
        sys.unraisablehook = hooks[1]
    workdir = tmp_path / "run"
    shutil.copytree(tiny_workdir, workdir)
    step_dir = workdir / "checkpoints" / "4"
    _truncate_state(step_dir)
    with pytest.raises(Exception) as e:
        checkpointing.read_params(str(workdir), 4)
    assert (sys.excepthook, sys.unraisablehook, __import__("threading").excepthook) == hooks
    what = checkpoint_damage.damage(str(step_dir), e.value, ("meta", "state", "store"))
    assert what.startswith("state/ cannot be read (OUT_OF_RANGE"), what
    assert os.path.isdir(step_dir)
