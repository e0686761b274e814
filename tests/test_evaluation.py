"""Held-out evaluation: fixed rows never trained on, corruption keyed by example id,
figures equal to a direct computation, AUC against scikit-learn."""
import jax
import numpy as np
import pytest
from conftest import load_config
from sklearn.metrics import roc_auc_score

from sas_jax import evaluation, objectives, sharding
from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.data import pipeline
from sas_jax.data.synthetic import MASK, markov_corpus


def test_held_out_rows_are_fixed_and_never_in_the_training_order():
    ids = evaluation.held_out_ids(1000, 64)
    np.testing.assert_array_equal(ids, evaluation.held_out_ids(1000, 64))  # no seed: the same for every run
    assert ids.size == 64 and np.all(np.diff(ids) > 0) and ids.max() < 1000
    seen = set()
    for p in range(2):
        order = pipeline.ExampleOrder(1000, 32, seed=7, process_index=p, process_count=2, held_out=ids)
        assert order.steps_per_epoch == (1000 - 64) // 32
        for step in range(order.steps_per_epoch):
            seen.update(order.batch_ids(step).tolist())
    assert not seen & set(ids.tolist())
    assert len(seen) == order.steps_per_epoch * 32
    # No held-out rows: exactly the order training always had.
    plain = pipeline.ExampleOrder(1000, 32, seed=7)
    legacy = np.random.default_rng([7, 0x0D0]).permutation(1000)[:32]
    np.testing.assert_array_equal(np.sort(plain.batch_ids(0)), np.sort(legacy))
    with pytest.raises(Exception, match="data.eval_rows=1000 leaves no training rows"):
        evaluation.held_out_ids(1000, 1000)


def test_corruption_is_a_pure_function_of_the_example_id():
    corpus = markov_corpus(64, 32, 200)
    tok = corpus.tokenizer
    sampler = ColdStartSampler("unigram", 200, corpus.unigram_counts)
    ids = np.arange(10, 26)
    whole = evaluation.corrupt(corpus.read(ids), ids, tokenizer=tok, sampler=sampler, mask_rate=0.15,
                               max_predictions=6)
    halves = [evaluation.corrupt(corpus.read(ids[i::2]), ids[i::2], tokenizer=tok, sampler=sampler,
                                 mask_rate=0.15, max_predictions=6) for i in (0, 1)]
    for kind in ("masked", "replaced"):
        for key, value in whole[kind].items():
            np.testing.assert_array_equal(value[0::2], halves[0][kind][key])
            np.testing.assert_array_equal(value[1::2], halves[1][kind][key])
    m, r = whole["masked"], whole["replaced"]
    np.testing.assert_array_equal(m["mlm_positions"], r["mlm_positions"])  # the same positions
    np.testing.assert_array_equal(m["mlm_targets"], np.take_along_axis(corpus.read(ids), m["mlm_positions"], 1))
    sel = np.zeros(m["input_ids"].shape, bool)
    np.put_along_axis(sel, m["mlm_positions"], m["mlm_weights"] > 0, axis=1)
    assert np.all(sel.sum(1) == round(0.15 * 32))
    np.testing.assert_array_equal(m["input_ids"], np.where(sel, MASK, corpus.read(ids)))
    assert not np.any(r["input_ids"][~sel] != corpus.read(ids)[~sel])


def test_auc_from_histograms_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.random(5000) < 0.2
    score = np.clip(rng.normal(0.6 * y + 0.3, 0.2), 0, 0.9999)
    bins = (score * evaluation.AUC_BINS).astype(int)
    pos = np.bincount(bins[y], minlength=evaluation.AUC_BINS)
    neg = np.bincount(bins[~y], minlength=evaluation.AUC_BINS)
    got = evaluation.auc_from_histograms(pos, neg)
    assert got == pytest.approx(roc_auc_score(y, bins), abs=1e-12)  # exact on the binned scores
    assert got == pytest.approx(roc_auc_score(y, score), abs=2e-3)


def test_unigram_entropy_ignores_special_tokens():
    counts = np.array([100, 0, 50, 0, 0, 1, 1, 2])
    special = np.zeros(8, bool)
    special[:5] = True
    p = np.array([0.25, 0.25, 0.5])
    assert evaluation.unigram_entropy(counts, special) == pytest.approx(-(p * np.log(p)).sum())


@pytest.mark.parametrize("name", ["sas_small", "bert_small", "electra_small"])
def test_held_out_figures_equal_a_direct_computation(name):
    cfg = load_config(name, "tiny")
    corpus = markov_corpus(96, cfg.seq_len, cfg.model.vocab_size)
    model = objectives.build(cfg, cfg.model.vocab_size).model
    mesh = sharding.make_mesh(cfg.mesh)
    rules = sharding.logical_rules(cfg.mesh)
    ids = evaluation.held_out_ids(corpus.num_rows, 16)
    held = evaluation.HeldOut(cfg, corpus, vocab_size=cfg.model.vocab_size, model=model, mesh=mesh, rules=rules,
                              ids=ids)
    x = corpus.read(ids[:2])
    params = jax.jit(lambda r: model.init({"params": r}, x, np.ones_like(x), np.zeros((2, 6), np.int32)))(
        jax.random.key(3))["params"]
    got = held.evaluate(params)

    ce = correct = slots = ce_r = hit = hit_r = 0.0
    rtd_ok = rtd_n = rtd_pos = 0.0
    scores, labels = [], []
    for b in held.batches:
        for kind in ("masked", "replaced"):
            d = b[kind]
            out = model.apply({"params": params}, d["input_ids"], d["input_mask"], d["mlm_positions"])
            w = d["mlm_weights"]
            logp = np.asarray(jax.nn.log_softmax(out["mlm_logits"], -1))
            nll = -np.take_along_axis(logp, d["mlm_targets"][..., None], -1)[..., 0]
            if kind == "masked":
                hit += (np.exp(-nll) * w).sum()
                ce += (nll * w).sum()
                correct += ((logp.argmax(-1) == d["mlm_targets"]) * w).sum()
                slots += w.sum()
            else:
                ce_r += (nll * w).sum()
                hit_r += (np.exp(-nll) * w).sum()
                logits = np.asarray(out["rtd_logits"]) if "rtd_logits" in out else None
                if logits is not None:
                    m = d["input_mask"] > 0
                    y = d["rtd_labels"] > 0
                    rtd_ok += ((logits > 0) == y)[m].sum()
                    rtd_n += m.sum()
                    rtd_pos += y[m].sum()
                    scores.append(logits[m])
                    labels.append(y[m])
    assert got["mlm_loss"] == pytest.approx(ce / slots, rel=1e-5)
    p_unigram = corpus.unigram_counts / corpus.unigram_counts.sum()
    targets = np.concatenate([b["masked"]["mlm_targets"][b["masked"]["mlm_weights"] > 0] for b in held.batches])
    assert got["unigram_ce"] == pytest.approx(-np.log(p_unigram[targets]).mean(), rel=1e-9)
    assert got["mlm_accuracy"] == pytest.approx(correct / slots, abs=1e-7)
    assert got["mlm_loss_replaced"] == pytest.approx(ce_r / slots, rel=1e-5)
    assert got["sample_hit"] == pytest.approx(hit / slots, rel=1e-5)
    assert got["sample_hit_replaced"] == pytest.approx(hit_r / slots, rel=1e-5)
    assert got["unigram_hit"] == pytest.approx(p_unigram[targets].mean(), rel=1e-9)
    if name == "bert_small":
        assert not {"rtd_accuracy", "rtd_auc"} & set(got)
    else:
        assert got["rtd_accuracy"] == pytest.approx(rtd_ok / rtd_n, abs=1e-7)
        assert got["rtd_baseline"] == pytest.approx(1 - rtd_pos / rtd_n, abs=1e-7)
        auc = roc_auc_score(np.concatenate(labels), np.concatenate(scores))
        assert got["rtd_auc"] == pytest.approx(auc, abs=5e-3)  # binned: ties inside a bin count half


def test_fill_mask_example_is_a_common_whole_word_chosen_without_the_model():
    corpus = markov_corpus(64, 32, 200)
    ids = evaluation.held_out_ids(corpus.num_rows, 16)
    example, pos = evaluation.fill_mask_example(corpus, ids, mask_rate=0.15, max_predictions=6, common=50)
    assert (example, pos) == evaluation.fill_mask_example(corpus, ids, mask_rate=0.15, max_predictions=6, common=50)
    row = corpus.read([example])[0]
    starts = corpus.tokenizer.word_start_table
    assert starts[row[pos]] and (pos + 1 == row.size or starts[row[pos + 1]])  # a one-piece word
    rank = np.argsort(np.argsort(-corpus.unigram_counts, kind="stable"), kind="stable")
    assert rank[row[pos]] < 50
    sel = evaluation.corrupt(corpus.read([example]), np.asarray([example]), tokenizer=corpus.tokenizer,
                             sampler=ColdStartSampler("uniform", 200), mask_rate=0.15, max_predictions=6)["masked"]
    assert pos in sel["mlm_positions"][0][sel["mlm_weights"][0] > 0]  # one of the held-out positions


def test_sample_hit_is_the_hit_rate_of_the_samples_sas_draws():
    """`sample_hit` is P(one draw of the step's sampler equals the target): drawing many samples
    with the trainer's sampler at a non-unit temperature gives the same share."""
    from sas_jax import losses

    logits = jax.random.normal(jax.random.key(0), (1, 4, 7)) * 2.0
    targets = np.asarray([[0, 3, 6, 2]], np.int32)
    batch = {"mlm_targets": targets, "mlm_weights": np.ones((1, 4), np.float32)}

    class Fixed:  # a "model" whose MLM logits are given
        def apply(self, variables, *args, **kw):
            return {"mlm_logits": logits}

    d = {"input_ids": np.zeros((1, 8), np.int32), "input_mask": np.ones((1, 8), np.int32),
         "mlm_positions": np.zeros((1, 4), np.int32), **batch}
    sums = evaluation.batch_sums({}, d, d, model=Fixed(), temperature=0.7)
    got = evaluation.summarize(jax.device_get(sums))["sample_hit"]
    draws = jax.vmap(lambda k: losses.sample_tokens(k, logits, 0.7))(jax.random.split(jax.random.key(1), 20000))
    share = float((np.asarray(draws) == targets).mean())
    assert got == pytest.approx(share, abs=0.01)
    assert 0.05 < got < 0.95  # not a degenerate case


@pytest.mark.slow
@pytest.mark.timeout(300)  # a deadlock ends here, with every thread's stack, not at the suite's 10 minutes
def test_evaluating_every_step_on_eight_devices_never_deadlocks(tmp_path):
    """XLA's CPU runtime deadlocked (a collective waiting for one device forever) when the
    held-out loop queued its programs without waiting for them, while a training step was in
    flight: this run (evaluation after every step) stopped at evaluation 7, 7 and 58 in three
    tries before `HeldOut.evaluate` brought each batch's sums to the host, and ran 301 after."""
    import json  # noqa: PLC0415

    from sas_jax import train  # noqa: PLC0415

    cfg = load_config("sas_small", "tiny")
    assert jax.device_count() == 8
    cfg.num_train_steps, cfg.log.every_steps, cfg.log.eval_every_steps = 96, 1, 1
    cfg.ckpt.every_steps, cfg.log.tensorboard, cfg.data.eval_rows = 1000, False, 64
    train.train_and_evaluate(cfg, str(tmp_path), corpus=markov_corpus(256, cfg.seq_len, cfg.model.vocab_size))
    evals = [d for d in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
             if "eval/mlm_loss" in d]
    assert [d["step"] for d in evals] == list(range(97))
    assert all(np.isfinite(d["eval/mlm_loss"]) for d in evals)
