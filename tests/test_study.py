"""`python -m sas_jax.study`: equal-FLOPs comparison end to end (tiny shape), its resume,
and the word-order downstream task it builds (`sas_jax.data.downstream`)."""
import csv
import json
import math
import os

import numpy as np
import pytest

from sas_jax import flops, study
from sas_jax.data import downstream
from sas_jax.errors import UserError
from sas_jax.glue import tasks

from conftest import ROOT, make_config

TEXT = str(ROOT / "data" / "demo" / "poems.txt")


# ----------------------------------------------------------------------------- the task builder
def test_swap_adjacent_words_swaps_two_different_neighbours():
    rng = np.random.default_rng(0)
    words = "the cat sat on the mat".split()
    for _ in range(50):
        out, i = swap = downstream.swap_adjacent_words(words, rng)
        assert swap is not None and out != words
        assert out[i] == words[i + 1] and out[i + 1] == words[i]
        assert out[:i] + out[i + 2:] == words[:i] + words[i + 2:]  # nothing else moved
        assert sorted(out) == sorted(words)
    assert downstream.swap_adjacent_words(["a", "a", "a"], rng) is None
    assert downstream.swap_adjacent_words(["a"], rng) is None


def test_word_order_examples_are_balanced_and_swapped_once():
    lines = [f"w{i} x{i} y{i} z{i} v{i} u{i}" for i in range(101)]
    ex = downstream.word_order_examples(lines, seed=3)
    labels = [y for _, y, _ in ex]
    assert labels.count(1) == 51 and labels.count(0) == 50
    for (text, y, pos), line in zip(ex, lines):
        if y == 1:
            assert text == line and pos == -1
        else:
            w, o = text.split(), line.split()
            assert w != o and sorted(w) == sorted(o)
            assert (w[pos], w[pos + 1]) == (o[pos + 1], o[pos]) and w[:pos] == o[:pos] and w[pos + 2:] == o[pos + 2:]
    assert downstream.word_order_examples(lines, seed=3) == ex
    assert downstream.word_order_examples(lines, seed=4) != ex


def _read_tsv(path):
    with open(path) as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == ["sentence", "label"]
    return rows[1:]


def test_build_word_order_task_is_deterministic_and_bag_of_tokens_blind(tmp_path, prepared_corpus):
    from sas_jax.data.corpus import Corpus

    tok = Corpus.open(prepared_corpus).tokenizer
    kw = dict(train_size=200, dev_size=60, encode=tok.encode, max_tokens=30, tokenizer_id=tok.fingerprint)
    meta = downstream.build_word_order_task(TEXT, str(tmp_path / "a"), **kw)
    downstream.build_word_order_task([TEXT], str(tmp_path / "b"), **kw)
    folder = tmp_path / "a" / downstream.FOLDER
    for split in ("train", "dev"):
        assert (folder / f"{split}.tsv").read_text() == (tmp_path / "b" / downstream.FOLDER / f"{split}.tsv").read_text()
    train, dev = _read_tsv(folder / "train.tsv"), _read_tsv(folder / "dev.tsv")
    assert len(train) == 200 and len(dev) == 60 and meta["train_size"] == 200
    assert [r[1] for r in train].count("0") == 100 and [r[1] for r in dev].count("0") == 30
    originals = set(downstream.read_lines([TEXT]))
    for text, label in train + dev:
        assert len(tok.encode(text)) <= 30  # fits [CLS] + 30 + [SEP]: truncation never hides a swap
        assert (text in originals) == (label == "1")
    # Each swapped line has the same words, and the same tokens, as some original line: a
    # bag-of-words (bag-of-tokens) classifier sees the same input for both labels.
    by_bag = {}
    for line in originals:
        by_bag.setdefault(tuple(sorted(line.split())), []).append(line)
    for text, label in train + dev:
        if label == "0":
            twins = by_bag[tuple(sorted(text.split()))]
            assert any(sorted(tok.encode(t)) == sorted(tok.encode(text)) for t in twins)
    assert not {t for t, _ in train} & {t for t, _ in dev}
    with pytest.raises(UserError, match="usable lines"):
        downstream.build_word_order_task(TEXT, str(tmp_path / "c"), train_size=10**6, dev_size=1)


def test_word_order_is_a_task_but_not_glue():
    spec = tasks.get_task("word_order")
    assert spec.folder == downstream.FOLDER and spec.labels == ("0", "1") and spec.selection == "accuracy"
    assert "word_order" not in tasks.TASKS and len(tasks.TASKS) == 8
    assert tasks.parse_tasks("all") == tasks.TASKS
    assert tasks.parse_tasks("rte,word_order") == ("rte", "word_order")
    with pytest.raises(UserError, match=r"unknown GLUE task 'wnli'"):
        tasks.get_task("wnli")


# ----------------------------------------------------------------------------- the command
@pytest.mark.slow
def test_fmt_flops_and_bad_arguments(cli):
    assert study.fmt_flops(1.274e18) == "1.27e18" and study.fmt_flops(3.7e12) == "3.7e12"
    with pytest.raises(UserError, match="unknown argument"):
        study.split_overrides(["--confg.seed=1"])
    assert study.split_overrides(["--config.seed", "3", "--finetune.num_epochs=1"]) == (["seed=3"], ["num_epochs=1"])
    r = cli("-m", "sas_jax.study", "--rows=nope", "--variant=tiny", "--flops=1e9", "--out=/nonexistent/x")
    assert r.returncode == 2 and r.stderr.startswith("error: row nope: config 'nope'") and len(r.stderr.splitlines()) == 1
    assert "Traceback" not in r.stderr


def _text(path) -> str:
    with open(path) as f:
        return f.read()


def _json(path):
    return json.loads(_text(path))


def _mtimes(root):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, fs in os.walk(root) for f in fs}


# ----------------------------------------------------------------------------- checks before spending
POEMS = {"downstream_text": TEXT, "downstream_size": (32, 16)}  # a small word-order task: cheap to check


def _dry(tmp_path, rows=("sas_small",), overrides=(), **kw):
    """run_study's dry run on the tiny variant (budget 1.1e9); kw as run_study's."""
    args = {"variant": "tiny", "budget": 1.1e9, "out": str(tmp_path / "study"), "dry_run": True, **POEMS}
    args.update(kw)
    return study.run_study(list(rows), overrides=list(overrides), **args)


def _problems(tmp_path, rows=("sas_small",), overrides=(), **kw) -> list:
    with pytest.raises(study.StudyProblems) as e:
        _dry(tmp_path, rows, overrides, **kw)
    assert str(e.value) == "; ".join(e.value.problems)
    return e.value.problems


def _corpus(prepared_corpus):
    from sas_jax.data.corpus import Corpus

    return Corpus.open(prepared_corpus)


def test_dry_run_plans_steps_at_equal_flops_and_writes_nothing(tmp_path, prepared_corpus, capsys):
    budget = 1.1e9
    rows = ("sas_small", "bert_small", "electra_small", "random")
    plan = _dry(tmp_path, rows, [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"], seeds=(0, 1))
    log = capsys.readouterr().out
    assert "budget: 1.1e9 training FLOPs per run" in log and "dry run: 8 runs checked" in log
    vocab = _corpus(prepared_corpus).vocab_size
    per_step = {row: flops.train_flops(make_config(row, "tiny", num_train_steps=1), vocab_size=vocab)
                for row in rows[:3]}
    got = {(r["row"], r["seed"]): r for r in plan["runs"]}
    assert sorted(got) == sorted((row, seed) for row in rows for seed in (0, 1))
    for row in rows[:3]:
        steps = math.floor(budget / per_step[row])
        assert got[(row, 0)]["steps"] == got[(row, 1)]["steps"] == steps
        flops_used = got[(row, 0)]["train_flops"]
        assert flops_used == pytest.approx(steps * per_step[row]) and flops_used <= budget
        assert f"  {row}: " in log and f"x {steps} steps" in log
    # Equal budget: more FLOPs per step, fewer steps (ELECTRA's generator > SAS's sampling > BERT).
    assert per_step["electra_small"] > per_step["sas_small"] > per_step["bert_small"]
    assert got[("electra_small", 0)]["steps"] < got[("sas_small", 0)]["steps"] < got[("bert_small", 0)]["steps"]
    assert (got[("random", 0)]["steps"], got[("random", 1)]["train_flops"]) == (0, 0.0)
    assert not os.path.exists(tmp_path / "study")  # checked, nothing written


def test_check_finds_a_seq_len_that_is_not_the_corpus(tmp_path, prepared_corpus):
    base = [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"]
    assert _problems(tmp_path, overrides=[*base, "seq_len=48", "sas.max_predictions=8"]) == [
        (f"row sas_small: seq_len=48 but the corpus {prepared_corpus} was prepared with seq_len=32; set "
         "--config.seq_len=32, or prepare a corpus at that length (python -m sas_jax.prepare ... --seq_len=48)")]
    too_long, other_corpus, finetune = _problems(tmp_path, overrides=[*base, "seq_len=80", "sas.max_predictions=12"])
    assert too_long == ("row sas_small: seq_len=80 exceeds model.max_position_embeddings=64; set "
                        "--config.seq_len=64 or less (and a corpus prepared at that length)")
    assert other_corpus.startswith("row sas_small: seq_len=80 but the corpus ")
    assert finetune.startswith("downstream (--downstream=auto): fine-tuning length data.max_seq_length=80 exceeds")


def test_check_finds_a_vocabulary_smaller_than_the_tokenizer(tmp_path, prepared_corpus):
    assert _corpus(prepared_corpus).vocab_size == 300  # the tiny variant's model.vocab_size is 128
    problems = _problems(tmp_path, ("sas_small", "bert_small"), [f"data.corpus_dir={prepared_corpus}"])
    assert problems == [f"row {row}: model.vocab_size=128 is smaller than the corpus tokenizer's 300 pieces "
                        f"({prepared_corpus}); set --config.model.vocab_size=-1 (take the tokenizer's) or at least 300"
                        for row in ("sas_small", "bert_small")]
    _dry(tmp_path, ("sas_small",), [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=300"])  # enough


def test_check_finds_too_few_prediction_slots(tmp_path, prepared_corpus):
    base = [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"]
    # round(0.15 * 32) = 5 positions; 4 slots are too few for every objective.
    problems = _problems(tmp_path, ("sas_small", "electra_small"), [*base, "sas.max_predictions=4"])
    assert problems == [f"row {row}: sas.max_predictions=4 is fewer than the 5 masked positions of a full row "
                        "(max(1, round(sas.mask_rate*seq_len)) = max(1, round(0.15*32))); set "
                        "--config.sas.max_predictions=5 (or lower sas.mask_rate)" for row in ("sas_small", "electra_small")]
    _dry(tmp_path, ("sas_small", "electra_small"), [*base, "sas.max_predictions=5"])  # exactly enough
    (problem,) = _problems(tmp_path, overrides=[*base, "sas.mask_rate=0.3"])  # round(9.6) = 10 > 6
    assert "the 10 masked positions" in problem and "--config.sas.max_predictions=10" in problem


@pytest.mark.parametrize("kind", ["sas", "bert", "electra"])
@pytest.mark.parametrize("rate, length", [(0.15, 32), (0.15, 128), (0.3, 32), (0.4, 50), (0.02, 20), (0.109, 55)])
def test_min_predictions_is_the_fewest_slots_the_batch_builders_take(kind, rate, length):
    """min_predictions is the smallest sas.max_predictions every builder the row runs accepts on full
    rows: the whole-word selection (SAS's and BERT's training, every objective's held-out evaluation)
    and, for ELECTRA, its slot budget."""
    from sas_jax.corruption.static_batch import ElectraBatchBuilder, StaticBatchBuilder

    config = make_config(f"{kind}_small", "tiny", seq_len=length, **{"sas.mask_rate": rate})
    vocab = 64
    tables = {"word_start_table": np.ones(vocab, bool), "special_table": np.eye(vocab, dtype=bool)[0], "pad_id": 0,
              "mask_rate": rate, "seed": 0, "mask_id": 1, "vocab_size": vocab}
    rows = np.random.default_rng(0).integers(2, vocab, (4, length)).astype(np.int32)  # no [PAD], every token a word
    builders = [lambda p: StaticBatchBuilder(kind="bert", max_predictions=p, **tables)]
    if kind == "electra":
        builders.append(lambda p: ElectraBatchBuilder(max_predictions=p, **tables))

    def accepted(slots: int) -> bool:
        try:
            for make in builders:
                make(slots).build(rows, np.arange(4), step=0)
        except ValueError as e:
            assert "max_predictions" in str(e)
            return False
        return True

    fewest = next(p for p in range(1, length + 1) if accepted(p))
    assert study.min_predictions(config)[0] == fewest


def test_min_predictions_names_electras_budget_where_it_is_larger():
    # int((rate + 0.005) * L) exceeds round(rate * L) only where 0.005 * L reaches past the rounding:
    # never at L = 32 or 128, but at 1000 tokens and rate 0.14 the selection takes 140 and ELECTRA 145.
    config = make_config("electra_small", "tiny", seq_len=1000, **{"sas.mask_rate": 0.14})
    assert study.min_predictions(config) == (145, ("ELECTRA's budget int((sas.mask_rate+0.005)*seq_len) = "
                                                    "int(0.145*1000)"))
    assert study.min_predictions(make_config("sas_small", "tiny", seq_len=1000, **{"sas.mask_rate": 0.14}))[0] == 140


def test_check_finds_an_unknown_row_and_reports_every_problem_once(tmp_path, prepared_corpus, capsys):
    out = tmp_path / "study"
    argv = ["--rows=sas_small,nope,bert_small,sas_small", "--variant=tiny", "--flops=1.1e9", f"--out={out}",
            f"--config.data.corpus_dir={prepared_corpus}", "--config.sas.max_predictions=4",
            f"--downstream_text={TEXT}", "--downstream_size=32,16", "--dry_run"]
    assert study.main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert all(line.startswith("error: ") for line in err) and len(err) == 6, err
    assert err[0].startswith("error: row nope: config 'nope' is not in ") and "known: bert_base" in err[0]
    assert err[1] == "error: row 'sas_small' is given twice in --rows; give each row once"
    assert [line.split(":")[1] for line in err[2:]] == [" row sas_small", " row bert_small"] * 2
    assert "sas.max_predictions=4" in err[2] and "model.vocab_size=128" in err[4]
    assert not out.exists()


def test_check_finds_rows_and_budgets_the_corpus_cannot_give(tmp_path, prepared_corpus):
    base = [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"]
    rows = _corpus(prepared_corpus).num_rows
    (problem,) = _problems(tmp_path, overrides=base, eval_rows=rows - 2)  # a multiple of 8 below the rows
    assert problem == (f"row sas_small: the corpus {prepared_corpus} has {rows} rows; {rows - 2} held out "
                       f"(--eval_rows) leave 2 to train on, fewer than one batch_size=8; pass a smaller --eval_rows "
                       f"or use a corpus of at least {rows + 6} rows")
    assert _problems(tmp_path, overrides=base, eval_rows=12) == [
        "row sas_small: --eval_rows=12 must be a positive multiple of its batch_size=8; pass --eval_rows=16"]
    (problem,) = _problems(tmp_path, overrides=base, budget=1e6)
    assert problem.startswith("row sas_small: --flops=1e6 is less than one step of it (3.73e7 FLOPs)")


def _task_file(root, texts_train, texts_dev, *, name="tiny_task"):
    root.mkdir(parents=True, exist_ok=True)
    for split, texts in (("train", texts_train), ("dev", texts_dev)):
        with open(root / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["sentence", "label"])
            w.writerows([t, ("neg", "pos")[i % 2]] for i, t in enumerate(texts))
    (root / "task.json").write_text(json.dumps({"name": name, "train": "train.csv", "dev": "dev.csv",
                                                "text": "sentence", "label": "label"}))
    return str(root / "task.json")


def test_check_finds_downstream_data_that_would_fail_after_pre_training(tmp_path, prepared_corpus, capsys):
    base = [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"]
    missing = str(tmp_path / "nowhere" / "task.json")
    (problem,) = _problems(tmp_path, overrides=base, downstream=missing)
    assert problem.startswith(f"downstream (--downstream={missing}): task file {missing} not found")
    bad = tmp_path / "bad"
    path = _task_file(bad, ["a b c"] * 4, ["d e f"] * 4)
    (bad / "task.json").write_text(json.dumps({"name": "bad", "train": "train.csv", "dev": "dev.csv", "text": "txt"}))
    (problem,) = _problems(tmp_path, overrides=base, downstream=path)
    assert problem.startswith(f"downstream (--downstream={path}): ") and "no column 'txt'" in problem
    (problem,) = _problems(tmp_path, overrides=base, downstream=str(tmp_path / "typo"))
    assert problem.startswith(f"--downstream='{tmp_path / 'typo'}' is not a folder")
    glue = tmp_path / "glue"
    (glue / "SST-2").mkdir(parents=True)
    (glue / "SST-2" / "train.tsv").write_text("sentence\tlabel\na b\t1\n")
    (problem,) = _problems(tmp_path, overrides=base, downstream=str(glue))
    assert problem == (f"downstream (--downstream={glue}): GLUE file {glue / 'SST-2' / 'dev.tsv'} not found; pass "
                       "the folder holding SST-2/dev.tsv (the standard GLUE layout) or another --task")
    # What the fine-tune would refuse after all the pre-training: a length past the position table, a bad key.
    (problem,) = _problems(tmp_path, overrides=base, finetune_overrides=["data.max_seq_length=128"])
    assert problem == ("downstream (--downstream=auto): fine-tuning length data.max_seq_length=128 exceeds row "
                       "sas_small's model.max_position_embeddings=64; set --finetune.data.max_seq_length=64 or less")
    (problem,) = _problems(tmp_path, overrides=base, finetune_overrides=["num_epoch=1"])
    assert problem.startswith("downstream (--downstream=auto): fine-tuning config glue:tiny with --finetune.*: "
                              "unknown config key 'num_epoch' (did you mean 'num_epochs'?)")
    (problem,) = _problems(tmp_path, overrides=base, downstream_size=(5000, 10))
    assert problem.startswith("downstream (--downstream=auto): the text has ") and "needs 5010" in problem
    # Texts longer than the fine-tuning length are cut, as GLUE's: a note, not a problem.
    capsys.readouterr()
    path = _task_file(tmp_path / "long", ["word " * 40, "short text"] * 2, ["word " * 50, "a b"])
    _dry(tmp_path, overrides=base, downstream=path)
    assert (f"note: downstream (--downstream={path}): 2 of 4 train rows, 1 of 2 dev rows are longer than "
            "data.max_seq_length=32 tokens") in capsys.readouterr().out
    assert not (tmp_path / "study").exists()


def test_a_failed_check_writes_nothing_and_the_corrected_command_runs(tmp_path, prepared_corpus, capsys):
    out = tmp_path / "study"
    wrong = [f"data.corpus_dir={prepared_corpus}"]  # model.vocab_size=128 < the tokenizer's 300
    with pytest.raises(study.StudyProblems) as e:  # every problem at once: the rows' and the downstream task's
        study.run_study(["sas_small"], variant="tiny", budget=1.1e9, out=str(out), overrides=wrong, **POEMS,
                        downstream=str(tmp_path / "typo"))
    vocab, typo = e.value.problems
    assert vocab.startswith("row sas_small: model.vocab_size=128 is smaller") and "is not a folder" in typo
    assert not out.exists()  # a real run, refused before anything was written: no study.json
    right = [*wrong, "model.vocab_size=-1"]
    plan = _dry(tmp_path, overrides=right)
    assert [r["row"] for r in plan["runs"]] == ["sas_small"]
    # A real run's study.json refuses other settings; the dry run says so too.
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"variant": "tiny", "flops": 2e9, "rows": ["sas_small"]}))
    (problem,) = _problems(tmp_path, overrides=right)
    assert problem.startswith(f"{out} holds a study with flops=2000000000.0, not 1100000000.0")
    # A corpus the study prepares itself (the demo's) is not prepared while a config is wrong.
    demo = tmp_path / "demo"
    problems = _problems(tmp_path, ("sas_small",), ["sas.max_predictions=2"], variant="demo", out=str(demo))
    assert problems == [("row sas_small: sas.max_predictions=2 is fewer than the 10 masked positions of a full row "
                         "(max(1, round(sas.mask_rate*seq_len)) = max(1, round(0.15*64))); set "
                         "--config.sas.max_predictions=10 (or lower sas.mask_rate)")]
    assert not demo.exists()


# ----------------------------------------------------------------------------- table and figures
def _result(row, seed, score, loss=None):
    return {"row": row, "seed": seed, "steps": 10, "train_flops": 1e9, "flops_per_step": 1e8, "curve": [],
            "unigram_entropy": 5.0, "mlm_loss": loss, "downstream_score": score}


def test_comparisons_pair_sas_with_electra_and_bert_and_every_row_with_random():
    rows = ["bert_small", "sasda_small", "electra_da_small", "deberta_small", "sas_small", "unig_mlm", "random"]
    assert [study.family(r) for r in rows] == ["bert", "sas", "electra", "bert", "sas", None, None]
    assert study.comparisons(rows) == [
        ("sasda_small", "electra_da_small"), ("sasda_small", "bert_small"), ("sasda_small", "deberta_small"),
        ("sas_small", "electra_da_small"), ("sas_small", "bert_small"), ("sas_small", "deberta_small"),
        *[(r, "random") for r in rows[:-1]]]
    assert study.comparisons(["bert_small", "electra_small"]) == []


def test_table_has_mean_sd_and_paired_tests(tmp_path):
    # sas − bert per seed: downstream 0.10, 0.20, 0.30 (mean 0.2, sd 0.1: t = 2√3 on 2 df); MLM loss −1, −1, −1.
    results = [_result("sas_small", s, 0.6 + 0.1 * s, 5.0 + s) for s in range(3)]
    results += [_result("bert_small", s, 0.5, 6.0 + s) for s in range(3)]
    results += [_result("random", 0, 0.45)]
    table = study.write_table(results, str(tmp_path), budget=1e9, task="word_order")
    again = _json(tmp_path / "study_table.json")
    assert again["tests"] == table["tests"] and again["summary"] == table["summary"]
    sas = table["summary"][0]
    assert (sas["row"], sas["n"], sas["seeds"]) == ("sas_small", 3, [0, 1, 2])
    assert sas["downstream_score"]["mean"] == pytest.approx(0.7) and sas["downstream_score"]["sd"] == pytest.approx(0.1)
    assert table["summary"][2]["downstream_score"] == {"n": 1, "mean": 0.45, "sd": None,
                                                       "note": "1 seed: no sd (needs 2)"}
    tests = {(t["a"], t["b"], t["figure"]): t for t in table["tests"]}
    assert list(tests) == [("sas_small", "bert_small", "downstream_score"), ("sas_small", "bert_small", "mlm_loss"),
                           ("sas_small", "random", "downstream_score"), ("bert_small", "random", "downstream_score")]
    down = tests[("sas_small", "bert_small", "downstream_score")]
    assert (down["seeds"], down["n"], down["lower_is_better"]) == ([0, 1, 2], 3, False)
    assert down["mean_diff"] == pytest.approx(0.2) and down["t_test"]["t"] == pytest.approx(2 * math.sqrt(3))
    assert down["t_test"]["p"] == pytest.approx(1 - math.sqrt(12 / 14)) and down["t_test"]["df"] == 2
    assert down["bootstrap"]["low"] == pytest.approx(0.1) and down["bootstrap"]["high"] == pytest.approx(0.3)
    assert down["bootstrap"]["resamples"] == 10_000 and down["bootstrap"]["seed"] == 0
    loss = tests[("sas_small", "bert_small", "mlm_loss")]
    assert loss["mean_diff"] == pytest.approx(-1.0) and loss["t_test"]["p"] is None and loss["lower_is_better"]
    assert "the same amount" in loss["note"]
    rand = tests[("sas_small", "random", "downstream_score")]
    assert (rand["seeds"], rand["t_test"]["p"], rand["bootstrap"]["low"]) == ([0], None, None)
    assert rand["note"] == "1 seed in common: a paired test needs 2" and rand["mean_diff"] == pytest.approx(0.15)
    md = (tmp_path / "study_table.md").read_text()
    assert "| sas_small | 3 | 6.0000 ± 1.0000 |" in md and "| 0.7000 ± 0.1000 |" in md
    assert "| random | 1 |" in md and "| 0.4500 ± n/a |" in md
    assert ("| sas_small | bert_small | word_order dev | 0,1,2 | 0.7000 | 0.5000 | +0.2000 | 3.46 (2) | 0.0742 | "
            "[+0.1000, +0.3000] |") in md
    assert ("| sas_small | random | word_order dev | 0 | 0.6000 | 0.4500 | +0.1500 | n/a (1 seed in common: a paired "
            "test needs 2) | n/a | n/a |") in md
    study.write_table([_result("sas_small", 0, 0.6)], str(tmp_path), budget=1e9, task="word_order")
    assert "No pair to test" in (tmp_path / "study_table.md").read_text()


def test_downstream_plot_shows_mean_sd_and_every_seed(tmp_path, monkeypatch):
    from sas_jax.analysis import study_plots

    figures = []
    monkeypatch.setattr(study_plots, "save", lambda fig, path: figures.append(fig) or path)
    study_plots.plot_downstream({"sas_small": [0.6, 0.7, 0.8], "random": [0.5]}, str(tmp_path / "d.png"), chance=0.5)
    ax = figures[0].axes[0]
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.7, 0.5]  # the bars: means
    (bars,) = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]  # sd: only with 2+ seeds
    (segment,) = bars.lines[2][0].get_segments()  # the bar from mean - sd to mean + sd, sd 0.1
    assert segment[:, 1].tolist() == pytest.approx([0.6, 0.8])
    points = np.concatenate([c.get_offsets() for c in ax.collections if c.get_offsets().shape[1:] == (2,)
                             and type(c).__name__ == "PathCollection"])
    assert sorted(points[:, 1].round(6).tolist()) == [0.5, 0.6, 0.7, 0.8]
    assert len(set(points[:3, 0].round(6).tolist())) == 3  # the seeds side by side, not on one another
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sas_small\n(n=3)", "random\n(n=1)"]
    assert study_plots.seed_offsets(1).tolist() == [0.0] and study_plots.seed_offsets(3).tolist() == [-0.25, 0, 0.25]


# ----------------------------------------------------------------------------- several downstream tasks
# A study written before --downstream took a list, as that code wrote it (a finished tiny run of the
# end-to-end test below: its study.json, and the result.json of its pre-trained row, the curve cut to
# its last point). New code must resume it and add tasks to it without pre-training again.
OLD_STUDY_JSON = {"downstream": "auto", "downstream_size": [32, 32], "eval_rows": 16, "evals": 2,
                  "finetune_overrides": ["num_epochs=1"], "flops": 230000000.0,
                  "overrides": ["data.corpus_dir=<corpus>", "model.vocab_size=-1", "log.tensorboard=false"],
                  "rows": ["random", "sas_small"], "task": None, "variant": "tiny"}
OLD_RESULT_JSON = {
    "curve": [{"mlm_accuracy": 0.0, "mlm_loss": 5.66092766655816, "mlm_loss_replaced": 5.686887105305989,
               "rtd_accuracy": 0.8490566037735849, "rtd_auc": 0.4858710562414266, "rtd_baseline": 0.8490566037735849,
               "sample_hit": 0.0035098079178068372, "sample_hit_replaced": 0.003416455661257108, "step": 6,
               "train_flops": 223758720.0, "unigram_ce": 5.184502661342711, "unigram_hit": 0.011239548455441426}],
    "downstream_metric": "accuracy", "downstream_score": 0.5, "downstream_task": "word_order",
    "flops_per_step": 37293120.0, "mlm_accuracy": 0.0, "mlm_loss": 5.66092766655816,
    "mlm_loss_replaced": 5.686887105305989, "row": "sas_small", "rtd_accuracy": 0.8490566037735849,
    "rtd_auc": 0.4858710562414266, "rtd_baseline": 0.8490566037735849, "seed": 0, "status": "done", "steps": 6,
    "train_flops": 223758720.0, "unigram_entropy": 4.956556719578904}


def test_downstream_takes_a_list_and_names_each_bad_entry():
    assert study.parse_downstream("auto") == (["auto"], [])
    assert study.parse_downstream(" auto , wordnet_supersense,") == (["auto", "wordnet_supersense"], [])
    assert study.parse_downstream("none") == ([], [])
    assert study.parse_downstream(["auto", "data/x/task.json"]) == (["auto", "data/x/task.json"], [])
    assert study.parse_downstream("auto,auto") == (
        ["auto"], ["task 'auto' is given twice in --downstream; give each task once"])
    assert study.parse_downstream("auto,none") == (
        ["auto"], [("--downstream=auto,none: none means no downstream task and stands alone; drop it from the list "
                    "(or pass --downstream=none by itself)")])
    assert study.parse_downstream("auto,wordnet_supersens") == (["auto"], [(
        "unknown downstream task 'wordnet_supersens' in --downstream (not a task name, a task file or a folder); "
        "did you mean 'wordnet_supersense'? pass auto, wordnet_supersense, path/to/task.json or a GLUE TSV folder")])
    (kinds, (problem,)) = study.parse_downstream("qqq")
    assert kinds == [] and problem.startswith("unknown downstream task 'qqq' in --downstream (not a task name, a "
                                              "task file or a folder); pass auto")
    assert study.parse_downstream(" , ") == ([], [("--downstream=' , ' names no task; pass auto, wordnet_supersense, "
                                                   "a task file, a GLUE folder, several of them comma-separated, or "
                                                   "none")])
    # A path is not a name: a missing one is the downstream check's "is not a folder".
    assert study.parse_downstream("runs/nowhere") == (["runs/nowhere"], [])


def test_bad_downstream_entries_are_one_error_line_each(tmp_path, prepared_corpus, capsys):
    out = tmp_path / "study"
    argv = ["--rows=sas_small", "--variant=tiny", "--flops=1.1e9", f"--out={out}",
            f"--config.data.corpus_dir={prepared_corpus}", "--config.model.vocab_size=-1",
            f"--downstream_text={TEXT}", "--downstream_size=32,16", "--dry_run",
            "--downstream=auto,wordnet,auto"]
    assert study.main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [("error: unknown downstream task 'wordnet' in --downstream (not a task name, a task file or a "
                    "folder); did you mean 'wordnet_supersense'? pass auto, wordnet_supersense, path/to/task.json or "
                    "a GLUE TSV folder"),
                   "error: task 'auto' is given twice in --downstream; give each task once"]
    assert not out.exists()


def test_dry_run_checks_every_downstream_task(tmp_path, prepared_corpus, capsys):
    base = [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"]
    good = _task_file(tmp_path / "good", ["a b c", "d e f"] * 4, ["g h i", "j k l"] * 2)
    missing = str(tmp_path / "nowhere" / "task.json")
    plan = _dry(tmp_path, overrides=base, downstream=f"auto,{good}")
    assert len(plan["runs"]) == 1 and f"(auto, {good}); nothing trained" in capsys.readouterr().out
    (problem,) = _problems(tmp_path, overrides=base, downstream=f"auto,{missing},{good}")
    assert problem.startswith(f"downstream (--downstream={missing}): task file {missing} not found")
    # The same task twice under two paths: one fine-tune file per task name.
    twin = _task_file(tmp_path / "twin", ["m n o"] * 4, ["p q r"] * 4)
    (problem,) = _problems(tmp_path, overrides=base, downstream=f"{good},auto,{twin}")
    assert problem == (f"--downstream: {good} and {twin} are one task, 'tiny_task' (a run keeps one fine-tune per "
                       "task name, finetune/tiny_task.json); give it once")
    # A problem of the fine-tuning recipe every task shares: one line naming them all.
    (problem,) = _problems(tmp_path, overrides=base, downstream=f"auto,{good}",
                           finetune_overrides=["data.max_seq_length=128"])
    assert problem == (f"downstream (--downstream=auto,{good}): fine-tuning length data.max_seq_length=128 exceeds "
                       "row sas_small's model.max_position_embeddings=64; set --finetune.data.max_seq_length=64 or "
                       "less")
    # One task's own override (TASK:a.b=v) is checked with that task only, and must name a task of the study.
    problems = _problems(tmp_path, overrides=base, downstream=f"auto,{good}",
                         finetune_overrides=["tiny_task:data.max_seq_length=128", "nosuch:num_epochs=2"])
    assert problems == [
        (f"downstream (--downstream={good}): fine-tuning length data.max_seq_length=128 exceeds row sas_small's "
         "model.max_position_embeddings=64; set --finetune.data.max_seq_length=64 or less"),
        ("--finetune.nosuch:num_epochs=2: 'nosuch' is not a task of this study (word_order, tiny_task); name one of "
         "them before the colon, or drop the prefix to fine-tune every task with it")]
    assert not (tmp_path / "study").exists()


@pytest.mark.skipif(not os.path.isfile("/usr/share/wordnet/data.verb"),
                    reason="needs the Debian package wordnet-base (apt-get install wordnet-base)")
def test_dry_run_checks_word_order_and_wordnet_together(tmp_path, prepared_corpus, capsys):
    from sas_jax.data import real_tasks

    assert real_tasks.WORDNET_DIR == "/usr/share/wordnet"
    base = [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"]
    _dry(tmp_path, overrides=base, downstream="auto,wordnet_supersense")
    assert "(auto, wordnet_supersense); nothing trained" in capsys.readouterr().out


def _old_study(tmp_path, prepared_corpus, **changes) -> str:
    """A `--out` holding a study.json as the code before task lists wrote it, for `_dry`'s settings."""
    out = tmp_path / "study"
    out.mkdir(exist_ok=True)
    old = {**OLD_STUDY_JSON, "downstream_size": [32, 16], "eval_rows": None, "evals": 8, "finetune_overrides": [],
           "flops": 1.1e9, "overrides": [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"],
           "rows": ["sas_small"], **changes}
    (out / "study.json").write_text(json.dumps(old))
    return str(out)


def test_a_study_written_before_task_lists_takes_a_new_task(tmp_path, prepared_corpus):
    base = [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1"]
    good = _task_file(tmp_path / "good", ["a b c", "d e f"] * 4, ["g h i", "j k l"] * 2)
    out = _old_study(tmp_path, prepared_corpus)
    _dry(tmp_path, overrides=base)  # the same command resumes it
    _dry(tmp_path, overrides=base, downstream=f"auto,{good}")  # a task added
    _dry(tmp_path, overrides=base, downstream=good)  # or only the new task this time
    # A task the study has must keep its data; the budget, variant and overrides stay refused.
    assert _problems(tmp_path, overrides=base, downstream=f"auto,{good}", downstream_size=(32, 8)) == [(
        f"{out} holds a study whose downstream task auto has downstream_size=[32, 16], not [32, 8]; use another "
        "--out (or the same settings to resume; a new task may be added to --downstream)")]
    (problem,) = _problems(tmp_path, overrides=base, downstream=f"auto,{good}", budget=2e9)
    assert problem == (f"{out} holds a study with flops=1100000000.0, not 2000000000.0; use another --out (or the "
                       "same settings to resume)")
    (problem,) = _problems(tmp_path, overrides=[*base, "seed=3"], downstream=f"auto,{good}")
    assert problem.startswith(f"{out} holds a study with overrides=")
    assert json.loads((tmp_path / "study" / "study.json").read_text())["downstream"] == "auto"  # dry runs write nothing


def test_study_json_records_a_grown_task_list(tmp_path):
    out = str(tmp_path)
    old = dict(OLD_STUDY_JSON)
    files_before = {"study.json": json.dumps(old)}
    (tmp_path / "study.json").write_text(files_before["study.json"])
    settings = {k: study.task_settings(k, task="sst2", sizes=(32, 32), recipe_sizes=(32, 32))
                for k in ("auto", "wordnet_supersense")}
    assert settings == {"auto": {"task": None, "downstream_size": [32, 32]},  # as one-task studies recorded them
                        "wordnet_supersense": {"task": "sst2", "downstream_size": [32, 32]}}
    new = {**old, **study.downstream_record(settings), "rows": ["sas_small", "bert_small"]}
    assert {k: new[k] for k in study.DOWNSTREAM_KEYS} == {
        "downstream": "auto,wordnet_supersense", "task": None,
        "downstream_size": {"auto": [32, 32], "wordnet_supersense": [32, 32]}}
    merged = study.check_manifest(out, new)
    assert merged == {**new, "rows": ["bert_small", "random", "sas_small"]}
    assert json.loads((tmp_path / "study.json").read_text()) == merged
    # Read back: the same tasks (--task only where it matters, for a GLUE folder); a run with fewer tasks
    # (or none) keeps them all; a third is added after them.
    read = {**settings, "wordnet_supersense": {"task": None, "downstream_size": [32, 32]}}
    assert study.recorded_tasks(merged) == read
    fewer = study.check_manifest(out, {**old, **study.downstream_record({}), "rows": ["sas_small"]}, write=False)
    assert study.recorded_tasks(fewer) == read
    third = {**old, **study.downstream_record({"tests/x/task.json": {"task": "sst2", "downstream_size": None}})}
    grown = study.check_manifest(out, third, write=False)
    assert grown["downstream"] == "auto,wordnet_supersense,tests/x/task.json"
    assert grown["downstream_size"] == {"auto": [32, 32], "wordnet_supersense": [32, 32], "tests/x/task.json": None}
    # One task is recorded as a study with one task always was (so that code reads it too).
    assert study.downstream_record({"auto": {"task": None, "downstream_size": [4000, 1000]}}) == {
        "downstream": "auto", "task": None, "downstream_size": [4000, 1000]}
    assert study.recorded_tasks(OLD_STUDY_JSON) == {"auto": {"task": None, "downstream_size": [32, 32]}}
    assert study.recorded_tasks({"downstream": "none", "task": None, "downstream_size": None}) == {}
    # A GLUE folder's --task is part of its data.
    glue = tmp_path / "glue"
    glue.mkdir()
    (tmp_path / "g").mkdir()
    with open(tmp_path / "g" / "study.json", "w") as f:
        json.dump({**old, **study.downstream_record({str(glue): {"task": "sst2", "downstream_size": None}})}, f)
    with pytest.raises(UserError, match=rf"downstream task {glue} has task='sst2', not 'cola'"):
        study.check_manifest(str(tmp_path / "g"), {**old, **study.downstream_record(
            {"auto": {"task": None, "downstream_size": [32, 32]},
             str(glue): {"task": "cola", "downstream_size": None}})})


def test_a_finished_run_of_an_old_study_fine_tunes_only_the_new_task(tmp_path, monkeypatch, capsys):
    workdir = tmp_path / "sas_small" / "seed0"
    workdir.mkdir(parents=True)
    (workdir / "result.json").write_text(json.dumps(OLD_RESULT_JSON))
    calls = []

    def finetune(run, ds, cache):
        calls.append(ds.task)
        return {"score": 0.625, "selection_metric": "f1"}

    monkeypatch.setattr(study, "finetune", finetune)
    monkeypatch.setattr(study, "pretrain", lambda *a: pytest.fail("a finished run is pre-trained again"))
    run = study.Run("sas_small", 0, None, 37293120.0, str(workdir))
    word_order, pair2 = (study.Downstream(t, "", "glue:tiny", []) for t in ("word_order", "pair2"))
    result = study.run_one(run, None, 4.9, [word_order, pair2], {})
    assert calls == ["pair2"]
    assert "sas_small/seed0: pre-training finished before" in capsys.readouterr().out
    assert result == {**OLD_RESULT_JSON, "downstream": {"word_order": {"score": 0.5, "metric": "accuracy"},
                                                        "pair2": {"score": 0.625, "metric": "f1"}}}
    assert _json(workdir / "result.json") == result
    # The new task first: the flat fields are the command's first task's; nothing is fine-tuned again.
    again = study.run_one(run, None, 4.9, [pair2, word_order], {})
    assert calls == ["pair2"] and again == result
    assert "finished before, skipped" in capsys.readouterr().out
    (workdir / "result.json").write_text(json.dumps(OLD_RESULT_JSON))
    third = study.run_one(run, None, 4.9, [pair2, word_order], {})
    assert calls == ["pair2", "pair2"]
    assert (third["downstream_task"], third["downstream_score"], third["downstream_metric"]) == ("pair2", 0.625, "f1")
    assert study.downstream_scores(OLD_RESULT_JSON) == {"word_order": {"score": 0.5, "metric": "accuracy"}}


def _two_task_result(row, seed, word_order, pair2, loss=None):
    r = _result(row, seed, word_order, loss)
    r.update(downstream_task="word_order", downstream={"word_order": {"score": word_order, "metric": "accuracy"},
                                                       "pair2": {"score": pair2, "metric": "accuracy"}})
    return r


def test_table_has_a_column_mean_sd_and_tests_per_task(tmp_path):
    # sas − bert per seed: word order 0.10, 0.20, 0.30 (t = 2√3 on 2 df); pair2 0.0, 0.1, 0.2 (mean 0.1, sd 0.1).
    results = [_two_task_result("sas_small", s, 0.6 + 0.1 * s, 0.7 + 0.1 * s, 5.0) for s in range(3)]
    results += [_two_task_result("bert_small", s, 0.5, 0.7, 6.0) for s in range(3)]
    results += [_result("random", 0, 0.45) | {"downstream_task": "word_order"}]  # an old result: word order only
    table = study.write_table(results, str(tmp_path), budget=1e9, task=["word_order", "pair2"])
    pair2 = "downstream_score:pair2"
    assert table["columns"][-2:] == ["downstream_score", pair2] and table["downstream_tasks"] == ["word_order", "pair2"]
    assert table["downstream_task"] == "word_order"
    assert [(r["row"], r["downstream_score"], r[pair2]) for r in table["runs"]][::3] == [
        ("sas_small", 0.6, 0.7), ("bert_small", 0.5, 0.7), ("random", 0.45, None)]
    sas = table["summary"][0]
    assert sas["downstream_score"]["mean"] == pytest.approx(0.7) and sas[pair2]["mean"] == pytest.approx(0.8)
    assert sas[pair2]["sd"] == pytest.approx(0.1) and pair2 not in table["summary"][2]
    tests = {(t["a"], t["b"], t["figure"]): t for t in table["tests"]}
    assert list(tests) == [("sas_small", "bert_small", "downstream_score"), ("sas_small", "bert_small", pair2),
                           ("sas_small", "bert_small", "mlm_loss"), ("sas_small", "random", "downstream_score"),
                           ("bert_small", "random", "downstream_score")]
    t = tests[("sas_small", "bert_small", pair2)]
    assert t["mean_diff"] == pytest.approx(0.1) and t["t_test"]["t"] == pytest.approx(math.sqrt(3))
    assert (t["bootstrap"]["low"], t["bootstrap"]["high"]) == (pytest.approx(0.0), pytest.approx(0.2))
    assert tests[("sas_small", "bert_small", "downstream_score")]["mean_diff"] == pytest.approx(0.2)
    md = (tmp_path / "study_table.md").read_text()
    assert "| RTD all-original acc | unigram entropy | word_order dev | pair2 dev |" in md
    assert "| sas_small | 0 | 10 | 1e9 | 5.0000 |  |  |  |  |  | 5.0000 | 0.6000 | 0.7000 |" in md
    assert "| 0.7000 ± 0.1000 | 0.8000 ± 0.1000 |" in md
    assert "| sas_small | bert_small | pair2 dev | 0,1,2 | 0.8000 | 0.7000 | +0.1000 | 1.73 (2) |" in md
    rows = list(csv.reader(_text(tmp_path / "study_table.csv").splitlines()))
    assert rows[0][-2:] == ["downstream_score", pair2] and rows[1][-2:] == ["0.6", "0.7"]
    assert rows[7][-2:] == ["0.45", ""] and rows[8][:2] == ["sas_small", "mean"]
    assert float(rows[8][-1]) == pytest.approx(0.8) and float(rows[8][-2]) == pytest.approx(0.7)
    # One task: today's columns and titles, whichever layout the results have.
    one = study.write_table(results, str(tmp_path), budget=1e9, task="pair2")
    assert one["columns"][-1] == "downstream_score" and one["downstream_tasks"] == ["pair2"]
    assert [r["downstream_score"] for r in one["runs"]][::3] == [0.7, 0.7, None]
    assert "| unigram entropy | pair2 dev |" in (tmp_path / "study_table.md").read_text()


def test_a_downstream_figure_per_task(tmp_path, monkeypatch):
    from sas_jax.analysis import study_plots

    figures = []
    monkeypatch.setattr(study_plots, "save", lambda fig, path: figures.append(fig) or path)
    results = [_two_task_result("sas_small", s, 0.6, 0.7 + 0.1 * s) for s in range(2)]
    results += [_two_task_result("random", 0, 0.5, 0.25)]
    tasks = [study.Downstream("word_order", "", "glue", [], chance=0.5), study.Downstream("pair2", "", "glue", [])]
    paths = study.write_plots(results, str(tmp_path), budget=1e9, entropy=5.0, ds=tasks)
    assert paths == [str(tmp_path / "held_out_mlm_vs_flops.png"), str(tmp_path / "downstream.png"),
                     str(tmp_path / "downstream_pair2.png")]
    for fig, means, title in ((figures[1], [0.6, 0.5], "word_order"), (figures[2], [0.75, 0.25], "pair2")):
        ax = fig.axes[0]
        assert [round(p.get_height(), 6) for p in ax.patches] == means
        assert ax.get_title() == f"{title}: dev score at equal pre-training FLOPs"
        assert ax.get_ylabel().startswith(f"{title} dev score")


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_study_end_to_end_and_resume(tmp_path, prepared_corpus, capsys):
    """One pre-trained row and the random baseline, 6 steps, 2 evaluations, a 32-line fine-tune: every
    stage, table, figure, the resume and the refusal of other settings (the planning of several rows
    at equal FLOPs is test_dry_run_plans_steps_at_equal_flops_and_writes_nothing's)."""
    out = str(tmp_path / "study")
    budget = 2.3e8
    argv = ["--rows=sas_small,random", "--variant=tiny", f"--flops={budget}", f"--out={out}",
            f"--config.data.corpus_dir={prepared_corpus}", "--config.model.vocab_size=-1",
            "--config.log.tensorboard=false", f"--downstream_text={TEXT}", "--downstream_size=32,32",
            "--finetune.num_epochs=1", "--eval_rows=16", "--evals=2"]
    assert study.main(argv) == 0
    log = capsys.readouterr().out
    assert "budget: 2.3e8 training FLOPs per run" in log

    corpus = _corpus(prepared_corpus)
    per_step = flops.train_flops(make_config("sas_small", "tiny", num_train_steps=1), vocab_size=corpus.vocab_size)
    steps = math.floor(budget / per_step)
    table = _json(os.path.join(out, "study_table.json"))
    runs = {r["row"]: r for r in table["runs"]}
    assert list(runs) == ["sas_small", "random"] and steps == 6
    sas, rand = runs["sas_small"], runs["random"]
    assert sas["steps"] == steps and sas["train_flops"] == pytest.approx(steps * per_step)
    assert sas["train_flops"] <= budget
    assert "  sas_small: " in log and f"x {steps} steps" in log and "on 16 rows" in log
    for k in ("mlm_loss", "mlm_accuracy", "mlm_loss_replaced", "rtd_accuracy", "rtd_auc", "downstream_score"):
        assert np.isfinite(sas[k]), k
    every = math.ceil(steps / 2)
    assert [p["step"] for p in sas["curve"]] == [0, every, steps]  # step 0, every ceil(steps / evals), the last
    assert [p["train_flops"] for p in sas["curve"]] == pytest.approx([0, every * per_step, steps * per_step])
    # The baseline: no steps, no FLOPs, no held-out figures (no heads to evaluate), a fine-tuned score.
    assert (rand["steps"], rand["train_flops"], rand["curve"]) == (0, 0.0, [])
    assert all(rand[k] is None for k in study.EVAL_KEYS) and np.isfinite(rand["downstream_score"])
    for r in (sas, rand):
        assert 0.0 <= r["downstream_score"] <= 1.0
        assert r["unigram_entropy"] == study.unigram_entropy(corpus)  # one corpus: one reference for every row
    assert [(s["row"], s["n"], s["downstream_score"]["sd"]) for s in table["summary"]] == [
        ("sas_small", 1, None), ("random", 1, None)]
    (test,) = table["tests"]  # SAS against the baseline, on the downstream score (random has no MLM loss)
    assert (test["a"], test["b"], test["figure"], test["seeds"]) == ("sas_small", "random", "downstream_score", [0])
    assert test["note"] == "1 seed in common: a paired test needs 2" and test["t_test"]["p"] is None
    assert test["mean_diff"] == pytest.approx(sas["downstream_score"] - rand["downstream_score"])
    md = _text(os.path.join(out, "study_table.md"))
    assert "| sas_small | 0 |" in md and "| random | 0 |" in md and "word_order dev" in md
    assert "| sas_small | random | word_order dev | 0 |" in md and "n/a (1 seed in common" in md
    assert len(_text(os.path.join(out, "study_table.csv")).splitlines()) == 3
    for png in ("held_out_mlm_vs_flops.png", "downstream.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000
    assert sorted(_json(os.path.join(out, "study.json"))["rows"]) == ["random", "sas_small"]

    # Resume: a finished run is skipped; a run whose fine-tune is lost re-runs only that.
    sas_dir, rand_dir = os.path.join(out, "sas_small", "seed0"), os.path.join(out, "random", "seed0")
    os.remove(os.path.join(sas_dir, "result.json"))
    os.remove(os.path.join(sas_dir, "finetune", "word_order.json"))
    before_rand, before_ckpt = _mtimes(rand_dir), _mtimes(os.path.join(sas_dir, "checkpoints"))
    before_metrics = os.stat(os.path.join(sas_dir, "metrics.jsonl")).st_mtime_ns
    assert study.main(argv) == 0
    log = capsys.readouterr().out
    assert "random/seed0: finished before, skipped" in log
    assert "sas_small/seed0: pre-training already finished" in log
    assert f"pre-training {steps} steps" not in log
    assert _mtimes(rand_dir) == before_rand
    assert _mtimes(os.path.join(sas_dir, "checkpoints")) == before_ckpt
    assert os.stat(os.path.join(sas_dir, "metrics.jsonl")).st_mtime_ns == before_metrics
    again = _json(os.path.join(sas_dir, "result.json"))
    assert again["steps"] == steps and again["curve"] == sas["curve"] and np.isfinite(again["downstream_score"])

    # Another budget into the same folder is refused (one line, exit 2).
    assert study.main([a if not a.startswith("--flops") else "--flops=2e9" for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a study with flops=" in err

    # The study as the code before task lists left it: its study.json (one task written as then) and
    # result.json files (without the per-task `downstream` this code adds).
    overrides = [f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1", "log.tensorboard=false"]
    assert _json(os.path.join(out, "study.json")) == {**OLD_STUDY_JSON, "overrides": overrides}
    old = {}
    for d in (sas_dir, rand_dir):
        r = _json(os.path.join(d, "result.json"))
        assert r.pop("downstream") == {"word_order": {"score": r["downstream_score"], "metric": "accuracy"}}
        assert sorted(r) == sorted(OLD_RESULT_JSON)
        with open(os.path.join(d, "result.json"), "w") as f:
            json.dump(r, f)
        old[d] = r
    # Adding a task resumes it: every pre-training and word-order fine-tune is kept, only the new task runs.
    words = ("sun", "moon", "rain", "wind", "snow", "fog", "dew", "ice")
    task = _task_file(tmp_path / "pairs", [f"the {w} of the day" for w in words],
                      ["the star of the day", "the hail of the day"], name="pairs")
    grown = [*argv, f"--downstream=auto,{task}"]
    kept = _mtimes(os.path.join(sas_dir, "checkpoints"))
    word_order = {d: os.stat(os.path.join(d, "finetune", "word_order.json")).st_mtime_ns for d in (sas_dir, rand_dir)}
    assert study.main(grown) == 0
    log = capsys.readouterr().out
    assert f"pre-training {steps} steps" not in log and "finished before, skipped" not in log
    for row, d in (("sas_small", sas_dir), ("random", rand_dir)):
        assert f"{row}/seed0: pre-training finished before ({d}/result.json); fine-tuning pairs" in log
        assert os.stat(os.path.join(d, "finetune", "word_order.json")).st_mtime_ns == word_order[d]
        ft = _json(os.path.join(d, "finetune", "pairs.json"))
        r = _json(os.path.join(d, "result.json"))
        assert r == {**old[d], "downstream": {"word_order": {"score": old[d]["downstream_score"], "metric": "accuracy"},
                                              "pairs": {"score": ft["score"], "metric": ft["selection_metric"]}}}
        assert 0.0 <= ft["score"] <= 1.0 and ft["status"] == "done"
    assert _mtimes(os.path.join(sas_dir, "checkpoints")) == kept
    assert os.stat(os.path.join(sas_dir, "metrics.jsonl")).st_mtime_ns == before_metrics
    manifest = _json(os.path.join(out, "study.json"))
    assert manifest == {**OLD_STUDY_JSON, "overrides": overrides, "downstream": f"auto,{task}",
                        "downstream_size": {"auto": [32, 32], task: None}}
    table = _json(os.path.join(out, "study_table.json"))
    assert table["columns"][-2:] == ["downstream_score", "downstream_score:pairs"]
    assert table["downstream_tasks"] == ["word_order", "pairs"]
    assert [(r["downstream_score"], r["downstream_score:pairs"]) for r in table["runs"]] == [
        (old[d]["downstream_score"], _json(os.path.join(d, "finetune", "pairs.json"))["score"])
        for d in (sas_dir, rand_dir)]
    assert [(t["a"], t["b"], t["figure"]) for t in table["tests"]] == [
        ("sas_small", "random", "downstream_score"), ("sas_small", "random", "downstream_score:pairs")]
    md = _text(os.path.join(out, "study_table.md"))
    assert "| word_order dev | pairs dev |" in md and "| sas_small | random | pairs dev | 0 |" in md
    for png in ("downstream.png", "downstream_pairs.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000
    # Again: nothing to do. A task it has, with other data, is refused.
    before = {d: _mtimes(d) for d in (sas_dir, rand_dir)}
    assert study.main(grown) == 0
    assert capsys.readouterr().out.count("finished before, skipped") == 2
    assert {d: _mtimes(d) for d in (sas_dir, rand_dir)} == before
    assert study.main([*grown, "--downstream_size=16,16"]) == 2
    assert capsys.readouterr().err == (f"error: {out} holds a study whose downstream task auto has downstream_size="
                                       "[32, 32], not [16, 16]; use another --out (or the same settings to resume; a "
                                       "new task may be added to --downstream)\n")

    # Another fine-tuning recipe: refused without --refinetune (one line, nothing touched); with it every
    # run is fine-tuned again on the kept pre-training, the earlier fine-tunes kept under recipe_0/.
    recipe = [a if a != "--finetune.num_epochs=1" else "--finetune.num_epochs=2" for a in grown]
    before = {d: _mtimes(d) for d in (sas_dir, rand_dir)}
    assert study.main(recipe) == 2
    assert capsys.readouterr().err == (f"error: {out} holds a study fine-tuned with --finetune overrides "
                                       "['num_epochs=1'], not ['num_epochs=2']; pass the same ones to resume, or add "
                                       "--refinetune to fine-tune every run again with the new ones (its pre-training "
                                       "is kept, the earlier fine-tunes move to <run>/finetune/recipe_<n>/)\n")
    assert {d: _mtimes(d) for d in (sas_dir, rand_dir)} == before
    first = {d: {t: _json(os.path.join(d, "finetune", f"{t}.json")) for t in ("word_order", "pairs")}
             for d in (sas_dir, rand_dir)}
    assert study.main([*recipe, "--refinetune"]) == 0
    log = capsys.readouterr().out
    assert ("fine-tuning settings changed (word_order: --finetune ['num_epochs=1'] -> ['num_epochs=2']; pairs: "
            "--finetune ['num_epochs=1'] -> ['num_epochs=2']): every run is fine-tuned again on word_order, pairs "
            "(pre-training kept; the earlier fine-tunes of 2 runs are in") in log
    assert f"pre-training {steps} steps" not in log and "finished before, skipped" not in log
    assert _mtimes(os.path.join(sas_dir, "checkpoints")) == kept
    assert _json(os.path.join(out, "study.json"))["finetune_overrides"] == ["num_epochs=2"]
    table = {r["row"]: r for r in _json(os.path.join(out, "study_table.json"))["runs"]}
    for row, d in (("sas_small", sas_dir), ("random", rand_dir)):
        assert _json(os.path.join(d, "finetune", "recipe_0", "recipe.json")) == {
            "finetune_overrides": ["num_epochs=1"], "downstream": f"auto,{task}", "task": None,
            "downstream_size": {"auto": [32, 32], task: None}}
        for t in ("word_order", "pairs"):
            assert _json(os.path.join(d, "finetune", "recipe_0", f"{t}.json")) == first[d][t]  # kept as it was
            ft = _json(os.path.join(d, "finetune", f"{t}.json"))
            assert (ft["num_epochs"], ft["status"], len(ft["epochs"])) == (2, "done", 2)
            assert _json(os.path.join(d, "result.json"))["downstream"][t]["score"] == ft["score"]
        assert table[row]["downstream_score"] == _json(os.path.join(d, "finetune", "word_order.json"))["score"]
        assert table[row]["steps"] == (steps if row == "sas_small" else 0)
    # Resumed with the new recipe, the flag given again or not: nothing to do, nothing moved.
    for again in (recipe, [*recipe, "--refinetune"]):
        assert study.main(again) == 0
        assert capsys.readouterr().out.count("finished before, skipped") == 2
    assert not os.path.exists(os.path.join(sas_dir, "finetune", "recipe_1"))
    # Other shared overrides must name every task the study has: one line, nothing touched.
    before = {d: _mtimes(d) for d in (sas_dir, rand_dir)}
    assert study.main([*argv, "--finetune.num_epochs=3", "--refinetune"]) == 2
    assert capsys.readouterr().err == (f"error: --refinetune with other shared --finetune overrides fine-tunes every "
                                       f"task of {out} again; name them all: add {task} to --downstream\n")
    assert {d: _mtimes(d) for d in (sas_dir, rand_dir)} == before
    # Other task data with --refinetune: only the word-order task, rebuilt at 16 lines, is fine-tuned again.
    pairs = {d: os.stat(os.path.join(d, "finetune", "pairs.json")).st_mtime_ns for d in (sas_dir, rand_dir)}
    assert study.main([*recipe, "--refinetune", "--downstream_size=16,16"]) == 0
    assert ("(word_order: data {'task': None, 'downstream_size': [32, 32]} -> {'task': None, 'downstream_size': "
            "[16, 16]}): every run is fine-tuned again on word_order (") in capsys.readouterr().out
    assert _json(os.path.join(sas_dir, "finetune", "recipe_1", "recipe.json"))["finetune_overrides"] == ["num_epochs=2"]
    assert sorted(os.listdir(os.path.join(sas_dir, "finetune", "recipe_1"))) == ["recipe.json", "word_order.json"]
    assert _json(os.path.join(sas_dir, "finetune", "word_order.json"))["train_rows"] == 16
    assert {d: os.stat(os.path.join(d, "finetune", "pairs.json")).st_mtime_ns for d in (sas_dir, rand_dir)} == pairs
    # One task's own recipe (--finetune.TASK:a.b=v): only that task is fine-tuned again, the others kept.
    words = {d: os.stat(os.path.join(d, "finetune", "word_order.json")).st_mtime_ns for d in (sas_dir, rand_dir)}
    assert study.main([*recipe, "--downstream_size=16,16", "--finetune.pairs:num_epochs=3", "--refinetune"]) == 0
    assert "every run is fine-tuned again on pairs (" in capsys.readouterr().out
    assert {d: os.stat(os.path.join(d, "finetune", "word_order.json")).st_mtime_ns for d in (sas_dir, rand_dir)} == words
    for d in (sas_dir, rand_dir):
        assert _json(os.path.join(d, "finetune", "pairs.json"))["num_epochs"] == 3
        assert _json(os.path.join(d, "finetune", "word_order.json"))["num_epochs"] == 2
        r = _json(os.path.join(d, "result.json"))["downstream"]
        assert r["pairs"]["score"] == _json(os.path.join(d, "finetune", "pairs.json"))["score"]
        assert r["word_order"]["score"] == _json(os.path.join(d, "finetune", "word_order.json"))["score"]
