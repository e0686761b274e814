"""Where a CPU train step's time goes, ours beside the Hugging Face + PyTorch eager peer.

    python benchmarks/cpu_profile.py --configs=sas_small,bert_small,electra_small --json=profile.json

For each config it builds our step (`step_throughput.ConfigBench`) and the peer's eager step
(`hf_baseline.CaseBench`, the same shape and recipe), runs `--warmup` steps, then profiles
`--steps` steps of each: ours with `jax.profiler` (the XLA:CPU runtime's per-op events), the peer
with `torch.profiler` (aten ops, self CPU time). Op times are grouped into the same few kinds for
both (matmul, softmax/normalisation reductions, random bits, element-wise, layout copies, optimizer,
the rest) and printed per step beside the step's wall time, with each side's ten costliest ops. The
op times are summed over the threads that ran them, so on several cores they can exceed the wall
time; the kinds' shares are what compare. Shapes, dtype and defaults as `step_throughput.py` (CPU:
batch 8 x 128, f32). XLA flags are read from `XLA_FLAGS` when the process starts, so to compare
flags run the script once per setting.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import sys
import tempfile

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import hf_baseline  # noqa: E402
import step_throughput  # noqa: E402

KINDS = ("matmul", "reduction", "random", "elementwise", "layout", "optimizer", "other")

# Our ops are XLA instruction names: "ynn_fusion" is a dot run by XNNPACK, "dot" one run by Eigen,
# and a fusion's name lists the ops at its roots ("negate_exponential_fusion").
_OURS_MATMUL = ("ynn_fusion", "dot", "convolution", "custom-call")
_OURS_RANDOM = ("xor", "shift-right", "shift-left", "threefry", "rng")
_OURS_REDUCTION = ("reduce", "exponential", "log", "rsqrt", "divide")
_OURS_LAYOUT = {"copy", "transpose", "bitcast", "broadcast", "concatenate", "slice", "pad", "gather", "scatter",
                "dynamic-slice", "dynamic-update-slice", "iota", "reshape", "fusion", "wrapped"}
# The peer's are aten names, matched by their base (leading "_" and a "_backward" suffix dropped):
# the base equals a word of the kind or starts with it and "_".
_PEER = (("optimizer", ("foreach", "adam", "adamw", "clip_grad", "linalg_vector_norm", "zero", "lerp", "addcdiv",
                        "addcmul", "sqrt")),
         ("matmul", ("addmm", "mm", "bmm", "matmul", "linear", "baddbmm")),
         ("random", ("bernoulli", "native_dropout", "dropout", "multinomial", "rand", "uniform", "normal")),
         ("reduction", ("softmax", "log_softmax", "native_layer_norm", "layer_norm", "nll_loss", "cross_entropy",
                        "sum", "mean", "max", "amax", "logsumexp", "exp", "log", "sigmoid")),
         ("layout", ("copy", "clone", "contiguous", "transpose", "permute", "view", "reshape", "index", "gather",
                     "scatter", "cat", "stack", "embedding", "expand", "narrow", "slice", "select", "t", "to",
                     "empty", "zeros", "ones", "fill", "unsqueeze", "squeeze", "as_strided", "unbind", "split")),
         ("elementwise", ("add", "mul", "sub", "div", "gelu", "where", "masked_fill", "neg", "tanh", "erf", "pow",
                          "rsqrt", "clamp", "eq", "ne", "lt", "gt", "abs", "threshold", "rsub")))


def our_kind(name: str) -> str:
    """The kind (`KINDS`) of an XLA:CPU op name."""
    low = name.lower()
    for kind, words in (("matmul", _OURS_MATMUL), ("random", _OURS_RANDOM), ("reduction", _OURS_REDUCTION)):
        if any(w in low for w in words):
            return kind
    if low == "while":
        return "other"
    return "layout" if set(low.split("_")) <= _OURS_LAYOUT else "elementwise"


def peer_kind(name: str) -> str:
    """The kind (`KINDS`) of an aten op name."""
    base = name.lower().removeprefix("aten::").strip("_")
    for suffix in ("_backward_data", "_backward", "_forward"):
        base = base.removesuffix(suffix)
    base = base.strip("_")
    for kind, words in _PEER:
        if any(base == w or base.startswith(w + "_") for w in words):
            return kind
    return "other"


def xla_op_times(trace_dir: str) -> dict:
    """{op name: microseconds} of the XLA:CPU runtime's op events in a `jax.profiler` trace (the
    events on its worker threads; Python, dispatch and the executor's own spans left out)."""
    path = max(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True))
    with gzip.open(path) as f:
        events = json.load(f)["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    out = collections.Counter()
    for e in events:
        if e.get("ph") != "X" or "XLAEigen" not in threads.get((e["pid"], e["tid"]), ""):
            continue
        name = e["name"]
        if name.startswith(("ThunkExecutor", "end: ")):
            continue
        out[name.split(".")[0]] += float(e["dur"])
    return dict(out)


def profile_ours(bench, steps: int) -> tuple:
    """(op µs summed over `steps` steps, wall seconds of those steps) of our step."""
    with tempfile.TemporaryDirectory(prefix="sas_jax_profile_") as d:
        jax.profiler.start_trace(d)
        wall = step_throughput._time_plain(bench.row, bench.batch, 0, steps) * steps
        jax.profiler.stop_trace()
        return xla_op_times(d), wall


def profile_peer(case, steps: int) -> tuple:
    """(aten op self-CPU µs summed over `steps` steps, wall seconds) of the peer's eager step."""
    import time  # noqa: PLC0415

    import torch  # noqa: PLC0415

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        case._run(steps)
        wall = time.perf_counter() - t
    out = collections.Counter()
    for e in prof.key_averages():
        if e.key.startswith("aten::") or "Optimizer" in e.key:
            out[e.key.replace("aten::", "")] += float(e.self_cpu_time_total)
    return dict(out), wall


def by_kind(ops: dict, kind, steps: int) -> dict:
    """{kind: ms per step} of {op: µs over `steps` steps}, `kind` naming each op's kind."""
    out = dict.fromkeys(KINDS, 0.0)
    for name, us in ops.items():
        out[kind(name)] += us / 1e3 / steps
    return out


def top(ops: dict, steps: int, n: int = 10) -> list:
    return [(k, round(v / 1e3 / steps, 3)) for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:n]]


def profile_config(spec: str, *, variant: str, batch, seq_len, steps: int, warmup: int, log) -> dict:
    s = common.settings(accelerator=False, variant=variant, batch=batch, seq_len=seq_len, dtype=None,
                        steps=steps, repeats=1, warmup=warmup)
    ours = step_throughput.ConfigBench(spec, variant=variant, batch=s["batch"], seq_len=s["seq_len"],
                                       dtype=s["dtype"], steps=s["steps"], warmup=s["warmup"])
    ours.repeat()  # warm
    ours_ops, ours_wall = profile_ours(ours, s["steps"])
    ours.close()
    import torch  # noqa: PLC0415

    case = hf_baseline.CaseBench(spec, variant=variant, batch=s["batch"], seq_len=s["seq_len"], dtype="float32",
                                 steps=s["steps"], warmup=s["warmup"], compiled=False, mlm_logits="gathered",
                                 device=torch.device("cpu"))
    case.repeat()  # warm
    peer_ops, peer_wall = profile_peer(case, s["steps"])
    n = s["steps"]
    result = {
        "config": ours.name, "batch": int(ours.config.batch_size), "seq_len": int(ours.config.seq_len), "steps": n,
        "ours": {"ms_per_step": 1e3 * ours_wall / n, "kinds_ms": by_kind(ours_ops, our_kind, n), "top_ms": top(ours_ops, n)},
        "peer": {"ms_per_step": 1e3 * peer_wall / n, "kinds_ms": by_kind(peer_ops, peer_kind, n), "top_ms": top(peer_ops, n)},
    }
    log(format_config(result))
    return result


def format_config(r: dict) -> str:
    o, p = r["ours"], r["peer"]
    lines = [(f"{r['config']} (batch {r['batch']} x {r['seq_len']}, {r['steps']} profiled steps): "
              f"ours {o['ms_per_step']:.1f} ms/step, HF eager {p['ms_per_step']:.1f} ms/step"),
             "| kind | ours ms/step | HF eager ms/step |", "|---|---|---|"]
    lines += [f"| {k} | {o['kinds_ms'][k]:.1f} | {p['kinds_ms'][k]:.1f} |" for k in KINDS]
    lines.append("ours, costliest ops (ms/step): " + ", ".join(f"{k} {v}" for k, v in o["top_ms"]))
    lines.append("HF, costliest ops (ms/step): " + ", ".join(f"{k} {v}" for k, v in p["top_ms"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="sas_small,bert_small,electra_small", help="comma-separated configs")
    ap.add_argument("--variant", default="", help="variant for every config (e.g. tiny)")
    ap.add_argument("--batch", type=int, default=None, help="global batch (CPU default 8)")
    ap.add_argument("--seq_len", type=int, default=None, help="tokens per row (default 128)")
    ap.add_argument("--steps", type=int, default=3, help="profiled steps per side (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps before (default 1)")
    ap.add_argument("--json", default="", help="write the results here")
    a = ap.parse_args(argv)
    load = common.load_average()
    results = [profile_config(c, variant=a.variant, batch=a.batch, seq_len=a.seq_len, steps=a.steps,
                              warmup=a.warmup, log=print) for c in a.configs.split(",") if c]
    report = {"host": common.host_facts(load), "xla_flags": os.environ.get("XLA_FLAGS", ""), "results": results}
    if a.json:
        common.write_report(a.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
