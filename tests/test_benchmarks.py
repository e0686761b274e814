"""`benchmarks/step_throughput.py`: its report at the tiny CPU shape, and its helpers.

`check_step_report` holds what a report must show: sane, positive numbers and JSON fields for
SAS, BERT and ELECTRA, and the structural claim the benchmark exists to check: SAS and BERT run
the same single encoder forward per step (identical encoder-layer dot ops; SAS's total = BERT's
+ the RTD head's), ELECTRA two. The report it checks is the one `benchmarks/gpu_check.py --tiny`
makes in its `step` phase (tests/test_gpu_check.py): the same three rows at the tiny shape with
the store, so the benchmark runs once in the suite, not twice.
"""
import math

import jax
from conftest import load_script


def check_step_report(report: dict, table: str) -> None:
    """`step_throughput.py --configs=sas_small,bert_small,electra_small --variant=tiny --with-store`'s
    JSON `report` and printed `table`."""
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


def test_cpu_profile_groups_xla_and_aten_ops_into_the_same_kinds(tmp_path):
    """The profile's kinds: XLA:CPU op names (XNNPACK/Eigen dots, fusions named by their roots, the
    threefry bit ops) and aten names land in the same groups, and only the runtime's worker-thread
    op events of a jax.profiler trace count (not Python, dispatch or the executor's own spans)."""
    import gzip  # noqa: PLC0415
    import json  # noqa: PLC0415

    prof = load_script("cpu_profile")
    ours = {"ynn_fusion": "matmul", "dot": "matmul", "multiply_reduce_fusion": "reduction",
            "negate_exponential_fusion": "reduction", "shift-right-logical_xor_fusion": "random",
            "transpose_copy_fusion": "layout", "wrapped_broadcast": "layout", "copy": "layout",
            "broadcast_add_fusion": "elementwise", "multiply_add_fusion": "elementwise", "while": "other"}
    assert {n: prof.our_kind(n) for n in ours} == ours
    peer = {"addmm": "matmul", "bmm": "matmul", "native_layer_norm_backward": "reduction", "_softmax": "reduction",
            "native_dropout": "random", "gelu_backward": "elementwise", "_foreach_mul_": "optimizer",
            "embedding_dense_backward": "layout", "_log_softmax_backward_data": "reduction", "t": "layout",
            "tanh_backward": "elementwise", "_to_copy": "layout", "mystery": "other"}
    assert {n: prof.peer_kind(n) for n in peer} == peer
    events = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 7, "args": {"name": "tf_XLAEigen/123"}},
              {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "python"}},
              {"ph": "X", "name": "dot.3", "pid": 1, "tid": 7, "dur": 5.0},
              {"ph": "X", "name": "dot.9", "pid": 1, "tid": 7, "dur": 2.5},
              {"ph": "X", "name": "ThunkExecutor::Execute", "pid": 1, "tid": 7, "dur": 99.0},
              {"ph": "X", "name": "end: copy.1", "pid": 1, "tid": 7, "dur": 1.0},
              {"ph": "X", "name": "fusion.2", "pid": 1, "tid": 1, "dur": 50.0}]
    path = tmp_path / "plugins" / "profile" / "run" / "host.trace.json.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    assert prof.xla_op_times(str(tmp_path)) == {"dot": 7.5}
    assert prof.by_kind({"dot": 7500.0, "add_fusion": 3000.0}, prof.our_kind, steps=3) == {
        **dict.fromkeys(prof.KINDS, 0.0), "matmul": 2.5, "elementwise": 1.0}
