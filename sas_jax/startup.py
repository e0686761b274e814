"""Start-up and where a run's time goes: the persistent compilation cache, the CPU lowering of
threefry, and the run's clock.

- `enable_compilation_cache(config)`: XLA executables are kept in a user cache folder
  (`$SAS_JAX_COMPILATION_CACHE`, else `$XDG_CACHE_HOME/sas_jax/jax`, else
  `~/.cache/sas_jax/jax`), so a re-run or a resume of the same shapes skips compilation.
  Off with `--config.log.compilation_cache=false` or `SAS_JAX_COMPILATION_CACHE=0`; a cache
  folder already configured (`jax_compilation_cache_dir`: the tests, `sas_jax.study`, the
  user) is kept.
- `unroll_cpu_threefry()`: on the CPU, JAX lowers the threefry hash behind every random draw
  (dropout masks, SAS sampling, key splits) as a 5-iteration XLA while loop, to keep compiles
  short; each dropout mask then costs a loop over materialised integer arrays that XLA cannot fuse.
  The unrolled lowering (the one JAX uses on GPUs) computes the same bits in one fused pass: the
  SAS-Small CPU step ran ~20 % faster for ~6 s more compile (`docs/benchmarks.md`). On by default
  in the trainer and the fine-tuner; `SAS_JAX_CPU_THREEFRY=rolled` keeps JAX's loop (the tests do:
  their runs are short, so compile time dominates).
- `RunClock`: the run's wall time split into compile (the first step's dispatch), steps,
  held-out evaluation and saves; `line()` is the run's last line, and `per_eval` /
  `per_save` feed the progress line's ETA.
"""
from __future__ import annotations

import collections
import contextlib
import os
import time

import jax

CACHE_ENV = "SAS_JAX_COMPILATION_CACHE"
THREEFRY_ENV = "SAS_JAX_CPU_THREEFRY"
_OFF = ("0", "off", "false", "no", "")


def cache_dir() -> str | None:
    """The compilation cache folder this environment asks for; None = off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else os.path.expanduser(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sas_jax", "jax")


def enable_compilation_cache(config) -> str | None:
    """Turns the persistent compilation cache on (module doc); returns its folder or None."""
    log = config.get("log") if hasattr(config, "get") else None
    if log is not None and not log.get("compilation_cache", True):
        return None
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    folder = cache_dir()
    if folder is None:
        return None
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None  # read-only home: run without the cache
    jax.config.update("jax_compilation_cache_dir", folder)
    return folder


def unroll_cpu_threefry(unrolled: bool | None = None) -> bool:
    """Chooses the CPU lowering of JAX's threefry hash (module doc): `unrolled` None reads
    `$SAS_JAX_CPU_THREEFRY` (`rolled` keeps JAX's loop; anything else unrolls). The bits are the same
    either way; only steps compiled afterwards change. Returns whether the unrolled lowering is now in
    use; False also where this JAX has no such lowering to choose (nothing is changed then)."""
    if unrolled is None:
        unrolled = os.environ.get(THREEFRY_ENV, "unrolled").strip().lower() != "rolled"
    try:  # JAX internals: the two lowerings JAX itself registers (GPU: unrolled, CPU: rolled)
        from jax._src.interpreters import mlir  # noqa: PLC0415
        from jax._src.random import threefry2x32 as threefry  # noqa: PLC0415

        rule = threefry._threefry2x32_lowering_rule if unrolled else threefry._threefry2x32_cpu_lowering_rule
        mlir.register_lowering(threefry.threefry2x32_p, rule, platform="cpu")
    except (ImportError, AttributeError):
        return False
    return unrolled


class RunClock:
    """Wall time since construction, with named parts (`compile`, `eval`, `save`) and the loop."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.seconds: dict = collections.defaultdict(float)
        self.counts: dict = collections.defaultdict(int)
        self._in_loop = False
        self._loop_parts = 0.0  # parts timed while the loop ran (taken out of "steps")

    @contextlib.contextmanager
    def part(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            self.seconds[name] += dt
            self.counts[name] += 1
            if name == "loop":
                self._in_loop = False
            elif self._in_loop:
                self._loop_parts += dt

    @contextlib.contextmanager
    def loop(self):
        self._in_loop = True
        with self.part("loop"):
            yield

    def mean(self, name: str) -> float:
        return self.seconds[name] / self.counts[name] if self.counts[name] else 0.0

    def parts(self) -> dict:
        """{wall, compile, steps, eval, save, rest}: steps = the loop less what it spent compiling,
        evaluating and saving; rest = start-up (build, restore) and the summary."""
        wall = time.perf_counter() - self.t0
        steps = max(0.0, self.seconds["loop"] - self._loop_parts)
        named = {k: self.seconds[k] for k in ("compile", "eval", "save")}
        return {"wall": wall, **named, "steps": steps, "rest": max(0.0, wall - steps - sum(named.values()))}

    def line(self) -> str:
        p = self.parts()
        return (f"wall time {p['wall']:.1f} s: compile {p['compile']:.1f} s, steps {p['steps']:.1f} s, "
                f"evaluation {p['eval']:.1f} s ({self.counts['eval']}x), saves {p['save']:.1f} s "
                f"({self.counts['save']}x), start-up and the rest {p['rest']:.1f} s")
