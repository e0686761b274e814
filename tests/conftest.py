"""Test setup: 8 fake CPU devices (so sharded paths run), strict JAX flags."""
import os

# 8 fake CPU devices so sharded code paths run; LLVM optimisation level 0 halves the
# compile time of the tiny models, which dominates the suite on 2 cores.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
                           " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_threefry_partitionable", True)
# Identical computations compiled by different tests are compiled once.
jax.config.update("jax_compilation_cache_dir", str(pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config(name: str, arg: str | None = "tiny"):
    """`configs/<name>.py` → get_config(arg), as the CLI would load it."""
    from sas_jax import config_lib  # noqa: PLC0415

    return config_lib.load_config_file(f"{ROOT / 'configs' / name}.py" + (f":{arg}" if arg else ""))


@pytest.fixture
def tiny_config():
    return load_config("sas_small", "tiny")


@pytest.fixture(scope="session")
def prepared_corpus(tmp_path_factory):
    """A small real corpus: 150 KB of the demo text, a 300-piece SentencePiece vocab, L=32."""
    from sas_jax.data.prepare import prepare_corpus  # noqa: PLC0415

    root = tmp_path_factory.mktemp("corpus")
    text = (ROOT / "data" / "demo" / "poems.txt").read_bytes()[:150_000].decode("utf-8", "ignore")
    (root / "text.txt").write_text(text)
    out = root / "prepared"
    prepare_corpus([str(root / "text.txt")], str(out), seq_len=32, train_vocab_size=300, progress=False)
    return out


def cli(*args, timeout=300, env=None):
    """Runs `python -m sas_jax.main ...` (or another module via args) and returns the result."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
