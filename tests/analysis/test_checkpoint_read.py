"""Reading a finished checkpoint (`checkpointing.read_params`, `read_model`): what
`Checkpointer` wrote comes back as numpy, with its meta and the run's tokenizer."""
import os

import jax
import numpy as np
import pytest

from sas_jax import checkpointing, config_lib
from sas_jax.corruption.store import SampleStore
from sas_jax.data.corpus import Corpus
from sas_jax.errors import UserError


def fake_params(vocab: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"embeddings": {"word_embeddings": {"embedding": rng.normal(size=(vocab, 8)).astype(np.float32)}},
            "encoder": {"layer_0": {"query": {"kernel": rng.normal(size=(8, 8)).astype(np.float32),
                                              "bias": np.zeros((8,), np.float32)}}},
            "rtd_head": {"dense": {"kernel": rng.normal(size=(8, 1)).astype(np.float32)}}}


def write_run(workdir, steps, meta, vocab=40):
    store = SampleStore(np.arange(4), max_predictions=2, seq_len=8, vocab_size=vocab)
    ckpt = checkpointing.Checkpointer(str(workdir), keep=5, async_save=False)
    written = {}
    for step in steps:
        params = fake_params(vocab, step)
        state = {"params": params, "opt_state": {"mu": jax.tree.map(np.zeros_like, params)},
                 "step": np.int32(step)}
        ckpt.save(step, state, store, {**meta, "param_shapes": checkpointing.param_shapes(params)})
        written[step] = params
    ckpt.wait()
    ckpt.close()
    return written


def assert_same_tree(a, b):
    fa, fb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in fa] == [p for p, _ in fb]
    for (_, x), (_, y) in zip(fa, fb):
        assert isinstance(x, np.ndarray) and x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_params_and_meta_round_trip(tmp_path):
    workdir = tmp_path / "run"
    written = write_run(workdir, [2, 5], {"config": {"seed": 7}, "data": {"step": 0}})
    assert checkpointing.checkpoint_steps(str(workdir)) == [2, 5]
    assert checkpointing.checkpoint_steps(str(workdir / "checkpoints")) == [2, 5]
    assert checkpointing.latest_step(str(workdir)) == 5
    params, meta = checkpointing.read_params(str(workdir))  # the latest
    assert_same_tree(params, written[5])
    assert meta["config"] == {"seed": 7} and meta["param_shapes"]["['encoder']['layer_0']['query']['kernel']"] == [8, 8]
    params2, _ = checkpointing.read_params(str(workdir / "checkpoints"), 2)  # the checkpoints/ folder works too
    assert_same_tree(params2, written[2])
    assert checkpointing.read_step_meta(str(workdir), -1) == meta
    assert checkpointing.resolve_step(str(workdir), None) == (str(workdir / "checkpoints" / "5"), 5)


def test_missing_runs_and_steps_are_one_line_errors(tmp_path):
    write_run(tmp_path / "run", [3], {"config": {}})
    (tmp_path / "empty").mkdir()
    cases = [
        (tmp_path / "nope", None, r"^checkpoint dir .*nope not found; pass the --workdir of a pre-training run"),
        (tmp_path / "empty", None, r"^.*empty holds no finished checkpoint \(checkpoints/<step>/state\); "
                                   r"pre-train first or pass another --checkpoint_dir$"),
        (tmp_path / "run", 4, r"^.*run has no checkpoint of step 4; it has steps 3$"),
    ]
    for path, step, message in cases:
        with pytest.raises(UserError, match=message) as e:
            checkpointing.read_params(str(path), step)
        assert "\n" not in str(e.value)
    assert checkpointing.checkpoint_steps(str(tmp_path / "nope")) == [] and checkpointing.latest_step(
        str(tmp_path / "empty")) is None


def test_read_model_gives_shape_params_and_the_runs_tokenizer(tmp_path, prepared_corpus):
    model = config_lib.encoder_shape_config("small")
    model.hidden_size, model.num_heads, model.head_dim = 8, 2, 4
    corpus = Corpus.open(prepared_corpus)
    vocab = corpus.vocab_size
    workdir = tmp_path / "run"
    workdir.mkdir()
    os.symlink(prepared_corpus, workdir / "corpus")  # a corpus_dir relative to the workdir, as train.py reads it
    config = {"model": model.to_dict(), "data": {"corpus_dir": "corpus", "prepare": {"tokenizer": ""}},
              "objective": {"corruption": "bert"}}
    written = write_run(workdir, [1], {"config": config}, vocab=vocab)
    for where in (workdir, workdir / "checkpoints"):
        got = checkpointing.read_model(str(where))
        assert got.step == 1 and got.cfg.vocab_size == vocab and got.cfg.hidden_size == 8
        assert got.tokenizer.fingerprint == corpus.tokenizer.fingerprint
        assert got.source == {"kind": "checkpoint", "checkpoint_dir": str(where), "step": 1, "objective": "bert"}
        assert_same_tree(got.params, written[1])
        assert got.meta["config"]["data"]["corpus_dir"] == "corpus"
    other = checkpointing.read_model(str(workdir), tokenizer=str(prepared_corpus / "tokenizer.model"))
    assert other.tokenizer.path.endswith("tokenizer.model")
    os.unlink(workdir / "corpus")
    with pytest.raises(UserError, match=r"^cannot find the tokenizer of .*run \(corpus dir .*run/corpus is gone\); "
                                        r"pass init_from.tokenizer=<the .model or vocab.txt it was trained with>$"):
        checkpointing.read_model(str(workdir))
