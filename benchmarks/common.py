"""What the two step-time benchmarks share: `step_throughput.py` (our train step) and
`hf_baseline.py` (its Hugging Face + PyTorch peer) time alike and report alike.

Imported as `from benchmarks import common` by both, whether they run as scripts
(`python benchmarks/x.py`, which puts the checkout on sys.path) or are loaded by the tests.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys

import numpy as np

from sas_jax.corruption.static_batch import electra_budget

# Shapes and timing by device: an accelerator gets the paper's batch and length.
ACCEL_DEFAULTS = dict(batch=512, seq_len=128, dtype="bfloat16", steps=20, repeats=5, warmup=3)
CPU_DEFAULTS = dict(batch=8, seq_len=128, dtype="float32", steps=3, repeats=3, warmup=1)
DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "f32": "float32", "fp32": "float32", "float32": "float32"}


def settings(*, accelerator: bool, variant: str, batch=None, seq_len=None, dtype=None, steps=None, repeats=None,
             warmup=None) -> dict:
    """{batch, seq_len, dtype, steps, repeats, warmup}: what was asked, else the device's default
    (a variant keeps its own shape unless asked otherwise; batch/seq_len None = the config's)."""
    defaults = ACCEL_DEFAULTS if accelerator else CPU_DEFAULTS
    if variant:
        defaults = {**defaults, "batch": None, "seq_len": None}
    asked = dict(batch=batch, seq_len=seq_len, steps=steps, repeats=repeats, warmup=warmup)
    out = {k: defaults[k] if v is None else v for k, v in asked.items()}
    out["dtype"] = DTYPES[dtype] if dtype else defaults["dtype"]
    if min(out["steps"], out["repeats"]) < 1 or out["warmup"] < 0:
        raise ValueError(f"steps={out['steps']} and repeats={out['repeats']} must be >= 1, "
                         f"warmup={out['warmup']} >= 0")
    return out


def apply_shape(config, *, batch=None, seq_len=None, dtype=None) -> dict:
    """Sets the benchmark shape on `config`; returns what had to change beyond it (notes): the
    slot count is raised to what the length needs (BERT's round(rate·L), ELECTRA's budget)."""
    notes = {}
    if batch is not None:
        config.batch_size = int(batch)
    if seq_len is not None:
        config.seq_len = int(seq_len)
    if dtype is not None:
        config.model.dtype = DTYPES[dtype]
    if config.seq_len > config.model.max_position_embeddings:
        raise ValueError(f"seq_len={config.seq_len} exceeds model.max_position_embeddings="
                         f"{config.model.max_position_embeddings} of this config/variant; lower --seq_len")
    need = max(int(np.round(config.sas.mask_rate * config.seq_len)),
               electra_budget(config.sas.mask_rate, config.seq_len))
    if config.sas.max_predictions < need:
        notes["max_predictions"] = f"raised {config.sas.max_predictions} -> {need} for seq_len={config.seq_len}"
        config.sas.max_predictions = need
    return notes


def time_round_robin(benches, repeats: int, log, label=lambda bench: bench.name) -> None:
    """Repeat i of every bench, then repeat i+1 of every one: drift in the machine's load (a
    shared CPU) hits every bench alike, and repeat i of two benches ran back to back."""
    for r in range(repeats):
        for bench in benches:
            log(f"  repeat {r + 1}/{repeats} {label(bench)}: {bench.repeat()}")


# ----------------------------------------------------------------------------- machine facts
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def host_facts(load_average_start) -> dict:
    """The report's machine fields at the end of a run (`load_average_start` taken before it)."""
    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "load_average_start": load_average_start,
            "load_average_end": load_average(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


# ----------------------------------------------------------------------------- report
def base_name(config_name: str) -> str:
    return config_name.split(":")[0].rsplit("_", 1)[0]  # sas_small:tiny -> sas


def ratios(results, pairs, *, mode: str | None = None) -> list:
    """Step-time ratios between results of the same size and variant (e.g. sas_small / bert_small).

    `pairs`: (numerator, denominator) base names, or (numerator, denominator, target) with a
    target ceiling (None: none) that adds `target` and `hit` to the entry. `mode`: a result field
    that must match too (the HF peer's `compile`), recorded in the entry."""
    by = {}
    for r in results:
        stem, _, v = r["config"].partition(":")
        size = stem.rsplit("_", 1)[-1] if "_" in stem else ""
        by[(base_name(r["config"]), size, v, r[mode] if mode else None)] = r
    out = []
    for (base, size, v, m), r in sorted(by.items()):
        for num, den, *target in pairs:
            d = by.get((den, size, v, m))
            if base != num or d is None:
                continue
            entry = {"numerator": r["config"], "denominator": d["config"], **({mode: m} if mode else {})}
            entry["step_time_ratio"] = ratio = r["ms_per_step"] / d["ms_per_step"]
            entry["step_time_ratio_of_min"] = r["ms_per_step_min"] / d["ms_per_step_min"]
            if target:
                entry.update(target=target[0], hit=None if target[0] is None else bool(ratio <= target[0]))
            if len(r["ms_per_step_repeats"]) == len(d["ms_per_step_repeats"]):
                # repeats are interleaved round-robin: repeat i of both ran back to back
                entry["paired_ratio_median"] = statistics.median(
                    a / b for a, b in zip(r["ms_per_step_repeats"], d["ms_per_step_repeats"]))
            out.append(entry)
    return out


def fmt_bytes(x):
    if x is None:
        return "n/a"
    return f"{x / 2**30:.2f}G" if x >= 2**30 else f"{x / 2**20:.0f}M"


def shape_line(report: dict) -> str:
    return (f"shape: batch {report['shape']['batch']} x seq_len {report['shape']['seq_len']}, dtype "
            f"{report['dtype']}, variant {report['variant'] or '(none)'}; {report['steps']} timed steps x "
            f"{report['repeats']} repeats (median), {report['warmup']} warm-up steps per repeat")


def report_shape(results, batch, seq_len) -> dict:
    """The report's `shape`: the first result's (a variant's own), else what was asked."""
    return {"batch": results[0]["batch"] if results else batch,
            "seq_len": results[0]["seq_len"] if results else seq_len}


# ----------------------------------------------------------------------------- command line
def add_shape_arguments(ap: argparse.ArgumentParser, default_configs, *, dtype_help: str) -> None:
    """--configs, --variant, --batch, --seq_len, --dtype, --steps, --repeats, --warmup."""
    ap.add_argument("--configs", default=",".join(default_configs),
                    help="comma-separated config names under configs/ (or paths), each optionally :variant")
    ap.add_argument("--variant", default="", help="variant for every config without its own, e.g. tiny")
    ap.add_argument("--batch", type=int, default=None, help="global batch (default 512; CPU 8)")
    ap.add_argument("--seq_len", type=int, default=None, help="tokens per row (default 128)")
    ap.add_argument("--dtype", default=None, choices=sorted(DTYPES), help=dtype_help)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per repeat (default 20; CPU 3)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats; the median is reported (default 5; CPU 3)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps before each repeat (default 3; CPU 1)")


def shape_arguments(args: argparse.Namespace) -> dict:
    """`run_benchmark`'s configs and shape keywords from the parsed `add_shape_arguments`."""
    return dict(configs=[c.strip() for c in args.configs.split(",") if c.strip()], batch=args.batch,
                seq_len=args.seq_len, dtype=args.dtype, steps=args.steps, repeats=args.repeats, warmup=args.warmup,
                variant=args.variant)


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_report(path: str, report: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
