"""Console progress lines and TensorBoard event files (process 0 only)."""
from __future__ import annotations

import json
import math
import os
import sys
import time

import jax

from sas_jax import files
from sas_jax.errors import UserError

# Namespaces for TensorBoard; anything not listed goes under train/.
_NAMESPACE = {"hit_rate": "sas", "mlm_slots": "sas", "replaced_rate": "sas", "rtd_lambda": "sas",
              "tokens_per_sec": "perf", "steps_per_sec": "perf", "mfu": "perf",
              "learning_rate": "opt", "grad_norm": "opt", "param_norm": "opt", "update_norm": "opt"}


ETA_SMOOTHING = 0.3  # weight of the newest log window in the ETA's step time


def tag(name: str) -> str:
    return f"{_NAMESPACE.get(name, 'train')}/{name}"


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    h, rem = divmod(int(seconds), 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


def _record(line: str) -> dict | None:
    """One metrics.jsonl line as a dict holding `step`; None for a blank line or one torn by a
    kill mid-write (cut short: not JSON, or, glued to the next write, not one record)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "step" in record else None


def read_records(path: str) -> list:
    """The records of a metrics.jsonl in file order (a resumed run's repeated steps included;
    readers keep the later one). A torn line, the last one cut short by a kill or one in the
    middle, is skipped: every reader of the log goes through here, so all skip the same lines."""
    with open(path) as f:
        return [r for r in map(_record, f) if r is not None]


def keep_up_to(path: str, step: int) -> None:
    """Cuts a metrics.jsonl back to the lines of steps <= `step` (atomically: write, then rename);
    torn lines are dropped (`read_records`' rule)."""
    with open(path) as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        record = _record(line)
        if record is not None and record["step"] <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) != len(lines):
        with files.atomic_open(path, "w") as f:
            f.writelines(kept)


def summary_writer_class():
    """tensorboardX's `SummaryWriter` (a maintained, TensorFlow-free event writer), imported
    without torch. tensorboardX imports torch whenever it is installed, only to accept torch
    tensors (this project logs floats), and that import costs every training process seconds
    before its first step. Where torch is already imported it is used as it is."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter  # noqa: PLC0415
        return SummaryWriter
    sys.modules["torch"] = None  # `import torch` raises ImportError while tensorboardX loads
    try:
        from tensorboardX import SummaryWriter  # noqa: PLC0415
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class MetricWriter:
    def __init__(self, workdir: str, *, tensorboard: bool, total_steps: int, tokens_per_step: int,
                 flops_per_step: float = 0.0, start_step: int = 0):
        """`start_step` > 0 (a resumed run): what an earlier run logged after that step is
        dropped (metrics.jsonl is cut back to it, TensorBoard purges later events), so every
        step is logged once. `start_step` 0 (no checkpoint yet): what a run stopped before its
        first checkpoint logged (step 0's held-out figures, the first steps) is dropped too."""
        self.is_writer = jax.process_index() == 0
        self.total_steps, self.tokens_per_step = total_steps, tokens_per_step
        # MFU against the device's dense bf16 peak; None on devices not in the table.
        from sas_jax import flops  # noqa: PLC0415

        self._peak = flops.device_peak_flops(jax.devices()[0].device_kind)
        self.flops_per_step = flops_per_step
        self._tb = None
        if self.is_writer and tensorboard:
            self._tb = summary_writer_class()(os.path.join(workdir, "tensorboard"), purge_step=start_step)
        self._last = None  # (step, time)
        # ETA: seconds per step smoothed over log lines (EMA, weight ETA_SMOOTHING on the newest), plus
        # `extra_seconds(step)`: what the evaluations and saves still to come will take (set by the trainer).
        self._step_s = None
        self.extra_seconds = None
        # One JSON line per logged step: exact values for tests, notebooks and scripts.
        path = os.path.join(workdir, "metrics.jsonl")
        if self.is_writer and os.path.exists(path):
            keep_up_to(path, start_step if start_step else -1)
        self._jsonl = open(path, "a") if self.is_writer else None
        self._jsonl_path = path

    def rates(self, step: int) -> dict:
        now = time.perf_counter()
        out = {}
        if self._last is not None and step > self._last[0]:
            sps = (step - self._last[0]) / max(now - self._last[1], 1e-9)
            out = {"steps_per_sec": sps, "tokens_per_sec": sps * self.tokens_per_step}
            if self._peak and self.flops_per_step:
                out["mfu"] = self.flops_per_step * sps / (jax.device_count() * self._peak)
        self._last = (step, now)
        return out

    def write(self, step: int, metrics: dict) -> None:
        """Console line + event file for `metrics` of (completed) step `step`."""
        if not self.is_writer:
            return
        try:
            self._jsonl.write(json.dumps({"step": step, **{k: float(v) for k, v in metrics.items()}}) + "\n")
            self._jsonl.flush()
        except OSError as e:
            self._write_failed(e)
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(tag(k), float(v), step)
            self._tb.flush()
        m = metrics
        parts = [f"step {step}/{self.total_steps}", f"loss {m.get('loss', float('nan')):.4f}"]
        for key, label in (("mlm_loss", "mlm"), ("rtd_loss", "rtd"), ("mlm_accuracy", "mlm_acc"),
                           ("rtd_accuracy", "rtd_acc"), ("hit_rate", "hit")):
            if key in m:
                parts.append(f"{label} {m[key]:.4f}")
        if "rtd_lambda" in m:
            parts.append(f"λ {m['rtd_lambda']:.1f}")
        parts.append(f"lr {m.get('learning_rate', 0):.2e}")
        if "tokens_per_sec" in m:
            eta = self.eta(step, m["steps_per_sec"])
            parts += [f"{m['tokens_per_sec']:,.0f} tok/s", f"{m['steps_per_sec']:.2f} steps/s",
                      f"ETA {_fmt_eta(eta)}"]
        if "mfu" in m:
            parts.append(f"MFU {100 * m['mfu']:.1f}%")
        print(" | ".join(parts), flush=True)

    def eta(self, step: int, steps_per_sec: float) -> float:
        """Seconds left: the remaining steps at the smoothed step time, plus the remaining evaluations
        and saves (`extra_seconds`); one slow window (an evaluation, a save) moves it by 30% of its excess."""
        step_s = 1.0 / max(steps_per_sec, 1e-9)
        self._step_s = step_s if self._step_s is None else ETA_SMOOTHING * step_s + (1 - ETA_SMOOTHING) * self._step_s
        extra = self.extra_seconds(step) if self.extra_seconds is not None else 0.0
        return (self.total_steps - step) * self._step_s + extra

    def write_eval(self, step: int, metrics: dict, *, unigram_entropy: float | None = None) -> None:
        """Held-out figures of step `step`: `eval/<name>` in metrics.jsonl and TensorBoard, one console line."""
        if not self.is_writer or not metrics:
            return
        try:
            self._jsonl.write(json.dumps({"step": step, **{f"eval/{k}": float(v) for k, v in metrics.items()}}) + "\n")
            self._jsonl.flush()
        except OSError as e:
            self._write_failed(e)
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"eval/{k}", float(v), step)
            self._tb.flush()
        m = metrics
        parts = [f"eval step {step}"]
        if "mlm_loss" in m:
            ref = f" (unigram {m['unigram_ce']:.3f})" if "unigram_ce" in m else ""
            parts += [f"[MASK]ed mlm {m['mlm_loss']:.4f}{ref}", f"mlm_acc {m['mlm_accuracy']:.4f}"]
        if "mlm_loss_replaced" in m:
            parts.append(f"replaced mlm {m['mlm_loss_replaced']:.4f}")
        if "sample_hit_replaced" in m:
            parts.append(f"sample_hit {m['sample_hit_replaced']:.4f} (unigram {m['unigram_hit']:.4f})")
        if "rtd_accuracy" in m:
            parts += [f"rtd_acc {m['rtd_accuracy']:.4f} (all-original {m['rtd_baseline']:.4f})",
                      f"rtd_auc {m['rtd_auc']:.4f}"]
        print(" | ".join(parts), flush=True)

    def text(self, name: str, value: str) -> None:
        if self._tb is not None:
            self._tb.add_text(name, value, 0)

    def _write_failed(self, e: OSError):
        """A log line that cannot be written (a full disk, most often) ends the run in one line;
        the log is cut back to the resumed checkpoint on the re-run, so nothing is lost."""
        jsonl, self._jsonl = self._jsonl, None
        try:
            jsonl.close()
        except OSError:
            pass  # the same error again: the buffered line cannot be written either
        raise UserError(f"could not write {self._jsonl_path} ({e.strerror or e}); the checkpoints already "
                        "written are intact; free space (or move the workdir to a larger disk) and re-run "
                        "the same command to resume") from None

    def close(self):
        if self._tb is not None:
            self._tb.close()
        if self._jsonl is not None:
            try:
                self._jsonl.close()
            except OSError as e:
                self._write_failed(e)
