"""Step throughput of the real train steps: SAS, SASc, BERT, ELECTRA, DeBERTa, SASDA.

    python benchmarks/step_throughput.py [--configs=sas_small,bert_small,...] \
        [--batch=512] [--seq_len=128] [--dtype=bf16] [--steps=20] [--repeats=5] \
        [--warmup=3] [--variant=tiny] [--with-store] [--isolate] [--json=out.json]

Every config is built by the trainer itself (`train.Trainer` with no workdir, on an
in-memory `markov_corpus`: the same model, sharded state, jitted step and key as a
run), lowered and compiled once (lower and
compile times are reported; the first call then reuses the executable). Timing:
each repeat runs `--warmup` untimed steps, then dispatches `--steps` steps back to
back and waits with `block_until_ready`; the figure is the median over `--repeats`.
All configs are compiled first and their repeats run round-robin, so drift in the
load of a shared machine hits every config alike (`--isolate` instead runs each
config in its own process, for clean per-config peak memory).

Printed per config (and in `--json`): tokens/s, ms/step (median, min, every
repeat), MFU (`sas_jax.flops`, live convention; None where the device's peak is
unknown, e.g. CPU: never guessed), model TFLOP/s, peak device memory
(`memory_stats()["peak_bytes_in_use"]`, a process-wide high-water mark; null where
the backend keeps no stats, e.g. CPU), XLA's memory analysis of the executable,
compile time, and the encoder forwards per step counted in the lowered StableHLO
(below). Ratios: SAS / BERT (target <= 1.05), SAS / ELECTRA (target <= 0.65),
SASDA / DeBERTa, SASc / BERT, as the ratio of medians, of minima, and the median of
per-repeat ratios (repeats of different configs run back to back).

Default shape: on accelerators the paper's Small shape (batch 512, L = 128, bf16);
on CPU batch 8 x L = 128 at the full Small width in float32 (bf16 is emulated on
CPU): about 0.8 s a step on 2 cores, 10-30 s of compile per config.
`--variant=tiny` (or `demo`) loads `configs/<name>.py:<variant>` and keeps that
variant's own shape unless `--batch` / `--seq_len` are given.

`--with-store` also times the trainer's own loop (`Trainer.train_until`): batch
building by the objective's builder + `pipeline.to_global` in a `pipeline.Prefetcher`
thread, the step dispatch, `copy_to_host_async` of the samples, and the previous step's
finish (store write-back + metrics fetch + NaN check) while the step runs, under
the same `transfer_guard("disallow")`. The store is filled over one epoch first
(as `benchmarks/input_pipeline.py` does), so SAS batches take the later-visit
path; every repeat runs in an epoch of its own (warm-up steps, then the timed
steps from a fresh prefetcher, as each of the trainer's epochs starts). Each repeat times the plain loop and then the trainer loop; the overhead is
`with / without - 1` of the medians (and the median of the per-repeat ones), with
the host time split into build (prefetch thread), prefetch wait, device wait and
finish work (main thread). On CPU the host work shares the cores with the
"device", so there the overhead is an upper bound of the accelerator's.

Encoder forwards: the lowered StableHLO (`jitted.lower(...).as_text(debug_info=True)`)
names every `dot_general` with its module path, and the backward ones with
`transpose(...)`. `dots.by_module` counts them per top-level module (encoder,
heads, generator, discriminator); `encoder_forwards` is the number of forward
FFN-input matmuls of layer 0 over all encoder stacks (one per stack forward),
cross-checked against `encoder_forwards_from_flops` (the encoder stacks in
`flops.model_flops_components`). SAS and BERT have the same encoder-layer dots and
SAS's total = BERT's + the RTD head's; ELECTRA runs two stacks.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import jax

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/step_throughput.py` from a checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from sas_jax import config_lib, flops, train, train_state  # noqa: E402
from sas_jax.data.synthetic import markov_corpus  # noqa: E402

DEFAULT_CONFIGS = ("sas_small", "sasc_small", "bert_small", "electra_small", "deberta_small", "sasda_small")
# Step-time ratios the issue sets as targets (numerator / denominator <= target).
RATIO_TARGETS = (("sas", "bert", 1.05), ("sas", "electra", 0.65), ("sasda", "deberta", None),
                 ("sasc", "bert", None))


# ----------------------------------------------------------------------------- configs
def load_config(spec: str, variant: str = ""):
    """`sas_small`, `sas_small:tiny`, or `configs/sas_small.py[:tiny]` → (name, ConfigDict),
    loaded by `config_lib.load_config` (the one loader); `variant` applies when `spec` has none."""
    path, _, arg = spec.partition(":")
    arg = arg or variant
    name = pathlib.Path(path).stem + (f":{arg}" if arg else "")
    return name, config_lib.load_config(f"{path}:{arg}" if arg else path)


# ----------------------------------------------------------------------------- HLO dot census
_LOC_DEF = re.compile(r"^(#loc\d+) = (.*)$", re.M)
_DOT_LOC = re.compile(r"stablehlo\.dot_general\b.*loc\((#loc\d+)\)\s*$")
_MODEL_SCOPE = re.compile(r"(transpose\()?jvp\((\w+)\)\)?/(.*)/dot_general")


def dot_census(lowered_text: str, num_layers: int) -> dict:
    """Counts `dot_general`s of a lowered step by module path and pass (forward / backward).

    Returns dict(total, forward, backward, by_module {top module: count}, encoder_layer
    (dots inside `layer_<i>` scopes, both passes), outside_layers (heads, E→H projections),
    encoder_forwards, forwards_by_stack {stack path: forwards}).
    """
    locs = dict(_LOC_DEF.findall(lowered_text))
    by_module: collections.Counter = collections.Counter()
    stack_forwards: collections.Counter = collections.Counter()
    total = forward = encoder_layer = 0
    unnamed = 0
    for line in lowered_text.splitlines():
        if "stablehlo.dot_general" not in line:
            continue
        total += 1
        m = _DOT_LOC.search(line)
        scope = _MODEL_SCOPE.search(locs.get(m.group(1), "")) if m else None
        if scope is None:
            unnamed += 1
            by_module["(other)"] += 1
            continue
        backward = scope.group(1) is not None
        # drop method-call scopes (`ElectraModel.generator_logits/...`): module names only
        path = "/".join(p for p in scope.group(3).split("/") if "." not in p)
        forward += not backward
        by_module[path.split("/")[0]] += 1
        layer = re.search(r"^(.*?)/?layer_(\d+)/(.*)$", path)
        if layer:
            encoder_layer += 1
            stack, index, rest = layer.group(1), int(layer.group(2)), layer.group(3)
            if not backward and index == 0 and rest.split("/")[0] == "intermediate":
                stack_forwards[stack or "(root)"] += 1
    return {
        "total": total, "forward": forward, "backward": total - forward - unnamed, "unnamed": unnamed,
        "by_module": dict(sorted(by_module.items())), "encoder_layer": encoder_layer,
        "outside_layers": total - encoder_layer - unnamed, "encoder_forwards": int(sum(stack_forwards.values())),
        "forwards_by_stack": dict(stack_forwards), "num_layers": int(num_layers),
    }


def encoder_forwards_from_flops(config, model_cfg) -> int:
    """Encoder stacks charged by `flops.model_flops_components` for the row's (resolved) model config."""
    return sum(k.endswith("encoder_matmuls") for k in flops.model_flops_components(config, model_cfg=model_cfg))


# ----------------------------------------------------------------------------- machine facts
def peak_memory_bytes(device):
    """`peak_bytes_in_use` of the device's allocator, or None where the backend has no stats."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - backends without stats raise or return None
        return None
    if not stats:
        return None
    v = stats.get("peak_bytes_in_use")
    return None if v is None else int(v)


def compiled_memory(compiled) -> dict | None:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return None
    if m is None:
        return None
    keys = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
            "generated_code_size_in_bytes")
    return {k: int(getattr(m, k)) for k in keys if hasattr(m, k)}


# ----------------------------------------------------------------------------- one config
class TimedTrainer(train.Trainer):
    """The trainer itself, at the benchmark shape, with its host work timed.

    Set up exactly as a run (`train.Trainer` with no workdir: no checkpoints, no logs)
    on an in-memory `markov_corpus`; `time_epoch` runs the trainer's own loop
    (`Trainer.train_until`) and times the pieces it calls.
    """

    def __init__(self, config, *, devices, vocab_size, rows_for_store: int = 0):
        vocab = int(config.model.vocab_size) if config.model.vocab_size > 0 else int(vocab_size)
        config.data.shuffle = "once"
        config.data.eval_rows = 0  # the benchmark times training steps; no held-out rows
        corpus = markov_corpus(max(config.batch_size, rows_for_store), config.seq_len, vocab, seed=0)
        super().__init__(config, None, corpus=corpus, devices=devices)
        self._timing = None

    def prefill_store(self):
        """One epoch of builds with fake samples written back, so later visits read the store."""
        if not self.settings.sample:
            return
        for step in range(self.order.steps_per_epoch):
            ids = self.order.batch_ids(step)
            batch, pending = self.builder.build(self.corpus.read(ids), ids, step)
            self.builder.write_back(pending, (batch["mlm_targets"] + 1) % self.vocab)

    # Timed versions of the loop's pieces (no-ops on the figures when `_timing` is None).
    def make_batch(self, step):
        t = time.perf_counter()
        out = super().make_batch(step)
        if self._timing is not None:
            self._timing["build"].append(time.perf_counter() - t)  # prefetch thread
        return out

    def next_batch(self, prefetch):
        t = time.perf_counter()
        out = super().next_batch(prefetch)
        if self._timing is not None:
            self._timing["wait"].append(time.perf_counter() - t)
        return out

    def finish(self, pending):
        if self._timing is None:
            return super().finish(pending)
        t = time.perf_counter()
        jax.block_until_ready(pending[1:3])  # the wait `finish` would do anyway, timed apart
        t1 = time.perf_counter()
        super().finish(pending)
        self._timing["device"].append(t1 - t)
        self._timing["finish"].append(time.perf_counter() - t1)

    def time_epoch(self, epoch: int, warmup: int, steps: int) -> dict:
        """The trainer's loop over `warmup` untimed then `steps` timed steps of one epoch.

        Returns seconds per step (`step_s`) and where the host time went: `build_s` (median
        builder + to_global per batch, in the prefetch thread) and, per timed step in the
        main thread, `wait_s` (waiting for the prefetcher), `device_s` (waiting for step
        s-1's outputs, i.e. idle while the device works) and `finish_s` (write-back +
        metrics fetch once they are there). The timed segment starts with a fresh
        prefetcher, as each of the trainer's epochs does.
        """
        start = epoch * self.order.steps_per_epoch
        with jax.transfer_guard("disallow"):
            self.train_until(start, start + warmup)
            jax.block_until_ready(self.state)
            self._timing = {"build": [], "wait": [], "device": [], "finish": []}
            t0 = time.perf_counter()
            try:
                self.train_until(start + warmup, start + warmup + steps)
                jax.block_until_ready(self.state)
                dt = time.perf_counter() - t0
            finally:
                timing, self._timing = self._timing, None
        return {"step_s": dt / steps, "build_s": statistics.median(timing["build"]) if timing["build"] else 0.0,
                "wait_s": sum(timing["wait"]) / steps, "device_s": sum(timing["device"]) / steps,
                "finish_s": sum(timing["finish"]) / steps}


def _time_plain(row: TimedTrainer, batch, warmup: int, steps: int) -> float:
    """Seconds per step: `steps` back-to-back dispatches of one device batch, then block
    (the device alone: no host work between steps)."""
    state = row.state
    with jax.transfer_guard("disallow"):
        for _ in range(warmup):
            state, metrics, sampled = row.step_fn(state, batch, row.step_key)
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        for _ in range(steps):
            state, metrics, sampled = row.step_fn(state, batch, row.step_key)
        jax.block_until_ready((state, metrics, sampled))
        dt = time.perf_counter() - t0
    row.state = state
    return dt / steps


class ConfigBench:
    """One config: built and compiled on construction, then timed one repeat at a time."""

    def __init__(self, spec: str, *, variant: str = "", batch=None, seq_len=None, dtype=None, steps: int,
                 warmup: int, with_store: bool = False, devices=None, vocab_size: int = 30522):
        self.name, config = load_config(spec, variant)
        self.notes = common.apply_shape(config, batch=batch, seq_len=seq_len, dtype=dtype)
        self.config, self.steps, self.warmup, self.with_store = config, steps, warmup, with_store
        self.devices = list(jax.devices() if devices is None else devices)
        per_epoch = warmup + steps + 1  # each with-store repeat is one epoch of this many steps
        self.row = row = TimedTrainer(config, devices=self.devices, vocab_size=vocab_size,
                              rows_for_store=config.batch_size * per_epoch if with_store else 0)
        self.batch, _ = row.make_batch(0)

        t0 = time.perf_counter()
        lowered = row.step_fn.lower(row.state, self.batch, row.step_key)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        self.lower_s, self.compile_s = t1 - t0, t2 - t1
        self.census = dot_census(lowered.as_text(debug_info=True), config.model.num_layers)
        self.compiled_dots = len(re.findall(r"\bdot\(", compiled.as_text() or ""))
        self.compiled_memory = compiled_memory(compiled)
        # XLA's own count of the per-device program, for the whole mesh (flops.compiled_step_flops)
        self.xla_flops = flops.xla_cost(compiled).get("flops", 0.0) * row.mesh.size
        del lowered, compiled
        # First call: the jit cache already holds the executable compiled above.
        t3 = time.perf_counter()
        row.state, _, out = row.step_fn(row.state, self.batch, row.step_key)
        jax.block_until_ready(out)
        self.first_call_s = time.perf_counter() - t3
        self.peak_memory = peak_memory_bytes(self.devices[0])
        if with_store:
            row.prefill_store()
        self.plain, self.stored, self.host = [], [], []

    def repeat(self) -> str:
        """Times one repeat (plain, then the trainer loop if `with_store`); returns a log line."""
        self.plain.append(_time_plain(self.row, self.batch, self.warmup, self.steps))
        line = f"{1e3 * self.plain[-1]:.2f} ms/step"
        if self.with_store:
            epoch = len(self.stored) + 1  # epoch 0 filled the store
            loop = self.row.time_epoch(epoch, self.warmup, self.steps)
            self.stored.append(loop["step_s"])
            self.host.append(loop)
            line += f", with store {1e3 * self.stored[-1]:.2f} ms/step"
        return line

    def result(self) -> dict:
        config, row = self.config, self.row
        b, s = int(config.batch_size), int(config.seq_len)
        step_s = statistics.median(self.plain)
        flops_per_step = row.flops_per_step  # the trainer's own (flops.model_flops_per_step)
        out = {
            "config": self.name,
            "objective": str(config.objective.corruption),
            "attention_type": str(config.model.attention_type),
            "heads": {"mlm": bool(config.objective.mlm), "rtd": bool(config.objective.rtd)},
            "batch": b, "seq_len": s, "dtype": str(config.model.dtype), "vocab_size": row.vocab,
            "max_predictions": int(config.sas.max_predictions),
            "params": train_state.param_count(row.state.params),
            "tokens_per_s": b * s / step_s,
            "ms_per_step": 1e3 * step_s,
            "ms_per_step_repeats": [1e3 * x for x in self.plain],
            "ms_per_step_min": 1e3 * min(self.plain),
            "model_flops_per_step": flops_per_step,
            "model_tflops_per_s": flops_per_step / step_s / 1e12,
            "mfu": flops.mfu(flops_per_step, step_s, len(self.devices), self.devices[0].device_kind),
            "xla_flops_per_step": self.xla_flops,
            "xla_over_model_flops": self.xla_flops / flops_per_step if flops_per_step else None,
            "peak_memory_bytes": self.peak_memory,
            "compiled_memory": self.compiled_memory,
            "lower_s": self.lower_s,
            "compile_s": self.compile_s,
            "first_call_s": self.first_call_s,
            "dots": self.census,
            "compiled_dot_ops": self.compiled_dots,
            "encoder_forwards": self.census["encoder_forwards"],
            "encoder_forwards_from_flops": encoder_forwards_from_flops(config, row.objective.model_config),
            "notes": self.notes,
        }
        if self.with_store:
            store_s = statistics.median(self.stored)
            out.update({
                "with_store_ms_per_step": 1e3 * store_s,
                "with_store_ms_per_step_repeats": [1e3 * x for x in self.stored],
                "with_store_tokens_per_s": b * s / store_s,
                "store_overhead": store_s / step_s - 1.0,
                # repeat i ran its plain and with-store loops back to back
                "store_overhead_paired_median": statistics.median(
                    w / p - 1.0 for p, w in zip(self.plain, self.stored)),
                # medians over repeats: host build per batch (prefetch thread), and per step the
                # main thread's wait on the prefetcher, its wait on the device (idle), and its
                # finish work (write-back + metrics fetch)
                "host_build_ms": 1e3 * statistics.median(h["build_s"] for h in self.host),
                "host_prefetch_wait_ms": 1e3 * statistics.median(h["wait_s"] for h in self.host),
                "host_device_wait_ms": 1e3 * statistics.median(h["device_s"] for h in self.host),
                "host_finish_ms": 1e3 * statistics.median(h["finish_s"] for h in self.host),
            })
        return out

    def close(self):
        self.row = self.batch = None


def bench_config(spec: str, *, repeats: int, log=print, **kw) -> dict:
    """Compiles and times one config's train step; returns its result dict."""
    bench = ConfigBench(spec, **kw)
    for r in range(repeats):
        log(f"  {bench.name} repeat {r + 1}/{repeats}: {bench.repeat()}")
    result = bench.result()
    bench.close()
    return result


# ----------------------------------------------------------------------------- many configs
def ratios(results) -> list:
    """Step-time ratios between configs of the same size (e.g. sas_small / bert_small)."""
    return common.ratios(results, RATIO_TARGETS)


def format_table(report: dict) -> str:
    res = report["results"]
    with_store = any("with_store_ms_per_step" in r for r in res)
    head = (f"{'config':<22}{'tokens/s':>11}{'ms/step':>10}{'MFU':>7}{'TFLOP/s':>9}{'peak mem':>10}"
            f"{'temp mem':>10}{'compile s':>10}{'enc fwd':>8}{'enc dots':>9}{'dots':>6}")
    if with_store:
        head += f"{'+store ms':>11}{'overhead':>10}{'build ms':>10}{'finish ms':>10}"
    lines = [f"device: {report['device_kind']} x{report['num_devices']} ({report['platform']}; host CPU "
             f"{report['cpu_model']}, {report['cpu_count']} cores)  date: {report['date']}",
             common.shape_line(report), head]
    for r in res:
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        temp = (r["compiled_memory"] or {}).get("temp_size_in_bytes")
        line = (f"{r['config']:<22}{r['tokens_per_s']:>11,.0f}{r['ms_per_step']:>10.2f}{mfu:>7}"
                f"{r['model_tflops_per_s']:>9.3f}{common.fmt_bytes(r['peak_memory_bytes']):>10}"
                f"{common.fmt_bytes(temp):>10}{r['compile_s']:>10.1f}{r['encoder_forwards']:>8}"
                f"{r['dots']['encoder_layer']:>9}{r['dots']['total']:>6}")
        if with_store:
            line += (f"{r['with_store_ms_per_step']:>11.2f}{100 * r['store_overhead']:>9.1f}%"
                     f"{r['host_build_ms']:>10.2f}{r['host_finish_ms']:>10.2f}")
        lines.append(line)
    for q in report["ratios"]:
        tgt = "" if q["target"] is None else f" (target <= {q['target']}: {'hit' if q['hit'] else 'MISS'})"
        paired = f", paired per repeat {q['paired_ratio_median']:.3f}" if "paired_ratio_median" in q else ""
        lines.append(f"step time {q['numerator']} / {q['denominator']} = {q['step_time_ratio']:.3f}{tgt} "
                     f"(medians; of minima {q['step_time_ratio_of_min']:.3f}{paired})")
    return "\n".join(lines)


def run_benchmark(configs=DEFAULT_CONFIGS, *, batch=None, seq_len=None, dtype=None, steps=None, repeats=None,
                  warmup=None, variant: str = "", with_store: bool = False, num_devices=None,
                  vocab_size: int = 30522, isolate: bool = False, log=print) -> dict:
    """Benchmarks `configs`; returns the report (device, date, shape, dtype, results, ratios)."""
    devices = jax.devices()[: num_devices or None]
    platform_name = devices[0].platform
    kw = dict(variant=variant, **common.settings(
        accelerator=platform_name != "cpu", variant=variant, batch=batch, seq_len=seq_len, dtype=dtype,
        steps=steps, repeats=repeats, warmup=warmup), with_store=with_store)
    batch, seq_len, dtype, steps, repeats, warmup = (kw[k] for k in ("batch", "seq_len", "dtype", "steps",
                                                                    "repeats", "warmup"))
    load0 = common.load_average()
    if isolate:
        results = []
        for spec in configs:
            log(f"{spec}: compiling and timing in its own process ...")
            results.append(_run_isolated(spec, num_devices=num_devices, vocab_size=vocab_size, **kw))
    else:
        # Build and compile every config, then interleave their repeats round-robin, so that
        # drift in the machine's load (a shared CPU) hits every config alike.
        kw.pop("repeats")
        benches = []
        for spec in configs:
            t = time.perf_counter()
            benches.append(ConfigBench(spec, devices=devices, vocab_size=vocab_size, **kw))
            log(f"{benches[-1].name}: built and compiled in {time.perf_counter() - t:.1f} s "
                f"(compile {benches[-1].compile_s:.1f} s)")
        common.time_round_robin(benches, repeats, log)
        results = [bench.result() for bench in benches]
        for bench in benches:
            bench.close()
    return {
        "device_kind": devices[0].device_kind, "platform": platform_name, "num_devices": len(devices),
        **common.host_facts(load0),
        "jax_version": jax.__version__, "shape": common.report_shape(results, batch, seq_len), "dtype": dtype, "variant": variant,
        "steps": steps, "repeats": repeats, "warmup": warmup, "with_store": with_store, "isolate": isolate,
        "results": results, "ratios": ratios(results),
    }


def _run_isolated(spec, *, num_devices, vocab_size, variant, batch, seq_len, dtype, steps, repeats, warmup,
                  with_store) -> dict:
    """One config in a fresh process (clean peak-memory high-water mark)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "one.json")
        cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), f"--configs={spec}", f"--json={out}",
               f"--steps={steps}", f"--repeats={repeats}", f"--warmup={warmup}", f"--dtype={dtype}",
               f"--vocab_size={vocab_size}"]
        cmd += [f"--variant={variant}"] if variant else []
        cmd += [f"--batch={batch}"] if batch is not None else []
        cmd += [f"--seq_len={seq_len}"] if seq_len is not None else []
        cmd += [f"--num_devices={num_devices}"] if num_devices else []
        cmd += ["--with-store"] if with_store else []
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # its log still goes to stderr
        with open(out) as f:
            return json.load(f)["results"][0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_shape_arguments(ap, DEFAULT_CONFIGS, dtype_help="compute dtype (default bf16; CPU f32)")
    ap.add_argument("--with-store", "--with_store", dest="with_store", action="store_true",
                    help="also time the trainer's loop with host batch building, to_global and the store")
    ap.add_argument("--num_devices", type=int, default=None, help="use the first N devices (default all)")
    ap.add_argument("--vocab_size", type=int, default=30522, help="for configs with model.vocab_size=-1")
    ap.add_argument("--isolate", action="store_true", help="run each config in its own process")
    ap.add_argument("--json", default="", help="write the report here")
    args = ap.parse_args(argv)
    report = run_benchmark(**common.shape_arguments(args), with_store=args.with_store,
                           num_devices=args.num_devices, vocab_size=args.vocab_size, isolate=args.isolate,
                           log=common.log_to_stderr)
    print(format_table(report), flush=True)
    common.write_report(args.json, report)
    return report


if __name__ == "__main__":
    main()
