"""Smoke test of `benchmarks/step_throughput.py` at the tiny CPU shape (in-process, < 30 s).

Sane, positive numbers and JSON fields for SAS, BERT and ELECTRA, and the structural claim
the benchmark exists to check: SAS and BERT run the same single encoder forward per step
(identical encoder-layer dot ops; SAS's total = BERT's + the RTD head's), ELECTRA two.
"""
import json
import math

import jax
from conftest import load_script


def test_step_benchmark_tiny_cpu(tmp_path, capsys):
    bench = load_script("step_throughput")
    out = tmp_path / "out.json"
    bench.main(["--configs=sas_small,bert_small,electra_small", "--variant=tiny", "--steps=2", "--repeats=1",
                "--warmup=1", "--num_devices=1", "--with-store", f"--json={out}"])
    table = capsys.readouterr().out
    report = json.loads(out.read_text())

    for key in ("device_kind", "platform", "date", "shape", "dtype", "results", "ratios", "cpu_model"):
        assert key in report, key
    assert report["shape"] == {"batch": 8, "seq_len": 32} and report["dtype"] == "float32"
    res = {r["config"].split(":")[0]: r for r in report["results"]}
    assert set(res) == {"sas_small", "bert_small", "electra_small"}
    for name, r in res.items():
        assert name in table
        for key in ("tokens_per_s", "ms_per_step", "compile_s", "with_store_ms_per_step", "model_tflops_per_s"):
            assert math.isfinite(r[key]) and r[key] > 0, (name, key, r[key])
        assert r["tokens_per_s"] == r["batch"] * r["seq_len"] / (r["ms_per_step"] / 1e3)
        assert "peak_memory_bytes" in r and "mfu" in r and math.isfinite(r["store_overhead"])
        if jax.devices()[0].platform == "cpu":
            assert r["mfu"] is None  # the CPU's peak is unknown: never guessed
        assert r["dots"]["unnamed"] == 0 and r["dots"]["forward"] * 3 == r["dots"]["total"]
        assert r["encoder_forwards"] == r["encoder_forwards_from_flops"]
        # XLA's count of the compiled step over the live convention's matmul count: at the tiny
        # width (H = 32) the elementwise work, the softmaxes and the update weigh in (measured
        # on CPU: SAS 1.37, BERT 1.36, ELECTRA 1.57; docs/benchmarks.md "XLA's FLOPs").
        assert 1.2 < r["xla_over_model_flops"] < 1.8, (name, r["xla_over_model_flops"])

    sas, bert, electra = res["sas_small"], res["bert_small"], res["electra_small"]
    # The same encoder forward: one stack, the same dot ops inside its layers.
    assert sas["encoder_forwards"] == bert["encoder_forwards"] == 1
    assert sas["dots"]["encoder_layer"] == bert["dots"]["encoder_layer"] > 0
    assert sas["dots"]["by_module"]["mlm_head"] == bert["dots"]["by_module"]["mlm_head"]
    assert sas["dots"]["total"] == bert["dots"]["total"] + sas["dots"]["by_module"]["rtd_head"]
    assert "rtd_head" not in bert["dots"]["by_module"]
    # ELECTRA: generator + discriminator.
    assert electra["encoder_forwards"] == 2
    assert electra["dots"]["forwards_by_stack"] == {"generator": 1, "discriminator": 1}
    assert electra["dots"]["encoder_layer"] == 2 * sas["dots"]["encoder_layer"]
    assert electra["dots"]["total"] > sas["dots"]["total"]

    pairs = {(q["numerator"].split(":")[0], q["denominator"].split(":")[0]): q for q in report["ratios"]}
    assert pairs[("sas_small", "bert_small")]["target"] == 1.05
    assert pairs[("sas_small", "electra_small")]["target"] == 0.65
    assert all(q["step_time_ratio"] > 0 for q in pairs.values())


def test_dot_census_reads_scopes():
    bench = load_script("step_throughput")
    text = "\n".join([
        '%1 = stablehlo.dot_general %a, %b : (x) -> y loc(#loc1)',
        '%2 = stablehlo.dot_general %a, %b : (x) -> y loc(#loc2)',
        '%3 = stablehlo.dot_general %a, %b : (x) -> y loc(#loc3)',
        '#loc1 = loc("jit(traced)/jvp(PretrainingModel)/encoder/layer_0/intermediate/dot_general"(#loc9))',
        '#loc2 = loc("jit(traced)/transpose(jvp(PretrainingModel))/encoder/layer_0/intermediate/dot_general"(#loc9))',
        '#loc3 = loc("jit(traced)/jvp(PretrainingModel)/rtd_head/dense/dot_general"(#loc9))',
    ])
    c = bench.dot_census(text, num_layers=1)
    assert c["total"] == 3 and c["forward"] == 2 and c["backward"] == 1
    assert c["encoder_layer"] == 2 and c["outside_layers"] == 1 and c["encoder_forwards"] == 1
    assert c["by_module"] == {"encoder": 2, "rtd_head": 1}
