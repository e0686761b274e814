"""Tasks given by files (task.json + TSV/CSV/JSON lines), the random-init baseline, and both in the
study: loading and checking without training, one combined end-to-end sweep, seeded random encoders."""
import csv
import json
import os
import re

import glue_fixtures as gf
import numpy as np
import pytest

from sas_jax import checkpointing, config_lib
from sas_jax.errors import UserError
from sas_jax.glue import data as data_lib
from sas_jax.glue import finetune as finetune_lib
from sas_jax.glue import metrics, results, sweep, user_task
from sas_jax.glue import model as model_lib
from sas_jax.glue.tasks import USER_SPECS, get_task, parse_tasks

NLI = ("entailment", "neutral", "contradiction")


def quiet(*_):
    pass


def write_tasks(root, n_train=16, n_dev=8) -> dict:
    """Three tasks from the GLUE fixtures' learnable rows: {kind: task.json path}.

    tsv: one text, 3 classes named by the data; csv: a text pair, 2 listed classes (metric f1,
    a quoted comma in a text); jsonl: one text, a regression score (metric spearman)."""
    root = str(root)
    paths = {}
    rows = {s: gf.make_rows("mnli", s, n, seed=3) for s, n in (("train", n_train), ("dev", n_dev), ("test", 4))}
    folder = os.path.join(root, "tsv3")
    os.makedirs(folder)
    for s, rs in rows.items():
        with open(os.path.join(folder, f"{s}.tsv"), "w") as f:
            f.write("id\ttext\tgold\n" + "".join(f"{i}\t{a}\t{NLI[y] if y >= 0 else ''}\n"
                                                 for i, (a, _, y) in enumerate(rs)))
    json.dump({"name": "nli3", "train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv", "text": "text",
               "label": "gold"}, open(os.path.join(folder, "task.json"), "w"))
    paths["tsv"] = os.path.join(folder, "task.json")

    folder = os.path.join(root, "csv_pair")
    os.makedirs(folder)
    for s, n in (("train", n_train), ("dev", n_dev)):
        with open(os.path.join(folder, f"{s}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["premise", "hypothesis", "same"])
            for i, (a, b, y) in enumerate(gf.make_rows("rte", s, n, seed=4)):
                w.writerow([a + (", and so on" if i == 0 else ""), b, ("no", "yes")[y]])
    json.dump({"name": "pair2", "title": "Pair-2", "train": "train.csv", "dev": "dev.csv",
               "text": ["premise", "hypothesis"], "label": "same", "labels": ["no", "yes"], "metric": "f1"},
              open(os.path.join(folder, "task.json"), "w"))
    paths["csv"] = os.path.join(folder, "task.json")

    folder = os.path.join(root, "jsonl_reg")
    os.makedirs(folder)
    for s, n in (("train", n_train), ("dev", n_dev)):
        with open(os.path.join(folder, f"{s}.jsonl"), "w") as f:
            for a, _, y in gf.make_rows("stsb", s, n, seed=5):
                f.write(json.dumps({"sentence": a, "score": y}) + "\n")
            f.write("\n")  # a blank last line is fine
    json.dump({"name": "score", "train": "train.jsonl", "dev": "dev.jsonl", "label": "score", "regression": True,
               "metric": "spearman"}, open(os.path.join(folder, "task.json"), "w"))
    paths["jsonl"] = os.path.join(folder, "task.json")
    return paths


# ----------------------------------------------------------------------------- loading (no training)
def test_task_files_become_task_specs(tmp_path):
    paths = write_tasks(tmp_path)
    nli = get_task(paths["tsv"])
    assert (nli.name, nli.title, nli.labels, nli.selection, nli.metric) == ("nli3", "nli3", tuple(sorted(NLI)),
                                                                             "accuracy", "accuracy")
    assert (nli.train_size, nli.dev_sizes, nli.test_splits, nli.is_glue) == (16, {"dev": 8}, ("test",), False)
    pair = get_task(os.path.dirname(paths["csv"]))  # the folder holding task.json
    assert (pair.labels, pair.num_labels, pair.metric, pair.tfds_keys) == (("no", "yes"), 2, "f1",
                                                                           ("premise", "hypothesis"))
    reg = get_task(paths["jsonl"])
    assert reg.is_regression and reg.num_labels == 1 and reg.selection == "spearman"
    assert get_task("NLI3") is USER_SPECS["nli3"]  # registered by name once read
    assert parse_tasks(f"{paths['jsonl']},rte,nli3") == ("rte", "score", "nli3")

    splits = data_lib.load_task("nli3", splits=("train", "dev", "test"))  # no GLUE source needed
    rows = gf.make_rows("mnli", "train", 16, seed=3)
    assert splits["train"].text_a == [a for a, _, _ in rows] and splits["train"].text_b is None
    assert splits["train"].labels.tolist() == [sorted(NLI).index(NLI[y]) for _, _, y in rows]
    assert splits["test"].labels.tolist() == [-1] * 4 and not splits["test"].has_labels
    csv_train = data_lib.load_task("pair2")["train"]
    assert csv_train.text_a[0].endswith(", and so on") and len(csv_train.text_b) == 16
    assert csv_train.labels.tolist() == [y for _, _, y in gf.make_rows("rte", "train", 16, seed=4)]
    reg_train = data_lib.load_task("score")["train"]
    assert reg_train.labels.dtype == np.float32
    np.testing.assert_allclose(reg_train.labels, [y for _, _, y in gf.make_rows("stsb", "train", 16, seed=5)])
    with pytest.raises(UserError, match=r"csv_pair/task.json names no test file; add \"test\""):
        data_lib.load_task("pair2", splits=("test",))

    # configs/glue.py takes the file too; the run's config records it, so a fresh process finds the task.
    c = config_lib.load_config(f"glue:tiny,task={paths['csv']}")
    assert (c.task, c.data.task_file, c.data.train_size) == ("pair2", paths["csv"], 16)
    assert sweep.load_task_config(paths["tsv"]).num_epochs == 3  # the default of a task file
    USER_SPECS.pop("pair2")
    assert finetune_lib.task_of(c).name == "pair2" and "pair2" in USER_SPECS

    # Metrics of a task file: all of its kind; its own one is score and selection.
    preds, gold = np.array([0, 1, 1, 0, 1, 1]), np.array([0, 1, 0, 0, 1, 1])
    m = metrics.task_metrics("pair2", preds, gold)
    assert m["score"] == m["selection"] == m["f1"] == pytest.approx(2 * 3 / (4 + 3))
    assert m["accuracy"] == pytest.approx(5 / 6) and m["mcc"] == pytest.approx(metrics.matthews_corrcoef(preds, gold))
    m3 = metrics.task_metrics("nli3", np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]))
    assert m3["f1"] == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))  # macro F1 with 3 classes
    r = metrics.task_metrics("score", np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    assert r["score"] == r["spearman"] == pytest.approx(0.8) and set(r) == {"pearson", "spearman", "score", "selection"}


BAD = [  # (file name, content, task.json changes, the error's pattern)
    ("train.tsv", "sentence\tgold\nsweet love\tpos\n", {}, r"train\.tsv line 1: no column 'label' \(header: sentence, gold\)"),
    ("dev.tsv", "sentence\tlabel\nfair day\tpos\nfoul night\tmaybe\n", {},
     r"dev\.tsv line 3: label 'maybe' is not one of train's labels .*: neg, pos; list every class"),
    ("train.tsv", "sentence\tlabel\n  \tpos\nfoul night\tneg\n", {}, r"train\.tsv line 2: empty text in 'sentence'"),
    ("dev.tsv", "sentence\tlabel\n\n", {}, r"dev\.tsv has no rows: the dev split is empty"),
    ("train.tsv", "sentence\tlabel\nsweet love\tpos\nfoul night\n", {},
     r"train\.tsv line 3: short row, 1 fields where the header has 2 \(a tab inside a text\?\): \['foul night'\]"),
    ("train.tsv", "sentence\tlabel\nsweet love\tpos\nfoul\tnight\tneg\n", {}, r"train\.tsv line 3: long row, 3 fields"),
    ("dev.tsv", "sentence\tlabel\nfair day\t\n", {}, r"dev\.tsv line 2: empty label in 'label'"),
    ("train.tsv", "sentence\tlabel\nsweet love\thigh\n", {"regression": True},
     r"train\.tsv line 2: label 'high' is not a number \(the task is a regression\)"),
    ("train.tsv", "sentence\tlabel\nsweet love\tpos\nsweet\tpos\n", {}, r"train\.tsv has one label \('pos'\)"),
    ("dev.tsv", "sentence\tlabel\nfair day\tpos\n", {"labels": ["neg", "pos", "pos"]}, r"\"labels\" lists 'pos' twice"),
    ("dev.tsv", "sentence\tlabel\nfair day\tpos\n", {"lables": ["neg", "pos"]},
     r"task\.json: unknown key 'lables' \(did you mean 'labels'\?\)"),
    ("dev.tsv", "sentence\tlabel\nfair day\tpos\n", {"name": "rte"}, r"name 'rte' is a built-in task"),
    ("dev.tsv", "sentence\tlabel\nfair day\tpos\n", {"metric": "pearson"},
     r"metric 'pearson' is not one of a classification task's: accuracy, f1, mcc"),
    ("dev.txt", "sentence\tlabel\nfair day\tpos\n", {"dev": "dev.txt"}, r"dev\.txt: cannot tell its format from '\.txt'"),
    ("dev.tsv", "sentence\tlabel\nfair day\tpos\n", {"dev": "nothing.tsv"}, r"dev file .*nothing\.tsv not found"),
]


def _task(folder, **changes):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "train.tsv"), "w") as f:
        f.write("sentence\tlabel\nsweet love\tpos\nfoul night\tneg\n")
    with open(os.path.join(folder, "dev.tsv"), "w") as f:
        f.write("sentence\tlabel\nfair day\tpos\n")
    desc = {"name": "tiny_user", "train": "train.tsv", "dev": "dev.tsv", **changes}
    with open(os.path.join(folder, "task.json"), "w") as f:
        json.dump(desc, f)
    return os.path.join(folder, "task.json")


def test_bad_task_files_are_one_line_errors(tmp_path):
    for n, (name, content, changes, pattern) in enumerate(BAD):
        path = _task(str(tmp_path / f"t{n}"), **changes)
        with open(os.path.join(os.path.dirname(path), name), "w") as f:
            f.write(content)
        with pytest.raises(UserError) as e:
            user_task.load(path)
        msg = str(e.value)
        assert "\n" not in msg and re.search(pattern, msg), (pattern, msg)
        assert str(tmp_path / f"t{n}") in msg  # names the file
    jsonl = tmp_path / "j"
    _task(str(jsonl), train="train.jsonl")
    (jsonl / "train.jsonl").write_text('{"sentence": "sweet love", "label": "pos"}\n{"sentence": "foul", \n')
    with pytest.raises(UserError, match=r"train\.jsonl line 2: not valid JSON \(Expecting"):
        user_task.load(str(jsonl))
    (jsonl / "train.jsonl").write_text('{"sentence": "sweet love", "label": "pos"}\n{"text": "foul", "label": "neg"}\n')
    with pytest.raises(UserError, match=r"train\.jsonl line 2: no field 'sentence' \(it has text, label\)"):
        user_task.load(str(jsonl))
    (jsonl / "train.jsonl").write_text('{"sentence": "sweet love", "label": "pos"}\n{"sentence": 7, "label": "neg"}\n')
    with pytest.raises(UserError, match=r"train\.jsonl line 2: a int, not a text in 'sentence'"):
        user_task.load(str(jsonl))
    with pytest.raises(UserError, match=r"task file .*nowhere/task.json not found"):
        get_task(str(tmp_path / "nowhere" / "task.json"))
    with pytest.raises(UserError, match=r"unknown GLUE task 'mydata'; .* or a task file"):
        get_task("mydata")
    first, other = _task(str(tmp_path / "first")), _task(str(tmp_path / "other"))
    with pytest.raises(UserError, match=r"two task files use the name 'tiny_user': .*first/task.json and .*other"):
        parse_tasks([first, other])
    assert get_task("tiny_user").file == other  # outside one sweep, the last one read is the one the name means


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_user_tasks_fine_tune_end_to_end(tmp_path, capsys, tiny_workdir):
    """TSV (3 classes), CSV (a pair, F1) and JSONL (regression) tasks through `glue sweep` and `glue
    table` at the tiny shape, one epoch; a bad task file fails before --out is made."""
    paths = write_tasks(tmp_path / "tasks")
    out = str(tmp_path / "sweep")
    argv = ["sweep", f"--checkpoint_dir={tiny_workdir}", f"--tasks={paths['tsv']},{paths['csv']},{paths['jsonl']}",
            "--config=glue:tiny", "--seeds=1", "--config.num_epochs=1", f"--out={out}", "--name=tiny"]
    assert sweep.main(argv) == 0
    printed = capsys.readouterr().out
    assert "GLUE has" not in printed  # no comparison with GLUE's sizes for a task file
    assert "| Model | nli3 | Pair-2 | score |" in printed and "Not run" not in printed
    assert re.search(r"Dev scores ×100; nli3 accuracy; Pair-2 f1; score spearman \(task files", printed)
    row = results.sweep_row("tiny", out)
    assert list(row["tasks"]) == ["nli3", "pair2", "score"] and row["glue"]["mean"] is None
    for task, metric, keys in (("nli3", "accuracy", {"accuracy", "f1", "mcc"}), ("pair2", "f1", {"accuracy", "f1", "mcc"}),
                               ("score", "spearman", {"pearson", "spearman"})):
        run = json.load(open(results.run_file(out, task, 5e-3, 8, 0)))
        assert run["selection_metric"] == metric and set(run["dev"]) == keys | {"score", "selection"}
        assert run["score"] == run["dev"][metric] and run["train_rows"] == 16 and run["steps_per_epoch"] == 2
        assert run["config"]["data"]["task_file"] == paths[{"nli3": "tsv", "pair2": "csv", "score": "jsonl"}[task]]
        assert row["tasks"][task]["mean"] == pytest.approx(run["score"]) and row["tasks"][task]["metric"] == metric
    assert -1.0 <= row["tasks"]["score"]["mean"] <= 1.0 and 0.0 <= row["tasks"]["nli3"]["mean"] <= 1.0
    assert sweep.main(["table", f"--model=tiny={out}", f"--out={tmp_path}/t"]) == 0
    table = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert float(table[0]["Pair-2"]) == pytest.approx(100 * row["tasks"]["pair2"]["mean"], abs=0.01)
    assert "Pair-2_mcc" in table[0] and os.path.getsize(tmp_path / "t.png") > 0

    # Test rows of a task file: predicted by the kept best weights, no GLUE data needed.
    capsys.readouterr()
    assert sweep.main(["predict", f"--sweep_dir={out}", f"--out={tmp_path}/pred"]) == 0
    printed = capsys.readouterr().out
    assert "Pair-2: its task.json names no test file, skipped" in printed and "WNLI" not in printed
    lines = (tmp_path / "pred" / "nli3.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and [x.split("\t")[0] for x in lines[1:]] == ["0", "1", "2", "3"]
    assert {x.split("\t")[1] for x in lines[1:]} <= set(NLI)
    assert json.load(open(tmp_path / "pred" / "predict.json"))["tasks"]["nli3"]["weights"] == "kept"

    bad = _task(str(tmp_path / "bad"))
    (tmp_path / "bad" / "dev.tsv").write_text("sentence\tlabel\nfair day\tmaybe\n")
    capsys.readouterr()
    assert sweep.main(["sweep", f"--checkpoint_dir={tiny_workdir}", f"--tasks={bad}", f"--out={tmp_path}/b"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(r"error: .*bad/dev\.tsv line 2: label 'maybe'", err[0])
    assert not os.path.exists(tmp_path / "b")  # validated before anything is written: no sweep.json


# ----------------------------------------------------------------------------- random init
@pytest.mark.slow
def test_random_init_has_the_checkpoint_shape_and_seeded_weights(tmp_path, tiny_workdir):
    pre = model_lib.load_pretrained({"init": "random", "checkpoint_dir": tiny_workdir})
    ckpt = checkpointing.read_model(tiny_workdir)
    assert pre.params == {} and pre.cfg == ckpt.cfg and pre.tokenizer.fingerprint == ckpt.tokenizer.fingerprint
    assert pre.source == {"kind": "random", "init": "random", "checkpoint_dir": os.path.abspath(tiny_workdir), "step": 4}

    path = write_tasks(tmp_path / "tasks", n_train=8, n_dev=8)["csv"]
    config = config_lib.load_config(f"glue:tiny,task={path}", ["num_epochs=1", "learning_rate=0"])  # weights as initialised
    data = finetune_lib.load_data(config, pre.tokenizer)

    def initial(seed):
        config.seed = seed
        return finetune_lib.finetune(config, pretrained=pre, data=data, log=quiet).params

    a, again, b = initial(0), initial(0), initial(1)
    flat = lambda t: {k: np.asarray(v) for k, v in __import__("jax").tree_util.tree_leaves_with_path(t)}  # noqa: E731
    fa, fagain, fb = flat(a), flat(again), flat(b)
    fc = flat({k: ckpt.params[k] for k in ("embeddings", "encoder")})
    assert set(fc) <= set(fa)
    for k, x in fc.items():
        assert fa[k].shape == x.shape, k
        if x.ndim > 1:  # every kernel and table is the initialiser's, none the checkpoint's
            assert not np.allclose(fa[k], x), k
    for k in fa:
        np.testing.assert_array_equal(fa[k], fagain[k])  # same seed, same weights
    changed = [k for k in fa if not np.array_equal(fa[k], fb[k])]
    assert any("word_embeddings" in str(k) for k in changed) and any("classifier" in str(k) for k in changed)

    # The sweep CLI: --init=random records the shape's source; the row is named after it.
    out = str(tmp_path / "rand")
    assert sweep.main(["sweep", "--init=random", f"--checkpoint_dir={tiny_workdir}", f"--tasks={path}",
                       "--config=glue:tiny", "--seeds=1", "--config.num_epochs=1", f"--out={out}", "--keep=none"]) == 0
    run = json.load(open(results.run_file(out, "pair2", 5e-3, 8, 0)))
    assert run["init_from"]["kind"] == "random" and run["config"]["init_from"]["init"] == "random"
    assert json.load(open(os.path.join(out, "sweep.json")))["source"]["init"] == "random"
    assert results.load_table(out)[0]["name"] == f"random init ({os.path.basename(tiny_workdir)}@4)"
    with pytest.raises(UserError, match=r"--init=random needs a shape"):
        model_lib.load_pretrained({"init": "random"})
    # glue curve --init=random: the baseline is the curve's step 0.
    curve = sweep.run_curve(tiny_workdir, str(tmp_path / "curve"), steps="4", tasks=path, config="glue:tiny",
                            overrides=["num_epochs=1"], init="random", num_seeds=1, log=quiet)
    assert [p["step"] for p in curve["points"]] == [0, 4] and set(curve["points"][0]["tasks"]) == {"pair2"}
    first = json.load(open(results.run_file(str(tmp_path / "curve" / "random_init"), "pair2", 5e-3, 8, 0)))
    assert first["init_from"]["kind"] == "random" and os.path.getsize(curve["png"]) > 0


@pytest.mark.slow
def test_study_random_row_on_a_task_file(tmp_path, tiny_workdir, capsys):
    """The study's `random` row fine-tunes from the shape of a pre-trained row's checkpoint, on a task file."""
    from sas_jax import study  # noqa: PLC0415

    path = write_tasks(tmp_path / "tasks", n_train=8, n_dev=8)["csv"]
    shaped = study.Run("sas_small", 0, config_lib.load_config("sas_small:tiny", ["num_train_steps=4"]), 1.0,
                       tiny_workdir)
    ds = study.setup_downstream(path, out=str(tmp_path), variant="tiny", runs=[shaped], corpora={}, task="",
                                text="", sizes=(), finetune_overrides=["num_epochs=1"])
    assert (ds.task, ds.chance) == ("pair2", 0.5)  # the majority class's share of dev
    assert "downstream: Pair-2 from" in capsys.readouterr().out
    config = shaped.config.copy_and_resolve_references()
    config.num_train_steps = 0
    rand = study.Run("random", 1, config, 0.0, str(tmp_path / "random" / "seed1"), shape_from=shaped)
    result = study.run_one(rand, None, 5.0, ds, {})
    assert (result["steps"], result["train_flops"], result["mlm_loss"], result["curve"]) == (0, 0.0, None, [])
    ft = json.load(open(tmp_path / "random" / "seed1" / "finetune" / "pair2.json"))
    assert ft["init_from"]["kind"] == "random" and ft["seed"] == 1 and ft["init_from"]["step"] == 4
    assert result["downstream_score"] == ft["score"] and result["downstream_task"] == "pair2"


def test_study_plans_the_random_row(tmp_path, prepared_corpus):
    from sas_jax import study  # noqa: PLC0415

    kw = dict(variant="tiny", budget=1.1e9, overrides=[f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"])
    plan = study.run_study(["sas_small", "random"], out=str(tmp_path / "a"), seeds=(0, 1), dry_run=True, **kw)
    rows = [(r["row"], r["seed"], r["train_flops"]) for r in plan["runs"]]
    assert rows[2:] == [("random", 0, 0.0), ("random", 1, 0.0)] and rows[0][2] > 0
    with pytest.raises(UserError, match=r"the random row takes its encoder shape .* from another row"):
        study.run_study(["random"], out=str(tmp_path / "b"), dry_run=True, **kw)
    with pytest.raises(UserError, match=r"random row is a downstream baseline; it needs --downstream"):
        study.run_study(["sas_small", "random"], out=str(tmp_path / "c"), downstream="none", **kw)
    assert not os.path.exists(tmp_path / "c")
