"""A `jax.profiler` trace of a few training steps: `--config.log.profile_steps=N,M`.

Steps N..M (inclusive, numbered as the console numbers them: the step that brings the
counter to N) are traced into `<workdir>/profile/plugins/profile/<time>/*.xplane.pb`
(TensorBoard's profile plugin: `tensorboard --logdir=<workdir>/profile`, or
https://ui.perfetto.dev after `xprof`'s conversion), each step under
`jax.profiler.StepTraceAnnotation("train", step_num=n)` so the viewers split the
trace by step. Pick N past the first step of the run (it compiles the step) and
past a resume's first step. The trace starts before step N is dispatched and stops
once step M has finished on the device (one wait at that step only); a run that
ends or stops inside the window closes the trace on its way out. Nothing changes
what is computed: the losses are those of a run without profiling
(tests/test_profiling.py). Empty (the default) = off.
"""
from __future__ import annotations

import contextlib
import os

import jax

from sas_jax.errors import UserError


def parse_steps(text: str) -> tuple[int, int] | None:
    """"N,M" → (N, M) with 1 <= N <= M; "N" → (N, N); "" → None (off). One-line UserError otherwise."""
    text = str(text or "").strip()
    if not text:
        return None
    parts = [p.strip() for p in text.replace("..", ",").replace("-", ",").split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not 1 <= values[0] <= values[1]:
        raise UserError(f"log.profile_steps={text!r} must be 'N,M' with 1 <= N <= M (steps as the console "
                        "numbers them), e.g. --config.log.profile_steps=10,14; empty = no profile")
    return values[0], values[1]


class StepProfiler:
    """Starts, annotates and stops the trace around the trainer's step dispatches."""

    def __init__(self, steps: str, logdir: str | None):
        self.window = parse_steps(steps)
        if self.window is not None and logdir is None:
            self.window = None  # no workdir (benchmarks): nowhere to write
        self.logdir = logdir
        self.active = False
        self.done = False
        self.traced: list[int] = []  # the steps inside the written trace

    def step(self, n: int):
        """Context of the dispatch of step `n` (1-based): starts the trace at the window's first
        step, annotates the steps inside it."""
        if self.window is None or self.done:
            return contextlib.nullcontext()
        first, last = self.window
        if not self.active and first <= n <= last:
            os.makedirs(self.logdir, exist_ok=True)
            jax.profiler.start_trace(self.logdir)
            self.active = True
        if not self.active:
            return contextlib.nullcontext()
        self.traced.append(n)
        return jax.profiler.StepTraceAnnotation("train", step_num=n)

    def after(self, n: int, outputs) -> None:
        """After step `n` was dispatched: at the window's last step, waits for it and stops."""
        if self.active and n >= self.window[1]:
            jax.block_until_ready(outputs)
            self.stop()

    def stop(self) -> None:
        if self.active:
            jax.profiler.stop_trace()
            self.active, self.done = False, True
            if jax.process_index() == 0 and self.traced:
                print(f"profile: steps {self.traced[0]}..{self.traced[-1]} traced in {self.logdir} "
                      f"(tensorboard --logdir={self.logdir}, Profile tab)", flush=True)

    def files(self) -> list[str]:
        """The trace files written so far (`*.xplane.pb`, `*.trace.json.gz`)."""
        out = []
        if self.logdir and os.path.isdir(self.logdir):
            for root, _, names in os.walk(self.logdir):
                out += [os.path.join(root, n) for n in names if n.endswith((".xplane.pb", ".trace.json.gz"))]
        return sorted(out)
