"""GPU-pod mechanics on CPU: 2 processes × 4 devices vs 1 × 8, elastic N→M restore,
launch scripts and the dry-run plan."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import FAST_COMPILE_FLAGS, ROOT, load_config

from sas_jax import plan
from sas_jax.corruption.store import SampleStore

STEPS = 12
# The two-process runs compile as the rest of the suite (conftest's compile flags and threefry
# lowering, patient collectives), so the comparison with the one-process runs (in this process) is
# like for like and the compiles take half the time.
FAST_COMPILE = (FAST_COMPILE_FLAGS + " --xla_cpu_collective_call_terminate_timeout_seconds=900"
                " --xla_cpu_collective_timeout_seconds=900")


def _args(workdir, corpus):
    return ["--config=configs/sas_small.py:tiny", f"--workdir={workdir}", f"--config.data.corpus_dir={corpus}",
            "--config.model.vocab_size=-1", f"--config.num_train_steps={STEPS}", "--config.ckpt.every_steps=6",
            "--config.log.every_steps=1", "--config.log.tensorboard=False",
            "--config.data.eval_rows=16", "--config.log.eval_every_steps=6"]


def command(workdir, corpus, extra=()):
    """(argv, env) of the two-process run of `_args` (+ `extra` overrides), 4 devices each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAS_")}
    env.update(JAX_PLATFORMS="cpu", PATH=f"{pathlib.Path(sys.executable).parent}:{env['PATH']}",
               NPROC="2", DEVICES="4", XLA_FLAGS=FAST_COMPILE, SAS_JAX_CPU_THREEFRY=os.environ["SAS_JAX_CPU_THREEFRY"])
    cmd = ["bash", "launch/local_multiprocess.sh", "configs/sas_small.py:tiny", str(workdir),
           *_args(workdir, corpus)[2:], *extra]
    return cmd, env


def run_two(workdir, corpus):
    cmd, env = command(workdir, corpus)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def run_one(workdir, corpus):
    """The same run on one process of 8 devices: this one (a reference and a resume; the CLI is
    not what these tests check, so no subprocess start-up)."""
    from sas_jax import train  # noqa: PLC0415

    config = load_config("sas_small", "tiny", [a.removeprefix("--config.") for a in _args(workdir, corpus)[2:]])
    assert len(jax.devices()) == 8
    train.train_and_evaluate(config, str(workdir))


def metrics(workdir):
    """Per-step metrics, the train and `eval/` lines of a step merged."""
    out = {}
    for line in pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines():
        d = json.loads(line)
        out.setdefault(d["step"], {}).update(d)
    return out


def assert_same_losses(a, b, steps):
    for s in steps:
        for k in ("loss", "mlm_loss", "rtd_loss", "mlm_slots", "hit_rate", "grad_norm"):
            assert a[s][k] == pytest.approx(b[s][k], rel=2e-5, abs=1e-5), (s, k, a[s][k], b[s][k])


def store_rows(step_dir):
    """{example id: (count, positions, tokens)} over every process file of a checkpoint."""
    rows = {}
    for f in sorted((step_dir / "store").glob("process_*.npz")):
        z = np.load(f)
        for i, e in enumerate(z["example_ids"]):
            rows[int(e)] = (int(z["count"][i]), z["positions"][i].tolist(), z["tokens"][i].tolist())
    return rows


def truncate_to(workdir, src, step):
    """A copy of `src` as it was right after the checkpoint of `step`."""
    shutil.copytree(src, workdir)
    for d in (workdir / "checkpoints").iterdir():
        if d.name.isdigit() and int(d.name) > step:
            shutil.rmtree(d)
    lines = [ln for ln in (workdir / "metrics.jsonl").read_text().splitlines() if json.loads(ln)["step"] <= step]
    (workdir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def runs(prepared_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("mp")
    run_one(root / "one", prepared_corpus)
    two = run_two(root / "two", prepared_corpus)
    return root, prepared_corpus, two


@pytest.mark.slow
def test_two_processes_train_like_one_process_with_eight_devices(runs):
    root, _, two = runs
    assert "process 0/2" in two.stdout and "process 1/2" in two.stdout  # each prints its own store
    assert_same_losses(metrics(root / "one"), metrics(root / "two"), range(1, STEPS + 1))
    # Held-out evaluation: each process builds its slice of the same held-out batches.
    one, two = metrics(root / "one"), metrics(root / "two")
    assert sorted(s for s in one if "eval/mlm_loss" in one[s]) == [0, 6, 12]
    for s in (0, 6, 12):
        for k in ("eval/mlm_loss", "eval/mlm_accuracy", "eval/mlm_loss_replaced", "eval/rtd_accuracy",
                  "eval/rtd_auc", "eval/rtd_baseline", "eval/unigram_ce"):
            assert one[s][k] == pytest.approx(two[s][k], rel=2e-5, abs=1e-5), (s, k)
    files = sorted(p.name for p in (root / "two" / "checkpoints" / "12" / "store").glob("*.npz"))
    assert files == ["process_00000_of_00002.npz", "process_00001_of_00002.npz"]
    # Each process holds only its own examples: disjoint halves of the single process's set.
    z = [np.load(root / "two" / "checkpoints" / "12" / "store" / f) for f in files]
    assert len(np.intersect1d(z[0]["example_ids"], z[1]["example_ids"])) == 0
    one = np.load(next((root / "one" / "checkpoints" / "12" / "store").glob("*.npz")))
    np.testing.assert_array_equal(np.sort(np.concatenate([x["example_ids"] for x in z])), one["example_ids"])


@pytest.mark.slow
def test_store_repartitions_by_example_id(runs):
    root, _, _ = runs
    saved = store_rows(root / "two" / "checkpoints" / "6")
    assert saved == store_rows(root / "one" / "checkpoints" / "6")  # same samples, either layout
    ids = np.array(sorted(saved))
    merged = SampleStore(ids, max_predictions=6, seq_len=32, vocab_size=300)
    thirds = [SampleStore(ids[i::3], max_predictions=6, seq_len=32, vocab_size=300) for i in range(3)]
    for f in (root / "two" / "checkpoints" / "6" / "store").glob("*.npz"):
        state = dict(np.load(f))
        merged.load_rows(state)
        for t in thirds:
            t.load_rows(state)
    for store in (merged, *thirds):
        pos, tok, count, visited = store.read(store.example_ids)
        for i, e in enumerate(store.example_ids):
            c, p, t = saved[int(e)]
            assert visited[i] == (c != 255)
            assert count[i] == (c if c != 255 else 0)
            assert pos[i].tolist() == p and tok[i].tolist() == t


@pytest.mark.slow
def test_two_process_checkpoint_resumes_on_one_process(runs, capsys):
    root, corpus, _ = runs
    truncate_to(root / "two_to_one", root / "two", 6)
    capsys.readouterr()
    run_one(root / "two_to_one", corpus)
    assert "at step 6" in capsys.readouterr().out
    assert_same_losses(metrics(root / "one"), metrics(root / "two_to_one"), range(7, STEPS + 1))
    assert store_rows(root / "two_to_one" / "checkpoints" / "12") == store_rows(root / "one" / "checkpoints" / "12")


def test_launch_scripts_are_valid_bash():
    scripts = sorted(str(p) for p in (ROOT / "launch").iterdir() if p.suffix in (".sh", ".sbatch"))
    assert len(scripts) >= 3
    for s in scripts:
        subprocess.run(["bash", "-n", s], check=True)
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", "-x", *scripts], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


@pytest.mark.slow
def test_dry_run_plan_for_four_nodes_of_eight_gpus(tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "NODES": "4", "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("SLURM_JOB_NUM_NODES", None)
    corpus = tmp_path / "corpus"  # the dry run checks the corpus as the job would: its meta.json
    corpus.mkdir()
    (corpus / "meta.json").write_text('{"seq_len": 128, "num_rows": 25600000}')
    r = subprocess.run(["bash", "launch/slurm_train.sbatch", "configs/sas_small.py", str(tmp_path / "run"),
                        f"--config.data.corpus_dir={corpus}"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert "devices: 32 in 32 processes" in out
    assert "mesh: data=32 x fsdp=1 x tensor=1 (rules data_parallel)" in out
    assert "global batch: 512; per host: 128; per process: 16; per device: 16" in out
    assert "parameters: 17,585,723" in out
    # the store: 25.6M examples × 61 B over 4 hosts
    p = plan.plan_launch(plan.load_config(str(ROOT / "configs" / "sas_small.py")), nodes=4, gpus_per_node=8,
                  processes_per_node=8, num_examples=25_600_000)
    assert p["host_store_bytes"] == 25_600_000 // 4 * 61
    # one process per node: same mesh and per-host batch, 8 devices per process
    p1 = plan.plan_launch(plan.load_config(str(ROOT / "configs" / "sas_small.py")), nodes=4, gpus_per_node=8,
                   processes_per_node=1, num_examples=25_600_000)
    assert p1["mesh"] == p["mesh"] and p1["per_host_batch"] == 128 and p1["per_process_batch"] == 128


def _real_param_count(config, vocab):
    """Parameters of the model the trainer builds, initialised for real (not from shapes)."""
    from sas_jax import objectives, train_state  # noqa: PLC0415

    ids, mask, pos = train_state.dummy_inputs(1, config.seq_len, config.sas.max_predictions)
    params = objectives.build(config, vocab).model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                                                       ids, mask, pos, deterministic=True)["params"]
    return train_state.param_count(params)


@pytest.mark.slow
def test_plan_counts_the_model_the_trainer_builds():
    """BERT (and the other rows) have exactly the parameters of `objectives.build(...).model`; SAS adds the RTD head."""
    vocab = 300
    counts = {}
    for name in ("bert_small", "unig_mlm", "sas_small", "electra_small"):
        config = load_config(name, "tiny")
        counts[name] = plan.param_count(config, vocab)
        assert counts[name] == _real_param_count(config, vocab), name
    h = load_config("sas_small", "tiny").model.hidden_size
    assert load_config("bert_small", "tiny").model.hidden_size == h
    rtd_head = (h * h + h) + (h + 1)  # dense H->H, dense_prediction H->1
    assert counts["sas_small"] - counts["bert_small"] == rtd_head
    assert counts["unig_mlm"] == counts["bert_small"]  # MLM only: no RTD head either


def test_plan_mesh_is_the_mesh_make_mesh_builds():
    from sas_jax import sharding  # noqa: PLC0415

    config = plan.load_config(str(ROOT / "configs" / "sas_small.py"))
    for data, fsdp, tensor in ((-1, 1, 1), (2, -1, 1), (2, 2, 2), (1, 4, -1)):
        config.mesh.data, config.mesh.fsdp, config.mesh.tensor = data, fsdp, tensor
        sizes = sharding.mesh_axis_sizes(config.mesh, 8)
        assert sizes == dict(sharding.make_mesh(config.mesh, jax.devices()[:8]).shape)
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = -1, 3, 1
    with pytest.raises(ValueError, match="cannot be split"):
        sharding.mesh_axis_sizes(config.mesh, 8)


def _process_pid(launcher_pid, index):
    """The pid of process `index` among the launcher's children (from their SAS_PROCESS_ID)."""
    for child in pathlib.Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split():
        try:
            environ = pathlib.Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SAS_PROCESS_ID={index}".encode() in environ:
            return int(child)
    return None


@pytest.mark.slow
def test_a_lost_process_stops_the_others_in_one_line_and_the_rerun_resumes(runs):
    """Two processes resume the one-process checkpoint of step 6; once they train, process 1 is
    killed. Process 0, left waiting in a collective, stops within seconds with one line naming
    process 1 (its own peer watch: the launcher's GRACE is longer here), the launcher names it too,
    and the re-run on two processes resumes the one-process checkpoint (elastic 1 -> 2) exactly:
    the same losses and store as the one-process run."""
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    root, corpus, _ = runs
    workdir = root / "lost"
    truncate_to(workdir, root / "one", 6)
    # The runs' own command (so their compiled steps are reused), with synchronous saves.
    cmd, env = command(workdir, corpus, ["--config.ckpt.async_save=False"])
    env.update(SAS_PEER_TIMEOUT="5", GRACE="60")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def trained_past_6():  # process 0 logged a step after the resumed one: both processes are in the loop
        lines = (workdir / "metrics.jsonl").read_text().splitlines()
        return any(json.loads(line)["step"] > 6 for line in lines if line.endswith("}"))

    try:
        deadline = time.time() + 400
        while not trained_past_6() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        victim = _process_pid(proc.pid, 1)
        assert trained_past_6() and victim is not None
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        out, err = proc.communicate(timeout=60)
        stopped_after = time.time() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 137 and stopped_after < 30, (proc.returncode, stopped_after, err[-3000:])
    survivor, launcher = sorted(line for line in err.splitlines() if "process 1" in line)  # two lines
    assert survivor.startswith("error: process 0/2: process 1 of the run is gone (no heartbeat for 5 s")
    assert launcher == (f"local_multiprocess.sh: process 1 (pid {victim}) was killed by signal 9 (KILL); stopping "
                        "the other processes (the re-run resumes from the newest checkpoint)")
    assert "Traceback" not in out + err
    saved = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved == 6  # the killed run saved nothing after its resume
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert f"at step {saved}" in again.stdout
    assert (workdir / "checkpoints" / str(STEPS)).is_dir()
    assert_same_losses(metrics(root / "one"), metrics(workdir), range(7, STEPS + 1))
    assert store_rows(workdir / "checkpoints" / "12") == store_rows(root / "one" / "checkpoints" / "12")
