"""Test setup: 8 fake CPU devices (so sharded paths run), strict JAX flags."""
import os

# 8 fake CPU devices so sharded code paths run; LLVM optimisation level 0 halves the
# compile time of the tiny models, which dominates the suite on 2 cores.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
                           " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import importlib.util  # noqa: E402
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
    path = ROOT / "configs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"configs.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.fixture
def tiny_config():
    return load_config("sas_small", "tiny")
