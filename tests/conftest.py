"""Test setup: 8 fake CPU devices (so sharded paths run), strict JAX flags."""
import os

# 8 fake CPU devices so sharded code paths run. Compiling the tiny models dominates the suite on
# 2 cores: LLVM optimisation level 0 halves it, and XLA:CPU's older loop emitter instead of its
# fusion emitters cuts the rest by about a fifth, and one LLVM module per program instead of
# parallel codegen's split about a sixth more when both workers compile at once (same results;
# tests, not runs, use them). Tests that run hundreds of steps compile their step at XLA's usual
# level instead (`optimized_compile`).
# The fake devices' collectives wait up to 5 minutes for each other (XLA's default, 40 s, aborts
# the process when two test workers and their subprocesses share 2 busy cores); a longer wait is
# a deadlock, and the abort ends it before pytest-timeout's 10 minutes (pytest.ini).
FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
                     " --xla_cpu_parallel_codegen_split_count=1")  # also for subprocesses
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8 "
                           + FAST_COMPILE_FLAGS + " --xla_cpu_collective_call_terminate_timeout_seconds=300"
                           " --xla_cpu_collective_timeout_seconds=300").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# JAX's own (rolled) CPU lowering of threefry: the tests' runs are short, so its shorter compiles
# win; the trainer's default unrolls it (same bits, faster steps: `sas_jax.startup`).
os.environ.setdefault("SAS_JAX_CPU_THREEFRY", "rolled")
# Identical computations compiled by different tests are compiled once, also in the CLI
# subprocesses the tests start (they inherit these variables; jax reads them at import).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "jax"))
# Every executable, however quick to compile: the CLI subprocesses and the other worker reuse
# the small ones too (six subprocess-heavy test files, empty cache as in CI: 1 min 54 s -> 1 min 43 s).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pathlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_threefry_partitionable", True)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(name: str):
    """`benchmarks/<name>.py`, a script, imported as a module (its `main(argv)` and helpers)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(name: str, arg: str | None = "tiny", overrides=()):
    """`configs/<name>.py` → get_config(arg) (+ "a.b=v" overrides), as the CLI would load it."""
    from sas_jax import config_lib  # noqa: PLC0415

    return config_lib.load_config(f"{name}:{arg}" if arg else name, overrides)


def override_text(value) -> str:
    """A Python value as the text `config_lib.override` parses (bools, tuples, numbers, str)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(override_text(v) for v in value)
    return str(value)


def make_config(name: str, variant: str | None = "tiny", **overrides):
    """`configs/<name>.py:<variant>` with keyword overrides; dotted keys go through **{...},
    e.g. make_config("sas_small", batch_size=16, **{"opt.learning_rate": 1e-3})."""
    return load_config(name, variant, [f"{k}={override_text(v)}" for k, v in overrides.items()])


# The test files that take longest (measured on 2 idle cores, empty compilation cache: test_train
# ~135 s, test_multiprocess ~75 s, the rest 30-50 s), longest first. xdist hands whole files to
# the workers in collection order (`--dist loadfile --no-loadscope-reorder`, pytest.ini), so these
# start first and the short files fill in at the end: the two workers finish together instead of
# one running a long file alone. A stale list changes only that balance, never what runs.
LONGEST_FIRST = ("test_train.py", "test_multiprocess.py", "test_run_promises.py", "test_configs.py",
                 "test_study.py", "test_evaluation.py", "test_gpu_check.py", "test_quiet_failures.py",
                 "glue/test_glue_notebooks.py", "test_cli_errors.py", "convert/test_convert_cli.py",
                 "models/test_electra_da.py", "convert/test_hf_export.py", "test_train_step.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def key(item):
        return rank.get(item.path.relative_to(ROOT / "tests").as_posix(), len(rank))

    items.sort(key=key)  # stable: each file keeps its order, the other files theirs


@pytest.fixture
def optimized_compile(monkeypatch):
    """The model functions this test jits (train step, held-out sums: `sharding.jit_with_rules`)
    compile at XLA's usual optimisation level, not the suite's level 0: for a test that runs
    hundreds of steps the faster step wins (the tiny step at batch 32: 36 -> 14 ms, for about
    1 s more compile). Results may differ from a level-0 run in the last bits, so the steps this
    test builds stay out of the trainer's kept steps (`train._STEP_FNS`), which later tests reuse."""
    from sas_jax import sharding, train  # noqa: PLC0415

    jit_with_rules = sharding.jit_with_rules

    def optimized(fn, mesh, rules, **jit_kwargs):
        return jit_with_rules(fn, mesh, rules, compiler_options={"xla_backend_optimization_level": 2}, **jit_kwargs)

    monkeypatch.setattr(sharding, "jit_with_rules", optimized)
    monkeypatch.setattr(train, "_STEP_FNS", {})


@pytest.fixture(autouse=True)
def _only_this_tests_objects_collected():
    """The objects alive before a test are frozen out of the garbage collector while it runs. A
    failed read or write ends in full collections (`checkpointing._drain`, so orbax's leftovers
    meet the quiet hooks), and a collection's cost scales with the heap of the whole pytest worker
    (seconds each late in the suite), not with what the test made. Everything the test makes, the
    failure's leftovers included, is collected as in a fresh process."""
    import gc  # noqa: PLC0415

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture(scope="session")
def repo_root():
    return ROOT


@pytest.fixture(scope="session")
def config_factory():
    """`config_factory(name, variant="tiny", **overrides) -> ConfigDict` (`make_config`)."""
    return make_config


@pytest.fixture
def tiny_config():
    return load_config("sas_small", "tiny")


def built_once(tmp_path_factory, name: str, build) -> pathlib.Path:
    """A session fixture's folder built once for the whole run: the first xdist worker to ask
    builds it (`build(folder)`) under the run's shared temporary folder while the others wait on
    a lock, then every worker reads the same files. Only for fixtures the tests read (a test that
    changes one works on a copy)."""
    import fcntl  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / f"shared_{name}"
    with open(root / f"shared_{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / f"shared_{name}.done").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half-way
            folder.mkdir()
            build(folder)
            (root / f"shared_{name}.done").touch()
    return folder


@pytest.fixture(scope="session")
def prepared_corpus(tmp_path_factory):
    """A small real corpus: 150 KB of the demo text, a 300-piece SentencePiece vocab, L=32."""
    from sas_jax.data.prepare import prepare_corpus  # noqa: PLC0415

    def build(root):
        text = (ROOT / "data" / "demo" / "poems.txt").read_bytes()[:150_000].decode("utf-8", "ignore")
        (root / "text.txt").write_text(text)
        prepare_corpus([str(root / "text.txt")], str(root / "prepared"), seq_len=32, train_vocab_size=300,
                       progress=False)

    return built_once(tmp_path_factory, "corpus", build) / "prepared"


@pytest.fixture(scope="session")
def tiny_workdir(prepared_corpus, tmp_path_factory):
    """A finished pre-training workdir of the tiny SAS config on `prepared_corpus`:
    checkpoints at steps 2 and 4, TensorBoard logs and metrics.jsonl every step (built once per
    run: tests that change it copy it)."""
    from sas_jax import train  # noqa: PLC0415

    cfg = make_config("sas_small", "tiny", **{
        "data.corpus_dir": str(prepared_corpus), "model.vocab_size": -1, "num_train_steps": 4,
        "ckpt.every_steps": 2, "ckpt.async_save": False, "log.every_steps": 1, "log.tensorboard": True})
    return str(built_once(tmp_path_factory, "pretrain", lambda root: train.train_and_evaluate(cfg, str(root / "run")))
               / "run")


# GLUE fixtures (their rows and layouts: tests/glue/glue_fixtures.py, importable once a GLUE test
# module is collected, the only ones that ask for these).
@pytest.fixture(scope="session")
def glue_dir(tmp_path_factory):
    """The TSV fixtures of all 8 tasks."""
    import glue_fixtures  # noqa: PLC0415

    return glue_fixtures.write_glue_dir(tmp_path_factory.mktemp("glue"))


@pytest.fixture(scope="session")
def tiny_curve(tiny_workdir, glue_dir, tmp_path_factory):
    """`sweep.run_curve` over `tiny_workdir`'s steps 2 and 4 (SST-2 and MNLI, tiny recipe, 1 epoch)."""
    from sas_jax.glue import sweep  # noqa: PLC0415

    def build(root):
        sweep.run_curve(tiny_workdir, str(root / "curve"), steps="all", label="tiny-SAS", tasks="sst2,mnli",
                        glue_dir=str(glue_dir), config="glue:tiny", overrides=["num_epochs=1"], log=lambda *a: None)

    return str(built_once(tmp_path_factory, "curve", build) / "curve")


def cli(*args, timeout=300, env=None):
    """Runs `python -m sas_jax.main ...` (or another module via args) and returns the result."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(name="cli", scope="session")
def cli_fixture():
    """`cli(*args, timeout=300, env=None)`: a subprocess in the repository root (`cli`)."""
    return cli
