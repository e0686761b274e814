"""launch/slurm_train.sbatch as SLURM runs it: a spooled copy of the script, fake SLURM variables
and a fake `srun` on PATH that records the command line every task would run (no cluster here)."""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

SBATCH = ROOT / "launch" / "slurm_train.sbatch"
SCRIPTS = sorted(str(p) for p in (ROOT / "launch").iterdir() if p.suffix in (".sh", ".sbatch"))

# A fake srun: for each of the job's tasks, one line "PROCID<TAB>argv (NUL-joined)" in $SRUN_LOG,
# then XLA_FLAGS (xla_env.sh was sourced); with FAKE_SRUN_HOLD it waits for a signal instead of exiting
# (and records which one reached it), as a running step would.
FAKE_SRUN = r"""#!/usr/bin/env bash
set -u
ntasks=$(( ${SLURM_NNODES:-1} * ${SLURM_NTASKS_PER_NODE:-1} ))
for ((i = 0; i < ntasks; i++)); do
  printf '%s\t' "$i" >> "$SRUN_LOG"
  printf '%s\0' "$@" | tr '\0' '\037' >> "$SRUN_LOG"
  printf '\n' >> "$SRUN_LOG"
done
printf 'XLA_FLAGS=%s\n' "${XLA_FLAGS:-}" >> "$SRUN_LOG"
if [ -n "${FAKE_SRUN_HOLD:-}" ]; then
  trap 'echo "srun got TERM" >> "$SRUN_LOG"; exit 0' TERM
  touch "$FAKE_SRUN_HOLD"
  for ((t = 0; t < 600; t++)); do sleep 0.05; done  # bounded: no stray process if the TERM never comes
fi
"""


def slurm_env(tmp_path, **extra):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "srun").write_text(FAKE_SRUN)
    (bindir / "srun").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SAS_", "DRY_RUN", "NODES", "XLA_FLAGS"))}
    env.update(PATH=f"{bindir}:{pathlib.Path(sys.executable).parent}:{env['PATH']}",
               SRUN_LOG=str(tmp_path / "srun.log"), HOME=str(tmp_path),
               SLURM_SUBMIT_DIR=str(ROOT), SLURM_JOB_ID="4242", SLURM_NNODES="2", SLURM_JOB_NUM_NODES="2",
               SLURM_NTASKS_PER_NODE="8", SLURM_PROCID="0", SLURM_NODEID="0", SLURM_LOCALID="0")
    env.update(extra)
    return env


def spooled(tmp_path) -> pathlib.Path:
    """sbatch runs a copy of the script from its spool folder, away from the checkout."""
    spool = tmp_path / "spool" / "job4242"
    spool.mkdir(parents=True)
    shutil.copy(SBATCH, spool / "slurm_script")
    return spool / "slurm_script"


def task_lines(tmp_path):
    lines = (tmp_path / "srun.log").read_text().splitlines()
    tasks = [line.split("\t", 1) for line in lines if "\t" in line]
    return [(int(i), argv.rstrip("\037").split("\037")) for i, argv in tasks], lines


def test_launch_scripts_pass_shellcheck():
    for s in SCRIPTS:
        subprocess.run(["bash", "-n", s], check=True)
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed on this machine (bash -n passed)")
    r = subprocess.run(["shellcheck", "-x", *SCRIPTS], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_the_preemption_signal_reaches_every_task():
    directives = [line for line in SBATCH.read_text().splitlines() if line.startswith("#SBATCH --signal")]
    # "B:" would signal only the batch shell, never the srun tasks that save the checkpoint.
    assert directives == ["#SBATCH --signal=TERM@300"]


def test_a_spooled_copy_runs_every_task_with_the_command_and_its_overrides(tmp_path):
    script = spooled(tmp_path)
    r = subprocess.run(["bash", str(script), "configs/sas_small.py", "/ckpt/sas_small",
                        "--config.data.corpus_dir=/data/wiki", "--config.model.dtype=bfloat16"],
                       cwd=ROOT, env=slurm_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    tasks, lines = task_lines(tmp_path)
    assert [i for i, _ in tasks] == list(range(16))  # 2 nodes x 8 tasks
    expected = ["--kill-on-bad-exit=1", "python", "-m", "sas_jax.main", "--config=configs/sas_small.py",
                "--workdir=/ckpt/sas_small", "--config.data.corpus_dir=/data/wiki", "--config.model.dtype=bfloat16"]
    assert all(argv == expected for _, argv in tasks), tasks[0]
    assert "XLA_FLAGS= --xla_gpu_enable_latency_hiding_scheduler=true" in lines  # xla_env.sh was sourced


def test_without_the_checkout_the_job_stops_with_one_line(tmp_path):
    script = spooled(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run(["bash", str(script), "configs/sas_small.py", "/ckpt/x"], cwd=elsewhere,
                       env=slurm_env(tmp_path, SLURM_SUBMIT_DIR=str(elsewhere)), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and not (tmp_path / "srun.log").exists()
    assert r.stderr.count("\n") == 1 and "launch/xla_env.sh not found" in r.stderr and "SAS_JAX_ROOT" in r.stderr
    # SAS_JAX_ROOT points the spooled copy at the checkout from anywhere.
    r = subprocess.run(["bash", str(script), "configs/sas_small.py", "/ckpt/x"], cwd=elsewhere,
                       env=slurm_env(tmp_path, SLURM_SUBMIT_DIR=str(elsewhere), SAS_JAX_ROOT=str(ROOT)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_a_sigterm_to_the_batch_shell_is_forwarded_to_srun(tmp_path):
    held = tmp_path / "srun_started"
    p = subprocess.Popen(["bash", str(spooled(tmp_path)), "configs/sas_small.py", "/ckpt/x"], cwd=ROOT,
                         env=slurm_env(tmp_path, FAKE_SRUN_HOLD=str(held)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not held.exists():
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err  # srun's tasks saved and exited 0: so does the job
    assert "srun got TERM" in (tmp_path / "srun.log").read_text()


@pytest.mark.slow
def test_dry_run_passes_the_overrides_to_the_plan(tmp_path):
    env = slurm_env(tmp_path, DRY_RUN="1", SLURM_NNODES="4", SLURM_JOB_NUM_NODES="4")
    corpus = tmp_path / "corpus"  # what the run checks before it starts: meta.json and its seq_len
    corpus.mkdir()
    (corpus / "meta.json").write_text('{"seq_len": 128, "num_rows": 1000}')
    script = str(spooled(tmp_path))
    r = subprocess.run(["bash", script, "configs/sas_small.py", str(tmp_path / "w"), "--config.batch_size=256",
                        f"--config.data.corpus_dir={corpus}"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "devices: 32 in 32 processes" in r.stdout
    assert "global batch: 256; per host: 64; per process: 8; per device: 8" in r.stdout
    assert f"corpus: {corpus}, 1,000 rows of 128 tokens" in r.stdout
    assert not (tmp_path / "srun.log").exists() and not (tmp_path / "w").exists()
    # Without a corpus the real job would fail at its start: so does the dry run, in one line.
    r = subprocess.run(["bash", script, "configs/sas_small.py", str(tmp_path / "w")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: data.corpus_dir is empty; prepare a corpus with `python -m sas_jax.prepare` and pass "
        "--config.data.corpus_dir=<dir>"], r.stderr[-2000:]
