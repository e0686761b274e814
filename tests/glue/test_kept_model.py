"""Kept fine-tuned weights: one tiny sweep (SST-2: one text, classes; STS-B: pairs, regression)
keeps its selected runs; `predict_file` labels new files as the sweep's dev evaluation did;
`glue predict` uses them without fine-tuning again; `convert export --model` gives HF
classifiers with the project's logits (ELECTRA from the sweep, DebertaV2 from a DA encoder;
BERT refused); errors are one line."""
import csv
import dataclasses
import json
import os
import re
import types

import glue_fixtures as gf
import jax
import numpy as np
import pytest

from sas_jax.convert import hf_classifier
from sas_jax.convert.__main__ import main as convert_main
from sas_jax.glue import finetune as finetune_lib
from sas_jax.glue import kept_model, sweep
from sas_jax.glue import predict_file as predict_file_lib
from sas_jax.glue import model as model_lib
from sas_jax.glue.metrics import task_metrics
from sas_jax.glue.tasks import SPECS

TASKS = ("sst2", "stsb")


def _tsv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def swept(prepared_corpus, glue_dir, tmp_path_factory):
    """The sweep (random encoder, tiny recipe, 1 epoch, 1 seed) and the dev predictions of its
    final evaluation (the best epoch's weights), per task."""
    pre = gf.random_encoder(prepared_corpus)
    out = str(tmp_path_factory.mktemp("kept") / "sweep")
    dev_preds, logs = {}, []
    real = finetune_lib.evaluate

    def recording(runner, params, data, task, batch_size):
        metrics, preds = real(runner, params, data, task, batch_size)
        dev_preds[task] = preds  # the last call of a run is the final re-evaluation on dev
        return metrics, preds

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finetune_lib, "evaluate", recording)
        sweep.run_sweep({}, out, tasks=",".join(TASKS), glue_dir=str(glue_dir), config="glue:tiny",
                        overrides=["num_epochs=1"], pretrained=pre, log=logs.append)
    runs = {t: json.load(open(os.path.join(out, "runs", t, "lr0.005_bs8_seed0.json"))) for t in TASKS}
    return types.SimpleNamespace(out=out, glue=glue_dir, pre=pre, dev_preds=dev_preds, runs=runs, logs=logs)


@pytest.fixture(scope="module")
def made(prepared_corpus, tmp_path_factory):
    """Kept models written without a sweep (a random encoder, fresh heads): SST-2 and STS-B."""
    from conftest import load_config  # noqa: PLC0415

    pre = gf.random_encoder(prepared_corpus)
    root = tmp_path_factory.mktemp("made")
    out = {}
    for task in TASKS:
        spec = SPECS[task]
        model = model_lib.GlueModel(pre.cfg, spec.num_labels)
        params, _, _ = model_lib.merge_pretrained(model_lib.init_params(model, jax.random.key(1)), pre.params)
        result = {"task": task, "title": spec.title, "learning_rate": 5e-3, "batch_size": 8, "seed": 0,
                  "score": 0.5, "config": load_config("glue", f"tiny,task={task}").to_dict()}
        tuned = finetune_lib.Finetuned(result, params, types.SimpleNamespace(model=model), spec)
        out[task] = kept_model.save(str(root / task), tuned, pre.tokenizer)
    return types.SimpleNamespace(**out)


@pytest.mark.slow
def test_kept_model_predicts_a_file_as_the_sweeps_dev_evaluation(swept, tmp_path):
    sst2_dir = kept_model.best_dir(swept.out, "sst2")
    assert sorted(os.listdir(sst2_dir)) == ["model.json", "params.npz", "tokenizer.model"]
    assert sorted(os.listdir(os.path.dirname(sst2_dir))) == ["best"]  # written whole: no temporary folders
    meta = json.load(open(os.path.join(sst2_dir, "model.json")))
    assert meta["run"]["id"] == "lr0.005_bs8_seed0" and meta["run"]["score"] == swept.runs["sst2"]["score"]
    assert meta["task"]["labels"] == ["0", "1"] and meta["max_seq_length"] == 32
    assert any(re.match(r"SST-2: kept lr0.005_bs8_seed0 \(dev \d\.\d{4}\) in .*models/sst2/best$", m)
               for m in swept.logs)

    # SST-2: the dev file as a TSV (its 'sentence' column found by name) and as plain text.
    dev = _tsv(swept.glue / "SST-2" / "dev.tsv")
    gold = np.array([int(r[1]) for r in dev[1:]])
    text = tmp_path / "new.txt"
    text.write_text("\n".join(r[0] for r in dev[1:]) + "\n\n")  # a blank line is skipped
    for src in (swept.glue / "SST-2" / "dev.tsv", text):
        out = predict_file_lib.predict_file(sst2_dir, str(src), str(tmp_path / "sst2.tsv"), log=lambda *_: None)
        rows = _tsv(tmp_path / "sst2.tsv")
        assert rows[0] == ["row", "prediction", "p_0", "p_1"] and len(rows) == 1 + len(gold)
        labels = np.array([int(r[1]) for r in rows[1:]])
        np.testing.assert_array_equal(labels, swept.dev_preds["sst2"])  # the sweep's own dev predictions
        probs = np.array([[float(r[2]), float(r[3])] for r in rows[1:]])
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=2e-6)
        np.testing.assert_array_equal(probs.argmax(1), labels)
        assert float(np.mean(labels == gold)) == swept.runs["sst2"]["score"]
        assert out["rows"] == len(gold)

    # STS-B: pairs from a CSV (sentence1/sentence2 found by name), scores, JSON lines out.
    dev = _tsv(swept.glue / "STS-B" / "dev.tsv")
    head = dev[0]
    csv_in = tmp_path / "pairs.csv"
    with open(csv_in, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "sentence2", "sentence1"])
        w.writerows([[i, r[head.index("sentence2")], r[head.index("sentence1")]] for i, r in enumerate(dev[1:])])
    predict_file_lib.predict_file(kept_model.best_dir(swept.out, "stsb"), str(csv_in), str(tmp_path / "s.jsonl"),
                                  log=lambda *_: None)
    lines = [json.loads(line) for line in open(tmp_path / "s.jsonl")]
    assert [r["row"] for r in lines] == list(range(len(dev) - 1)) and set(lines[0]) == {"row", "prediction"}
    scores = np.array([r["prediction"] for r in lines])
    np.testing.assert_allclose(scores, swept.dev_preds["stsb"], rtol=1e-5, atol=1e-6)
    gold = np.array([float(r[-1]) for r in dev[1:]], np.float32)
    assert task_metrics("stsb", scores, gold)["score"] == pytest.approx(swept.runs["stsb"]["score"], abs=1e-5)


@pytest.mark.slow
def test_glue_predict_uses_the_kept_weights_without_fine_tuning(swept, tmp_path, monkeypatch, capsys):
    def refuse(*_, **__):
        raise AssertionError("glue predict fine-tuned again although the sweep kept the weights")

    monkeypatch.setattr(finetune_lib, "finetune", refuse)
    out = tmp_path / "submission"
    assert sweep.main(["predict", f"--sweep_dir={swept.out}", f"--glue_dir={swept.glue}", f"--out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "SST-2: predicting with the kept weights of lr0.005_bs8_seed0" in printed
    assert "not fine-tuned again" in printed and "fine-tuning it again" not in printed
    state = json.load(open(out / "predict.json"))
    for t in TASKS:
        assert state["tasks"][t]["weights"] == "kept" and "refinetuned_score" not in state["tasks"][t]
    # The same labels as predict_file on the test file.
    predict_file_lib.predict_file(kept_model.best_dir(swept.out, "sst2"), str(swept.glue / "SST-2" / "test.tsv"),
                                  str(tmp_path / "t.tsv"), log=lambda *_: None)
    assert [r[1] for r in _tsv(out / "SST-2.tsv")[1:]] == [r[1] for r in _tsv(tmp_path / "t.tsv")[1:]]


def test_a_better_run_replaces_the_kept_one_and_a_worse_does_not(made, tmp_path):
    kept = kept_model.load(made.sst2)
    model = model_lib.GlueModel(kept.cfg, kept.num_labels)

    def tuned(score, seed):
        result = {**kept.meta["run"], "task": "sst2", "title": "SST-2", "config": kept.meta["config"],
                  "score": score, "seed": seed}
        spec = types.SimpleNamespace(name="sst2", title="SST-2", labels=("0", "1"), is_regression=False,
                                     num_labels=2, tsv_a="sentence", tsv_b=None)
        return finetune_lib.Finetuned(result, kept.params, types.SimpleNamespace(model=model), spec)

    out = str(tmp_path / "sweep")
    quiet = lambda *_: None  # noqa: E731
    assert kept_model.offer(out, tuned(0.5, 1), kept.tokenizer, log=quiet) == [kept_model.best_dir(out, "sst2")]
    assert kept_model.offer(out, tuned(0.4, 2), kept.tokenizer, log=quiet) == []  # worse: kept as is
    assert kept_model.offer(out, tuned(0.5, 3), kept.tokenizer, log=quiet) == []  # a tie: the lower seed stays
    assert kept_model.read_meta(kept_model.best_dir(out, "sst2"))["run"]["seed"] == 1
    written = kept_model.offer(out, tuned(0.6, 0), kept.tokenizer, keep="all", log=quiet)
    assert [os.path.basename(p) for p in written] == ["lr0.005_bs8_seed0", "best"]
    assert kept_model.read_meta(kept_model.best_dir(out, "sst2"))["run"]["score"] == 0.6
    assert sorted(os.listdir(os.path.join(out, "models", "sst2"))) == ["best", "lr0.005_bs8_seed0"]
    assert kept_model.find(out, "sst2", "lr0.005_bs8_seed1") is None
    assert kept_model.offer(out, tuned(0.9, 0), kept.tokenizer, keep="none", log=quiet) == []


# ----------------------------------------------------------------------------- export
def _hf(folder):
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
    return tok, model.eval()


def _hf_logits(folder, text_a, text_b, kept):
    torch = pytest.importorskip("torch")
    tok, model = _hf(folder)
    enc = tok(text_a, text_b, padding=True, truncation=True, return_tensors="pt")
    ours = kept.encode(text_a, text_b)
    for i in range(len(text_a)):  # the HF tokenizer gives the ids the classifier was fine-tuned on
        n = int(ours.input_mask[i].sum())
        assert enc["input_ids"][i][:n].tolist() == ours.input_ids[i][:n].tolist()
        assert enc["token_type_ids"][i][:n].tolist() == ours.token_type_ids[i][:n].tolist()
    with torch.no_grad():
        return model(**enc).logits.numpy(), model.config, ours


@pytest.mark.slow
def test_exported_classifiers_load_in_transformers_with_the_projects_logits(swept, tmp_path, capsys):
    pytest.importorskip("torch")
    jax.config.update("jax_default_matmul_precision", "highest")
    try:
        for task, pair in (("sst2", False), ("stsb", True)):
            out = tmp_path / task
            assert convert_main(["export", f"--model={kept_model.best_dir(swept.out, task)}", f"--out={out}"]) == 0
            assert capsys.readouterr().out.strip() == f"classifier: {out}"
            kept = kept_model.load(kept_model.best_dir(swept.out, task))
            rows = _tsv(swept.glue / ("SST-2" if task == "sst2" else "STS-B") / "dev.tsv")[1:9]
            a = [r[0] for r in rows] if not pair else [r[7] for r in rows]
            b = [r[8] for r in rows] if pair else None
            logits, config, enc = _hf_logits(str(out), a, b, kept)
            ours = kept_model.Predictor(kept).logits(enc)
            np.testing.assert_allclose(logits, ours, atol=1e-5, rtol=0)
            assert config.architectures == ["ElectraForSequenceClassification"]
            if pair:
                assert config.num_labels == 1 and config.problem_type == "regression"
            else:
                assert config.id2label == {0: "0", 1: "1"} and config.problem_type == "single_label_classification"
    finally:
        jax.config.update("jax_default_matmul_precision", None)


def test_disentangled_classifier_exports_as_debertav2_and_bert_is_refused(made, tmp_path):
    pytest.importorskip("torch")
    sas = kept_model.load(made.sst2)
    cfg = dataclasses.replace(sas.cfg, attention_type="disentangled", position_biased_input=False, type_vocab_size=0,
                              layer_norm_eps=1e-7, max_position_embeddings=64, dropout_rate=0.0,
                              attention_dropout_rate=0.0)
    fresh = model_lib.init_params(model_lib.GlueModel(cfg, 3), jax.random.key(0))
    rng = np.random.RandomState(0)  # noise on every tensor, so every bias and LayerNorm matters
    params = jax.tree.map(lambda x: (np.asarray(x) + 0.1 * rng.randn(*x.shape)).astype(np.float32), fresh)
    meta = {**sas.meta, "model": dataclasses.asdict(cfg),
            "task": {**sas.task, "labels": ["a", "b", "c"], "num_labels": 3, "pair": True, "title": "NLI"}}
    kept = kept_model.KeptModel(str(tmp_path), meta, cfg, params, sas.tokenizer)
    jax.config.update("jax_default_matmul_precision", "highest")
    try:
        hf_classifier.export_classifier(kept, str(tmp_path / "da"))
        a, b = ["love and truth", "the night is old and foul"], ["death and shame", "sweet day"]
        logits, config, enc = _hf_logits(str(tmp_path / "da"), a, b, kept)
        np.testing.assert_allclose(logits, kept_model.Predictor(kept).logits(enc), atol=1e-5, rtol=0)
    finally:
        jax.config.update("jax_default_matmul_precision", None)
    assert config.architectures == ["DebertaV2ForSequenceClassification"]
    assert config.label2id == {"a": 0, "b": 1, "c": 2}
    with pytest.raises(ValueError, match=r"^BertForSequenceClassification's head is BERT's pooler \(dense -> tanh\)"):
        hf_classifier.export_classifier(kept, str(tmp_path / "bert"), architecture="BertForSequenceClassification")
    with pytest.raises(ValueError, match=r"disentangled model cannot be exported as ElectraModel"):
        hf_classifier.export_classifier(kept, str(tmp_path / "el"), architecture="ElectraForSequenceClassification")
    assert not os.path.exists(tmp_path / "bert") and not os.path.exists(tmp_path / "el")


# ----------------------------------------------------------------------------- errors
def test_bad_input_is_one_error_line(made, glue_dir, tmp_path, capsys):
    sst2, stsb = made.sst2, made.stsb
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "head.tsv").write_text("sentence\tlabel\n")
    (tmp_path / "t.tsv").write_text("review\tlabel\nlove me\t1\n")
    (tmp_path / "p.txt").write_text("love me\n")
    (tmp_path / "short.jsonl").write_text('{"text": "love"}\n{"txt": "shame"}\n')
    o = f"--output={tmp_path}/o.tsv"
    glue = [
        (["predict_file", f"--model={sst2}", f"--input={tmp_path}/empty.txt", o], r"empty.txt has no lines to predict$"),
        (["predict_file", f"--model={sst2}", f"--input={tmp_path}/head.tsv", o],
         r"head.tsv has no rows to predict \(a header row, then one row per input\)$"),
        (["predict_file", f"--model={sst2}", f"--input={tmp_path}/t.tsv", o],
         r"t.tsv: pass --text_column=<column> \(the text\); its columns: review, label$"),
        (["predict_file", f"--model={sst2}", f"--input={tmp_path}/t.tsv", "--text_column=text", o],
         r"t.tsv has no column 'text' \(the text\); its columns: review, label$"),
        (["predict_file", f"--model={sst2}", f"--input={tmp_path}/short.jsonl", o],
         r"short.jsonl row 2 has no 'text' value"),
        (["predict_file", f"--model={stsb}", f"--input={tmp_path}/p.txt", o],
         r"the model \(STS-B\) reads pairs of texts; give a TSV, CSV or JSONL file"),
        (["predict_file", f"--model={tmp_path}", f"--input={tmp_path}/p.txt", o],
         r"is not a kept fine-tuned model \(no readable model.json"),
        (["predict_file", f"--model={sst2}", f"--input={tmp_path}/none.txt", o], r"input file .*none.txt not found$"),
    ]
    for argv, pattern in glue:
        assert sweep.main(argv) == 2, argv
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("error: ") and re.search(pattern, err[0]), err
    assert not os.path.exists(tmp_path / "o.tsv")
    convert = [
        (["export", f"--model={sst2}", f"--out={tmp_path}/b", "--architecture=BertForSequenceClassification"],
         r"cannot be exported: BertForSequenceClassification's head is BERT's pooler \(dense -> tanh\).*"
         r"export this encoder as ElectraForSequenceClassification"),
        (["export", f"--model={sst2}", f"--checkpoint_dir={tmp_path}", f"--out={tmp_path}/c"],
         r"export needs exactly one of --checkpoint_dir"),
        (["export", f"--model={tmp_path}/nope", f"--out={tmp_path}/d"], r"model folder .*nope not found"),
    ]
    for argv, pattern in convert:
        assert convert_main(argv) == 2, argv
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("error: ") and re.search(pattern, err[0]), err
    assert not os.path.exists(tmp_path / "b")
    with pytest.raises(Exception, match=r"--keep=some; use one of best, all, none"):
        sweep.run_sweep({}, str(tmp_path / "s"), tasks="sst2", glue_dir=str(glue_dir), keep="some")
