"""The prepared device check: one call on a fresh GPU machine, at most 8 minutes.

    python benchmarks/gpu_check.py [--out=DIR] [--budget_s=480]   # DIR defaults to $OUT, else gpu_check_out
    python benchmarks/gpu_check.py --tiny                         # the same phases on the CPU, tiny shapes

Run it through the device tool from the repository root (a copy of the working tree),
carrying the pure-Python wheels the image lacks (`.whl/`, git-ignored):

    pip download --no-deps ml_collections tensorboardX -d .whl/       # once, here
    run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=600)

Phases, in order, each in its own process (its GPU memory freed when it ends), each
bounded by what is left of `--budget_s`; its log goes to `<out>/<phase>.log`:

1. `env`: Python, jax/jaxlib/flax/optax/orbax/torch/transformers versions, the devices,
   `nvidia-smi -L` (`env.json`).
2. `checks` (`checks.json`): cuDNN against XLA attention with padding masks (forward and
   gradients, bf16); the bf16 train step (parameters and optimizer state float32, encoder
   matmuls bf16, MLM logits / log-softmax / sampler float32, a finite loss); the sampler at
   batch 512 x 20 slots x V = 30,522 (its law against the softmax, its time beside
   `jax.random.categorical`).
3. `step`: `benchmarks/step_throughput.py` over every Small row at batch 512, bf16, with the
   store (`step.json`); a batch that does not fit is retried at 256.
4. `hf`: `benchmarks/hf_baseline.py --compile=on` for SAS at the same shape, `--compare`d with
   `step.json` (`hf.json`); BERT's and ELECTRA's peers come last (`hf_more`, `hf_more.json`),
   with what the training run leaves.
5. `train`: SAS-Small (bf16, batch 512) on a synthetic Markov corpus for ~2 minutes (the
   step count from `step.json`'s measured step time), held-out evaluation at the middle and
   the end, a 5-step `jax.profiler` trace (`log.profile_steps`); `train/metrics.jsonl`,
   `train/config.json` and `train/profile/` are copied to `<out>`.

The last lines printed are the summary (`summary.json`): every check's verdict, our
tokens/s, MFU and the SAS/BERT and SAS/ELECTRA step-time ratios, ours / HF tokens/s,
and the training run's held-out losses. Nothing is fetched from the network: if
`ml_collections` or `tensorboardX` is missing, the wheels in `.whl/` are installed with
`pip install --no-index --no-deps` (else put on `sys.path`), and their names are printed
if absent. `--tiny` runs every phase on the CPU at the tiny shapes in seconds
(tests/test_gpu_check.py); `--in_process` runs the phases in this process (the test).
"""
from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import json
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WHEELS = ("ml_collections", "tensorboardX")  # pure Python, absent from the GPU image
SMALL_ROWS = ("sas_small", "sasc_small", "bert_small", "electra_small", "deberta_small", "sasda_small")
HF_ROWS = ("sas_small", "bert_small", "electra_small")
PHASES = ("env", "checks", "step", "hf", "train", "hf_more")
# Seconds each phase may take at most on the GPU (what is left of --budget_s caps them too).
GPU_BUDGETS = {"env": 30, "checks": 60, "step": 200, "hf": 100, "train": 200, "hf_more": 150}
TRAIN_SECONDS = 120  # SAS-Small training time; compile, evaluations and the save come on top
PROFILE_STEPS = "11,15"  # after compilation and the first log line


# ----------------------------------------------------------------------------- wheels
def ensure_wheels(log=print) -> list:
    """Makes the carried wheels importable; returns the modules that had to come from `.whl/`."""
    missing = [m for m in WHEELS if importlib.util.find_spec(m) is None]
    if not missing:
        return []
    wheels = sorted(glob.glob(str(ROOT / ".whl" / "*.whl")))
    if not wheels:
        raise SystemExit(f"gpu_check: {', '.join(missing)} missing and no wheels in {ROOT / '.whl'}; carry them: "
                         f"pip download --no-deps {' '.join(WHEELS)} -d .whl/ then run with carry=['.whl']")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "-q", *wheels],
                       capture_output=True, text=True)
    if r.returncode != 0:  # no pip, or a read-only site-packages: import the wheels as zips
        log(f"pip install --no-index failed ({r.stderr.strip()[-200:]}); adding the wheels to sys.path")
        sys.path[:0] = wheels
        os.environ["PYTHONPATH"] = os.pathsep.join([*wheels, os.environ.get("PYTHONPATH", "")])
    importlib.invalidate_caches()
    still = [m for m in missing if importlib.util.find_spec(m) is None]
    if still:
        raise SystemExit(f"gpu_check: {', '.join(still)} still missing after installing {wheels}; carry its wheel")
    log(f"wheels: {', '.join(missing)} from {', '.join(os.path.basename(w) for w in wheels)}")
    return missing


# ----------------------------------------------------------------------------- phase 1: env
def phase_env(args) -> dict:
    import jax  # noqa: PLC0415

    versions = {"python": platform.python_version()}
    for mod in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "numpy", "torch", "transformers",
                "ml_collections", "tensorboardX"):
        try:
            versions[mod] = getattr(importlib.import_module(mod), "__version__", "?")
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            versions[mod] = f"missing ({type(e).__name__})"
    out = {"versions": versions, "backend": jax.default_backend(),
           "devices": [f"{d.id}: {d.device_kind} ({d.platform})" for d in jax.devices()],
           "xla_flags": os.environ.get("XLA_FLAGS", ""), "cpu_count": os.cpu_count()}
    if shutil.which("nvidia-smi"):
        r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        out["nvidia_smi"] = r.stdout.strip().splitlines()
    try:
        import torch  # noqa: PLC0415
        out["torch_cuda"] = torch.cuda.is_available() and torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        out["torch_cuda"] = None
    print(json.dumps(out, indent=1), flush=True)
    return out


# ----------------------------------------------------------------------------- phase 2: checks
def check_attention(tiny: bool) -> dict:
    """cuDNN (GPU; on CPU the same `jax.nn.dot_product_attention` call on XLA) against the XLA
    path of `models/attention.py`, bf16, padded keys: forward and q/k/v gradients."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from sas_jax.models import attention  # noqa: PLC0415

    gpu = jax.default_backend() == "gpu"
    b, length, n, d = (4, 16, 2, 16) if tiny else (8, 128, 4, 64)
    keys = jax.random.split(jax.random.key(0), 3)
    q, k, v = (jax.random.normal(kk, (b, length, n, d), jnp.float32).astype(jnp.bfloat16) for kk in keys)
    lengths = jnp.array([length, length // 2, length - 3, 5, *([length] * (b - 4))][:b])
    mask = (jnp.arange(length)[None, :] < lengths[:, None]).astype(jnp.int32)
    scale = 1.0 / d ** 0.5
    impl = "cudnn" if gpu else None

    def fused(q, k, v):
        return attention.fused_attention(q, k, v, mask, scale=scale, implementation=impl)

    def xla(q, k, v):
        return attention.dot_product_attention(q, k, v, mask, impl="xla", scale=scale)

    def loss(f):
        return lambda q, k, v: jnp.sum(f(q, k, v).astype(jnp.float32) * jnp.cos(jnp.arange(d, dtype=jnp.float32))[None, None, None, :])

    out_f, out_x = jax.jit(fused)(q, k, v), jax.jit(xla)(q, k, v)
    g_f = jax.jit(jax.grad(loss(fused), argnums=(0, 1, 2)))(q, k, v)
    g_x = jax.jit(jax.grad(loss(xla), argnums=(0, 1, 2)))(q, k, v)
    diff = float(jnp.max(jnp.abs(out_f.astype(jnp.float32) - out_x.astype(jnp.float32))))
    gdiff = max(float(jnp.max(jnp.abs(a.astype(jnp.float32) - c.astype(jnp.float32)))) for a, c in zip(g_f, g_x))
    gscale = max(float(jnp.max(jnp.abs(c.astype(jnp.float32)))) for c in g_x)
    # bf16 outputs: a few ulps of values of size ~1 (2^-8 = 0.004 each)
    ok = diff < 0.03 and gdiff < 0.03 * max(gscale, 1.0)
    return {"ok": ok, "implementation": impl or "xla (CPU)", "shape": [b, length, n, d],
            "lengths": [int(x) for x in lengths], "max_abs_diff": diff, "grad_max_abs_diff": gdiff,
            "grad_max_abs": gscale}


def check_bf16_step(tiny: bool) -> dict:
    """The bf16 SAS step: dtypes in its jaxpr (as tests/test_bf16.py) and one finite step."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from sas_jax import config_lib, train  # noqa: PLC0415
    from sas_jax.data.synthetic import markov_corpus  # noqa: PLC0415
    from sas_jax.models.mixed import jaxpr_equations  # noqa: PLC0415

    cfg = config_lib.load_config("sas_small:tiny" if tiny else "sas_small",
                                 ["model.dtype=bfloat16", "data.eval_rows=0"] + ([] if tiny else ["batch_size=64"]))
    corpus = markov_corpus(2 * cfg.batch_size, cfg.seq_len, cfg.model.vocab_size, seed=0)
    t = train.Trainer(cfg, None, corpus=corpus, devices=jax.devices()[:1])
    params_f32 = all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves((t.state.params, t.state.opt_state))
                     if jnp.issubdtype(x.dtype, jnp.floating))
    batch, _ = t.make_batch(0)
    eqns = list(jaxpr_equations(jax.make_jaxpr(t.step_fn)(t.state, batch, t.step_key).jaxpr))
    dots = [(w, e) for w, e in eqns if e.primitive.name == "dot_general"]
    not_bf16 = sorted({w for w, e in dots if "dense_prediction" not in w
                       and any(v.aval.dtype != jnp.bfloat16 for v in e.invars)})
    vocab = t.vocab
    over_v = [e for _, e in eqns if e.primitive.name in ("exp", "log", "reduce_max", "cumsum")
              and any(v.aval.shape[-1:] == (vocab,) for v in e.invars if hasattr(v, "aval"))]
    softmax_f32 = bool(over_v) and all(v.aval.dtype == jnp.float32 for e in over_v for v in e.invars
                                       if hasattr(v, "aval") and v.aval.shape[-1:] == (vocab,))
    t0 = time.perf_counter()
    t.state, metrics, sampled = t.step_fn(t.state, batch, t.step_key)
    loss = float(jax.device_get(metrics["loss"]))
    first = time.perf_counter() - t0
    ok = params_f32 and not not_bf16 and softmax_f32 and loss == loss and abs(loss) < 1e4
    return {"ok": bool(ok), "params_and_opt_state_f32": params_f32, "non_bf16_matmuls": not_bf16,
            "vocab_softmax_f32": softmax_f32, "matmuls": len(dots), "loss": loss, "batch": int(cfg.batch_size),
            "first_step_s": first}


def check_sampler(tiny: bool) -> dict:
    """`losses.sample_tokens` at batch 512 x 20 slots x V: the draws' law against the softmax
    (one logit row for every slot; vocabulary cut into 10 bins of equal mass: sampling noise
    alone gives a total variation of ~0.012 at 10,240 draws), and its time."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from sas_jax import losses  # noqa: PLC0415

    b, p, v = (512, 20, 512) if tiny else (512, 20, 30522)
    row = jax.random.normal(jax.random.key(0), (v,), jnp.float32) * 2.0
    logits = jnp.broadcast_to(row, (b, p, v)) + 0.0
    sample = jax.jit(lambda key, x: losses.sample_tokens(key, x, 1.0))
    categorical = jax.jit(lambda key, x: jax.random.categorical(key, x, axis=-1))
    draws = np.asarray(sample(jax.random.key(1), logits)).ravel()
    probs = np.asarray(jax.nn.softmax(row), np.float64)
    order = np.argsort(-probs)
    edges = np.searchsorted(np.cumsum(probs[order]), np.linspace(0, 1, 11)[1:-1])
    bin_of = np.empty(v, np.int64)
    bin_of[order] = np.searchsorted(edges, np.arange(v), side="right")
    expected = np.bincount(bin_of, weights=probs, minlength=10)
    observed = np.bincount(bin_of[draws], minlength=10) / draws.size
    tv = 0.5 * float(np.abs(observed - expected).sum())

    def timed(f):
        jax.block_until_ready(f(jax.random.key(2), logits))
        t0 = time.perf_counter()
        for i in range(5):
            out = f(jax.random.key(3 + i), logits)
        jax.block_until_ready(out)
        return 1e3 * (time.perf_counter() - t0) / 5

    return {"ok": bool(tv < 0.035 and draws.min() >= 0 and draws.max() < v), "shape": [b, p, v],
            "binned_tv": tv, "ms_inverse_cdf": timed(sample), "ms_categorical": timed(categorical)}


def phase_checks(args) -> dict:
    out = {}
    for name, fn in (("attention", check_attention), ("bf16_step", check_bf16_step), ("sampler", check_sampler)):
        t0 = time.perf_counter()
        try:
            out[name] = fn(args.tiny)
        except Exception as e:  # noqa: BLE001 - one failed check must not hide the others
            out[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000]}
        out[name]["seconds"] = time.perf_counter() - t0
        print(f"check {name}: {'ok' if out[name]['ok'] else 'FAILED'} {json.dumps(out[name])}", flush=True)
    return out


# ----------------------------------------------------------------------------- phases 3-4: timing
def step_argv(args, out: str, batch: int | None = None) -> list:
    if args.tiny:
        return ["--configs=sas_small,bert_small,electra_small", "--variant=tiny", "--steps=1", "--repeats=1",
                "--warmup=0", "--num_devices=1", "--with-store", f"--json={out}"]
    return [f"--configs={','.join(SMALL_ROWS)}", f"--batch={batch or 512}", "--dtype=bf16", "--steps=10",
            "--repeats=3", "--warmup=2", "--with-store", f"--json={out}"]


def hf_argv(args, out: str, compare: str, batch: int, rows=HF_ROWS[:1]) -> list:
    """The HF peers of `rows` (SAS first, alone: the 2x target's denominator; BERT and ELECTRA later)."""
    cmp = [f"--compare={compare}"] if os.path.exists(compare) else []
    if args.tiny:
        return [f"--configs={','.join(rows)}", "--variant=tiny", "--steps=1", "--repeats=1", "--warmup=0",
                "--compile=off", "--device=cpu", f"--json={out}", *cmp]
    return [f"--configs={','.join(rows)}", f"--batch={batch}", "--dtype=bf16", "--steps=10", "--repeats=3",
            "--warmup=2", "--compile=on", f"--json={out}", *cmp]


# ----------------------------------------------------------------------------- phase 5: train
def train_steps(args, step_json: str) -> tuple[int, float | None]:
    """Steps that fill `TRAIN_SECONDS` at the step time `step.json` measured for SAS (with the store)."""
    if args.tiny:
        return 16, None
    try:
        with open(step_json) as f:
            r = next(r for r in json.load(f)["results"] if r["config"] == "sas_small")
        ms = r.get("with_store_ms_per_step") or r["ms_per_step"]
        return int(min(20_000, max(100, args.train_seconds * 1e3 / ms))), ms
    except (OSError, StopIteration, KeyError, ValueError):
        return 1000, None


def phase_train(args) -> dict:
    from sas_jax import config_lib, train  # noqa: PLC0415
    from sas_jax.data.synthetic import markov_corpus  # noqa: PLC0415

    steps, ms = train_steps(args, os.path.join(args.out, "step.json"))
    half = max(1, steps // 2)
    overrides = [f"num_train_steps={steps}", f"log.eval_every_steps={half}", f"ckpt.every_steps={steps}",
                 "ckpt.keep=1", f"log.profile_steps={'5,9' if args.tiny else PROFILE_STEPS}"]
    if args.tiny:
        cfg = config_lib.load_config("sas_small:tiny", overrides + ["data.eval_rows=32", "log.every_steps=4",
                                                                     "log.tensorboard=false"])
        rows = 160
    else:
        cfg = config_lib.load_config("sas_small", overrides + [
            f"batch_size={args.batch}", "model.dtype=bfloat16", "data.eval_rows=2048", "log.every_steps=100",
            f"opt.warmup_steps={max(10, steps // 10)}", f"sas.warmup_steps={max(10, steps // 10)}"])
        rows = 16 * args.batch + 2048  # 16 steps per epoch: SAS reads its own samples from epoch 2 on
    corpus = markov_corpus(rows, cfg.seq_len, cfg.model.vocab_size, seed=0, active_tokens=2000 if not args.tiny else 0)
    workdir = args.train_workdir or tempfile.mkdtemp(prefix="gpu_check_train_")
    print(f"train: {steps} steps of sas_small (step time {ms} ms from step.json), corpus {rows} rows, "
          f"workdir {workdir}", flush=True)
    t0 = time.perf_counter()
    last = train.train_and_evaluate(cfg, workdir, corpus=corpus)
    seconds = time.perf_counter() - t0
    dest = os.path.join(args.out, "train")
    os.makedirs(dest, exist_ok=True)
    for name in ("metrics.jsonl", "config.json"):
        if os.path.exists(os.path.join(workdir, name)):
            shutil.copy(os.path.join(workdir, name), dest)
    if os.path.isdir(os.path.join(workdir, "profile")):
        shutil.copytree(os.path.join(workdir, "profile"), os.path.join(dest, "profile"), dirs_exist_ok=True)
    evals = []
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for r in map(json.loads, f):
            if "eval/mlm_loss" in r:
                evals.append({"step": r["step"], "mlm_loss": r["eval/mlm_loss"], "unigram_ce": r.get("eval/unigram_ce")})
    traces = [str(p.relative_to(dest)) for p in pathlib.Path(dest, "profile").rglob("*")
              if p.name.endswith((".xplane.pb", ".trace.json.gz"))]
    if not args.train_workdir:
        shutil.rmtree(workdir, ignore_errors=True)  # checkpoints: ~170 MB at Small, not worth carrying back
    return {"steps": steps, "seconds": seconds, "eval": evals, "profile_files": traces,
            "last": {k: v for k, v in last.items() if isinstance(v, (int, float))}}


# ----------------------------------------------------------------------------- orchestration
def _subprocess(cmd: list, log_path: str, timeout: float, env=None) -> int:
    """Runs `cmd`, its output to `log_path` (and the tail to our stdout); SIGTERM at the timeout
    (the trainer saves and stops), then SIGKILL 60 s later. Returns the exit status (124: timed out)."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        try:
            rc = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rc = 124
    return rc


def _tail(path: str, lines: int = 12) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Runner:
    def __init__(self, args):
        self.args, self.t0 = args, time.perf_counter()
        self.status: dict = {}

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def budget(self, phase: str) -> float:
        cap = 120.0 if self.args.tiny else GPU_BUDGETS[phase]
        later = sum(min(30.0, GPU_BUDGETS[p]) for p in PHASES[PHASES.index(phase) + 1:] if p not in self.args.skip)
        return max(0.0, min(cap, self.left() - (0 if self.args.tiny else later)))

    def run_phase(self, phase: str, fn_in_process, cmd=None) -> None:
        """One phase: in this process (`--in_process`, the test) or as a subprocess with its budget."""
        if phase in self.args.skip:
            self.status[phase] = {"rc": None, "skipped": "--skip"}
            return
        budget = self.budget(phase)
        if budget < 5:
            self.status[phase] = {"rc": None, "skipped": f"no time left ({self.left():.0f} s)"}
            print(f"== {phase}: skipped, no time left", flush=True)
            return
        log_path = os.path.join(self.args.out, f"{phase}.log")
        print(f"== {phase} (budget {budget:.0f} s, {self.left():.0f} s left)", flush=True)
        t = time.perf_counter()
        if self.args.in_process:
            rc, result = 0, None
            try:
                result = fn_in_process()
            except Exception as e:  # noqa: BLE001 - reported in the summary
                rc, result = 1, {"error": f"{type(e).__name__}: {e}"}
                print(f"{phase} failed: {result['error']}", flush=True)
            if result is not None and phase in ("env", "checks", "train"):
                with open(os.path.join(self.args.out, f"{phase}.json"), "w") as f:
                    json.dump(result, f, indent=1)
        else:
            rc = _subprocess(cmd, log_path, budget, env={**os.environ, **self.env()})
            print(_tail(log_path), end="", flush=True)
        self.status[phase] = {"rc": rc, "seconds": round(time.perf_counter() - t, 1)}
        print(f"== {phase}: exit {rc} in {time.perf_counter() - t:.0f} s", flush=True)

    def env(self) -> dict:
        # One persistent compilation cache for every phase's process (a resumed check skips compiles).
        return {"JAX_COMPILATION_CACHE_DIR": os.environ.get("JAX_COMPILATION_CACHE_DIR",
                                                            os.path.join(tempfile.gettempdir(), "sas_jax_gpu_check_jax"))}


def self_cmd(args, phase: str) -> list:
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), f"--phase={phase}", f"--out={args.out}",
           f"--batch={args.batch}", f"--train_seconds={args.train_seconds}"]
    return cmd + (["--tiny"] if args.tiny else [])


def run_all(args) -> dict:
    os.makedirs(args.out, exist_ok=True)
    runner = Runner(args)
    step_json, hf_json = os.path.join(args.out, "step.json"), os.path.join(args.out, "hf.json")
    runner.run_phase("env", lambda: phase_env(args), self_cmd(args, "env"))
    runner.run_phase("checks", lambda: phase_checks(args), self_cmd(args, "checks"))

    from benchmarks import step_throughput  # noqa: PLC0415 (after the wheels; jax only then)

    def step_cmd(batch):
        return [sys.executable, str(ROOT / "benchmarks" / "step_throughput.py"), *step_argv(args, step_json, batch)]

    runner.run_phase("step", lambda: step_throughput.main(step_argv(args, step_json)), step_cmd(args.batch))
    if not args.in_process and runner.status["step"].get("rc") not in (0, None) and not args.tiny \
            and "RESOURCE_EXHAUSTED" in _tail(os.path.join(args.out, "step.log"), 400) and runner.left() > 120:
        args.batch //= 2
        print(f"step: out of memory at batch {2 * args.batch}; again at {args.batch}", flush=True)
        runner.run_phase("step", None, step_cmd(args.batch))

    def hf_phase(phase, out, rows):
        def in_process():
            from benchmarks import hf_baseline  # noqa: PLC0415
            return hf_baseline.main(hf_argv(args, out, step_json, args.batch, rows))
        runner.run_phase(phase, in_process, [sys.executable, str(ROOT / "benchmarks" / "hf_baseline.py"),
                                             *hf_argv(args, out, step_json, args.batch, rows)])

    hf_phase("hf", hf_json, HF_ROWS[:1])
    # Training before the other peers: what is left after it goes to BERT's and ELECTRA's.
    args.train_seconds = min(args.train_seconds, max(10.0, runner.left() - 80 - 30))
    runner.run_phase("train", lambda: phase_train(args), self_cmd(args, "train"))
    hf_phase("hf_more", os.path.join(args.out, "hf_more.json"), HF_ROWS[1:])
    summary = summarize(args, runner)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print_summary(summary)
    return summary


def summarize(args, runner) -> dict:
    out = {"out": args.out, "tiny": args.tiny, "wall_s": round(time.perf_counter() - runner.t0, 1),
           "phases": runner.status}
    env = _read_json(os.path.join(args.out, "env.json")) or {}
    out["devices"], out["versions"] = env.get("devices"), env.get("versions")
    checks = _read_json(os.path.join(args.out, "checks.json")) or {}
    out["checks"] = {k: bool(v.get("ok")) for k, v in checks.items()}
    step = _read_json(os.path.join(args.out, "step.json"))
    if step:
        out["device_kind"] = step["device_kind"]
        out["ours"] = {r["config"]: {"tokens_per_s": r["tokens_per_s"], "ms_per_step": r["ms_per_step"], "mfu": r["mfu"],
                                     "with_store_ms_per_step": r.get("with_store_ms_per_step"),
                                     "xla_over_model_flops": r.get("xla_over_model_flops"), "batch": r["batch"]}
                       for r in step["results"]}
        out["ratios"] = {f"{q['numerator']} / {q['denominator']}": {"ratio": q["step_time_ratio"], "target": q["target"]}
                         for q in step["ratios"]}
    for name in ("hf.json", "hf_more.json"):
        hf = _read_json(os.path.join(args.out, name))
        if hf:
            out.setdefault("hf", {}).update({f"{r['config']} ({'compile' if r['compile'] else 'eager'})":
                                             {"tokens_per_s": r["tokens_per_s"], "mfu": r["mfu"]} for r in hf["results"]})
            out.setdefault("ours_over_hf", {}).update({
                f"{c['config']} ({'compile' if c['compile'] else 'eager'})": c["tokens_per_s_ratio"]
                for c in hf.get("comparison", [])})
    train = _read_json(os.path.join(args.out, "train.json"))
    if train:
        out["train"] = {k: train.get(k) for k in ("steps", "seconds", "eval", "profile_files", "error")}
    return out


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def print_summary(s: dict) -> None:
    lines = ["", "==== gpu_check summary " + "=" * 40,
             f"device: {s.get('device_kind') or s.get('devices')}; wall {s['wall_s']} s; out {s['out']}",
             "phases: " + ", ".join(f"{k} {v.get('rc') if v.get('rc') is not None else v.get('skipped')}"
                                    for k, v in s["phases"].items()),
             "checks: " + (", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in s.get("checks", {}).items()) or "none")]
    for name, r in (s.get("ours") or {}).items():
        store = f", +store {r['with_store_ms_per_step']:.2f} ms" if r.get("with_store_ms_per_step") else ""
        xla = f", XLA/model FLOPs {r['xla_over_model_flops']:.2f}" if r.get("xla_over_model_flops") else ""
        lines.append(f"ours {name}: {r['tokens_per_s']:,.0f} tok/s, {r['ms_per_step']:.2f} ms/step (B {r['batch']}), "
                     f"MFU {_pct(r['mfu'])}{store}{xla}")
    for k, r in (s.get("ratios") or {}).items():
        tgt = "" if r["target"] is None else f" (target <= {r['target']})"
        lines.append(f"step time {k} = {r['ratio']:.3f}{tgt}")
    for k, r in (s.get("hf") or {}).items():
        lines.append(f"HF {k}: {r['tokens_per_s']:,.0f} tok/s, MFU {_pct(r['mfu'])}")
    for k, r in (s.get("ours_over_hf") or {}).items():
        lines.append(f"ours / HF {k} tokens/s = {r:.3f} (target >= 2 for sas_small compile)")
    t = s.get("train")
    if t:
        ev = "; ".join(f"step {e['step']}: {e['mlm_loss']:.3f} (unigram {e['unigram_ce']:.3f})"
                       for e in t.get("eval") or [] if e.get("unigram_ce") is not None)
        lines.append(f"train: {t.get('steps')} steps in {t.get('seconds') or 0:.0f} s; held-out MLM {ev or 'n/a'}; "
                     f"profile {len(t.get('profile_files') or [])} file(s) {t.get('error') or ''}")
    print("\n".join(lines), flush=True)


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="output folder (default $OUT)")
    ap.add_argument("--budget_s", type=float, default=480.0, help="wall-clock budget of the whole check")
    ap.add_argument("--tiny", "--dry_run", dest="tiny", action="store_true", help="CPU, tiny shapes, seconds")
    ap.add_argument("--in_process", action="store_true", help="run the phases in this process (tests)")
    ap.add_argument("--skip", default="", help=f"comma-separated phases to skip: {','.join(PHASES)}")
    ap.add_argument("--batch", type=int, default=512, help="batch of the timing and training phases")
    ap.add_argument("--train_seconds", type=float, default=TRAIN_SECONDS, help="training time of the train phase")
    ap.add_argument("--train_workdir", default="", help="keep the training run here (default: a removed temp dir)")
    ap.add_argument("--phase", default="", choices=("", *PHASES), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    args.out = os.path.abspath(args.out)
    if args.tiny and not args.in_process:
        os.environ["JAX_PLATFORMS"] = "cpu"
    ensure_wheels()
    if args.phase:  # a subprocess of run_all: one phase, its JSON beside the others
        result = {"env": phase_env, "checks": phase_checks, "train": phase_train}[args.phase](args)
        with open(os.path.join(args.out, f"{args.phase}.json"), "w") as f:
            json.dump(result, f, indent=1)
        return result
    return run_all(args)


if __name__ == "__main__":
    main()
