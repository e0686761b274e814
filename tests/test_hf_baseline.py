"""Smoke test of `benchmarks/hf_baseline.py` (HF transformers + PyTorch peer) at the tiny CPU shape.

The step runs for BERT, ELECTRA and SAS, its losses are finite, the JSON carries
`step_throughput.py`'s column names, and each HF peer has exactly the parameters of
the model `sas_jax` builds for the same config (same shapes). Eager only: `torch.compile`
takes minutes on CPU.
"""
import json
import math

import pytest
from conftest import load_config, load_script

pytest.importorskip("torch")
pytest.importorskip("transformers")

# Result columns shared with benchmarks/step_throughput.py's JSON.
SHARED_RESULT_KEYS = ("config", "objective", "attention_type", "heads", "batch", "seq_len", "dtype", "vocab_size",
                      "max_predictions", "params", "tokens_per_s", "ms_per_step", "ms_per_step_repeats",
                      "ms_per_step_min", "model_flops_per_step", "model_tflops_per_s", "mfu", "peak_memory_bytes",
                      "compile_s", "first_call_s", "encoder_forwards", "notes")
SHARED_REPORT_KEYS = ("device_kind", "platform", "num_devices", "cpu_model", "cpu_count", "load_average_start",
                      "load_average_end", "date", "shape", "dtype", "variant", "steps", "repeats", "warmup",
                      "results", "ratios")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    bench = load_script("hf_baseline")
    tmp = tmp_path_factory.mktemp("hf")
    ours = {"results": [{"config": "sas_small:tiny", "tokens_per_s": 1000.0, "batch": 8, "seq_len": 32,
                         "dtype": "float32", "with_store_tokens_per_s": 900.0}]}
    (tmp / "ours.json").write_text(json.dumps(ours))
    out = tmp / "hf.json"
    bench.main(["--configs=sas_small,bert_small,electra_small", "--variant=tiny", "--steps=1", "--repeats=2",
                "--warmup=0", "--device=cpu", f"--compare={tmp / 'ours.json'}", f"--json={out}"])
    return json.loads(out.read_text())


def test_steps_run_with_finite_losses(report):
    res = {r["config"]: r for r in report["results"]}
    assert set(res) == {"sas_small:tiny", "bert_small:tiny", "electra_small:tiny"}
    want = {"sas_small:tiny": ("sas", 1, True), "bert_small:tiny": ("bert", 1, False),
            "electra_small:tiny": ("electra", 2, True)}
    for name, r in res.items():
        recipe, forwards, rtd = want[name]
        assert (r["recipe"], r["encoder_forwards"], r["heads"]["rtd"]) == (recipe, forwards, rtd), name
        assert r["compile"] is False and r["compile_s"] is None
        for key in ("loss", "mlm_loss", "rtd_loss"):
            assert math.isfinite(r[key]), (name, key, r[key])
        assert r["mlm_loss"] > 0 and (r["rtd_loss"] > 0) == rtd
        for key in ("tokens_per_s", "ms_per_step", "ms_per_step_min", "model_tflops_per_s", "first_call_s"):
            assert math.isfinite(r[key]) and r[key] > 0, (name, key, r[key])
        assert r["tokens_per_s"] == pytest.approx(r["batch"] * r["seq_len"] / (r["ms_per_step"] / 1e3))
        assert len(r["ms_per_step_repeats"]) == 2
        assert r["mfu"] is None and r["peak_memory_bytes"] is None  # CPU: no peak, no allocator stats


def test_shapes_and_columns(report):
    for key in SHARED_REPORT_KEYS:
        assert key in report, key
    assert report["shape"] == {"batch": 8, "seq_len": 32} and report["dtype"] == "float32"
    assert report["platform"] == "cpu" and report["variant"] == "tiny"
    for r in report["results"]:
        for key in SHARED_RESULT_KEYS:
            assert key in r, (r["config"], key)
        assert (r["batch"], r["seq_len"], r["dtype"], r["vocab_size"], r["max_predictions"]) == (8, 32, "float32",
                                                                                                  128, 6)
    pairs = {(q["numerator"], q["denominator"]) for q in report["ratios"]}
    assert pairs == {("sas_small:tiny", "bert_small:tiny"), ("sas_small:tiny", "electra_small:tiny")}
    (c,) = report["comparison"]
    assert c["config"] == "sas_small:tiny" and c["same_shape"]
    sas = next(r for r in report["results"] if r["config"] == "sas_small:tiny")
    assert c["tokens_per_s_ratio"] == pytest.approx(1000.0 / sas["tokens_per_s"])
    assert c["with_store_tokens_per_s_ratio"] == pytest.approx(900.0 / sas["tokens_per_s"])


def test_hf_peers_have_the_parameters_of_our_models(report):
    """Same shapes: each HF peer's parameter count is that of `objectives.build(...).model` for the config."""
    from sas_jax import plan  # noqa: PLC0415

    for r in report["results"]:
        name = r["config"].split(":")[0]
        assert r["params"] == plan.param_count(load_config(name, "tiny"), r["vocab_size"]), name


def test_rows_without_a_peer_are_refused():
    bench = load_script("hf_baseline")
    with pytest.raises(ValueError, match="absolute-position"):
        bench.recipe_of(load_config("deberta_small", "tiny"))
