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
def test_fmt_flops_and_bad_arguments(cli):
    assert study.fmt_flops(1.274e18) == "1.27e18" and study.fmt_flops(3.7e12) == "3.7e12"
    with pytest.raises(UserError, match="unknown argument"):
        study.split_overrides(["--confg.seed=1"])
    assert study.split_overrides(["--config.seed", "3", "--finetune.num_epochs=1"]) == (["seed=3"], ["num_epochs=1"])
    r = cli("-m", "sas_jax.study", "--rows=nope", "--variant=tiny", "--flops=1e9", "--out=/nonexistent/x")
    assert r.returncode == 2 and r.stderr.startswith("error: config 'nope'") and len(r.stderr.splitlines()) == 1
    assert "Traceback" not in r.stderr


def _mtimes(root):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, fs in os.walk(root) for f in fs}


@pytest.mark.slow
def test_study_end_to_end_and_resume(tmp_path, prepared_corpus, capsys):
    out = str(tmp_path / "study")
    budget = 1.1e9
    argv = ["--rows=sas_small,bert_small", "--variant=tiny", f"--flops={budget}", f"--out={out}",
            f"--config.data.corpus_dir={prepared_corpus}", "--config.model.vocab_size=-1",
            "--config.log.tensorboard=false", "--downstream_size=128,64", "--finetune.num_epochs=1"]
    assert study.main(argv) == 0
    log = capsys.readouterr().out
    assert "budget: 1.1e9 training FLOPs per run" in log

    # Steps follow the paper-convention accounting: equal budget, more FLOPs/step -> fewer steps.
    from sas_jax.data.corpus import Corpus

    vocab = Corpus.open(prepared_corpus).vocab_size
    per_step = {}
    for row in ("sas_small", "bert_small"):
        c = make_config(row, "tiny", num_train_steps=1)
        per_step[row] = flops.train_flops(c, vocab_size=vocab)
    table = json.load(open(os.path.join(out, "study_table.json")))
    runs = {r["row"]: r for r in table["runs"]}
    assert set(runs) == {"sas_small", "bert_small"}
    for row, r in runs.items():
        assert r["steps"] == math.floor(budget / per_step[row]) and 20 <= r["steps"] <= 40
        assert r["train_flops"] == pytest.approx(r["steps"] * per_step[row]) and r["train_flops"] <= budget
        assert f"{row}: " in log and f"x {r['steps']} steps" in log
        for k in ("mlm_loss", "mlm_accuracy", "mlm_loss_replaced", "unigram_entropy", "downstream_score"):
            assert np.isfinite(r[k]), (row, k)
        assert 0.0 <= r["downstream_score"] <= 1.0
        assert 8 <= len(r["curve"]) <= 11 and r["curve"][0]["step"] == 0 and r["curve"][-1]["step"] == r["steps"]
    assert per_step["sas_small"] > per_step["bert_small"] and runs["sas_small"]["steps"] < runs["bert_small"]["steps"]
    assert np.isfinite(runs["sas_small"]["rtd_auc"]) and runs["bert_small"]["rtd_auc"] is None  # BERT has no RTD head
    assert runs["sas_small"]["unigram_entropy"] == runs["bert_small"]["unigram_entropy"]
    md = open(os.path.join(out, "study_table.md")).read()
    assert "| sas_small | 0 |" in md and "word_order dev" in md
    assert len(open(os.path.join(out, "study_table.csv")).read().splitlines()) == 3
    for png in ("held_out_mlm_vs_flops.png", "downstream.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000

    # Resume: a finished run is skipped; a run whose fine-tune is lost re-runs only that.
    sas, bert = os.path.join(out, "sas_small", "seed0"), os.path.join(out, "bert_small", "seed0")
    os.remove(os.path.join(bert, "result.json"))
    os.remove(os.path.join(bert, "finetune", "word_order.json"))
    before_sas, before_bert = _mtimes(sas), _mtimes(os.path.join(bert, "checkpoints"))
    before_metrics = os.stat(os.path.join(bert, "metrics.jsonl")).st_mtime_ns
    assert study.main(argv) == 0
    log = capsys.readouterr().out
    assert "sas_small/seed0: finished before, skipped" in log
    assert "bert_small/seed0: pre-training already finished" in log
    assert f"pre-training {runs['bert_small']['steps']} steps" not in log
    assert _mtimes(sas) == before_sas
    assert _mtimes(os.path.join(bert, "checkpoints")) == before_bert
    assert os.stat(os.path.join(bert, "metrics.jsonl")).st_mtime_ns == before_metrics
    again = json.load(open(os.path.join(bert, "result.json")))
    assert again["steps"] == runs["bert_small"]["steps"] and np.isfinite(again["downstream_score"])

    # Another budget into the same folder is refused (one line, exit 2).
    assert study.main([a if not a.startswith("--flops") else "--flops=2e9" for a in argv]) == 2
    assert "holds a study with flops=" in capsys.readouterr().err
