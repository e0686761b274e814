"""The CLI as a user runs it: bad input gives one clear line, exit 2, nothing lost."""
import errno
import os
import re
import shutil

import pytest

from sas_jax import checkpointing, train
from sas_jax.errors import UserError


@pytest.fixture
def tiny_on(config_factory):
    """`tiny_on(corpus_dir, **overrides)`: the tiny SAS config on a corpus, 4 steps, checkpoints at 2 and 4."""
    def make(corpus_dir, **overrides):
        return config_factory("sas_small", "tiny", **{
            "data.corpus_dir": str(corpus_dir), "model.vocab_size": -1, "num_train_steps": 4,
            "ckpt.every_steps": 2, "log.tensorboard": False, **overrides})
    return make


@pytest.fixture
def finished_run(tiny_workdir, tmp_path):
    """A copy of the session's `tiny_workdir` (conftest), the run `tiny_on(prepared_corpus)` trains:
    the same identity (they differ only in log. and ckpt. settings, free in a resume), checkpoints
    at 2 and 4. Trained once per worker instead of once per test that needs a finished run."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_workdir, workdir)  # the shared fixture stays intact
    return workdir


def assert_one_line_error(result, pattern):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.slow
def test_missing_corpus_dir_names_the_fix(tmp_path, cli):
    r = cli("-m", "sas_jax.main", "--config=configs/sas_small.py:tiny", f"--workdir={tmp_path}/w",
            f"--config.data.corpus_dir={tmp_path}/nope")
    assert_one_line_error(r, r"nope.*python -m sas_jax.prepare")


def test_unknown_config_key_and_wrong_type_are_refused(tmp_path, cli):
    r = cli("-m", "sas_jax.main", "--config=configs/sas_small.py:tiny", f"--workdir={tmp_path}",
            "--config.sas.lambda_stat=3")
    assert r.returncode != 0 and "lambda_stat" in r.stderr
    r = cli("-m", "sas_jax.main", "--config=configs/sas_small.py:tiny", f"--workdir={tmp_path}",
            "--config.batch_size=many")
    assert r.returncode != 0 and "batch_size" in r.stderr
    r = cli("-m", "sas_jax.main", "--config=configs/sas_small.py:tiyn", f"--workdir={tmp_path}")
    assert r.returncode != 0 and "unknown config variant 'tiyn'" in r.stderr


def test_corpus_smaller_than_one_batch(prepared_corpus, tmp_path, tiny_on):
    with pytest.raises(UserError, match=r"has 2562 training rows .*fewer than one global batch of 4096"
                                        r".*--config.batch_size"):
        train.train_and_evaluate(tiny_on(prepared_corpus, batch_size=4096), str(tmp_path))


def test_seq_len_beyond_position_table(prepared_corpus, tmp_path, tiny_on):
    with pytest.raises(UserError, match=r"seq_len=96 exceeds model.max_position_embeddings=64"):
        train.train_and_evaluate(tiny_on(prepared_corpus, seq_len=96), str(tmp_path))


def test_seq_len_differs_from_corpus(prepared_corpus, tmp_path, tiny_on):
    with pytest.raises(UserError, match=r"corpus was prepared with 32; set --config.seq_len=32"):
        train.train_and_evaluate(tiny_on(prepared_corpus, seq_len=48), str(tmp_path))


def test_batch_not_divisible_by_devices(prepared_corpus, tmp_path, tiny_on):
    with pytest.raises(UserError, match=r"batch_size=12 is not divisible by the 8 batch shards"):
        train.train_and_evaluate(tiny_on(prepared_corpus, batch_size=12), str(tmp_path))


def test_tokenizer_that_does_not_match_the_corpus(prepared_corpus, tmp_path, tiny_on):
    from sas_jax.data.tokenizer import train_sentencepiece  # noqa: PLC0415

    text = tmp_path / "other.txt"
    text.write_text("a different corpus with other words entirely\n" * 200)
    other = train_sentencepiece([str(text)], 26, str(tmp_path / "other"))
    with pytest.raises(UserError, match=r"does not match the corpus"):
        train.train_and_evaluate(tiny_on(prepared_corpus, **{"data.prepare.tokenizer": other}), str(tmp_path / "w"))
    with pytest.raises(UserError, match=r"does not exist"):
        train.train_and_evaluate(tiny_on(prepared_corpus, **{"data.prepare.tokenizer": str(tmp_path / "x.model")}),
                                 str(tmp_path / "w"))


@pytest.mark.slow
def test_workdir_with_another_model_shape_is_refused_and_kept(prepared_corpus, finished_run, tiny_on):
    workdir = finished_run
    before = sorted(os.listdir(workdir / "checkpoints"))
    assert before == ["2", "4"]
    record = (workdir / "config.json").read_text()
    with pytest.raises(UserError, match=r"another model shape: .*intermediate'\]\['bias'\] is \(64,\) in the "
                                        r"checkpoint, \(128,\) in this config \(\+5 more\); use a new --workdir"):
        train.train_and_evaluate(tiny_on(prepared_corpus, **{"model.intermediate_size": 128}), str(workdir))
    assert sorted(os.listdir(workdir / "checkpoints")) == before
    assert (workdir / "config.json").read_text() == record  # the refused config is recorded nowhere
    assert not list(workdir.glob("config.*.json"))


@pytest.mark.slow
def test_write_error_during_checkpoint_keeps_the_previous_one(prepared_corpus, finished_run, monkeypatch, tiny_on):
    cfg = tiny_on(prepared_corpus)
    workdir = finished_run  # checkpoints 2 and 4
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
    original = checkpointing.StoreHandler.save

    def full_disk(self, directory, args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpointing.StoreHandler, "save", full_disk)
    cfg.num_train_steps = 6
    with pytest.raises(UserError, match=r"checkpoint of step 6 could not be written in .*checkpoints \(No space left "
                                        r"on device\); a checkpoint needs about [\d.]+ MiB, [\d,.]+ MiB free there; "
                                        r"the checkpoint of step 4 is intact"):
        train.train_and_evaluate(cfg, str(workdir))
    monkeypatch.setattr(checkpointing.StoreHandler, "save", original)
    ckpt = checkpointing.Checkpointer(str(workdir), keep=3, async_save=False)
    assert ckpt.latest_step() == 4
    assert ckpt.read_meta(4)["data"]["step"] == 4
    ckpt.close()
    cfg.num_train_steps = 6  # and the run resumes from it
    train.train_and_evaluate(cfg, str(workdir))
    ckpt = checkpointing.Checkpointer(str(workdir), keep=3, async_save=False)
    try:  # closed: an open Checkpointer holds its quiet I/O region (and hooks) for the rest of the process
        assert ckpt.latest_step() == 6
    finally:
        ckpt.close()
