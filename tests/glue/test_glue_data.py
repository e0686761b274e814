"""GLUE loading from the TSV layouts and from (a fake) tfds, and BERT-style encoding."""
import sys

import glue_fixtures as gf
import numpy as np
import pytest

from sas_jax.errors import UserError
from sas_jax.glue import data
from sas_jax.glue.tasks import SPECS, TASKS, get_task, parse_tasks


@pytest.fixture
def fake_tfds(monkeypatch):
    mod = gf.fake_tfds()
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", mod)
    return mod


@pytest.mark.parametrize("task", TASKS)
def test_tsv_and_tfds_give_the_same_rows(task, glue_dir, fake_tfds):
    spec = SPECS[task]
    splits = ("train", *spec.dev_splits, *spec.test_splits)
    from_tsv = data.load_task(task, glue_dir=str(glue_dir), splits=splits)
    from_tfds = data.load_task(task, tfds_data_dir="/nowhere", splits=splits)
    expected = gf.task_rows(task)
    for split in splits:
        a, b = from_tsv[split], from_tfds[split]
        rows = expected[split]
        assert a.text_a == b.text_a == [r[0] for r in rows]
        if spec.tsv_b is None:
            assert a.text_b is None and b.text_b is None
        else:
            assert a.text_b == b.text_b == [r[1] for r in rows]
        np.testing.assert_allclose(a.labels, [r[2] for r in rows], rtol=1e-6)
        np.testing.assert_allclose(b.labels, a.labels, rtol=1e-6)
        assert a.labels.dtype == b.labels.dtype == (np.float32 if task == "stsb" else np.int32)
        assert a.has_labels == (not split.startswith("test"))
    assert all(c[3] is False for c in fake_tfds.calls)  # never downloads
    assert {c[1] for c in fake_tfds.calls} >= {s.replace("dev", "validation") for s in splits}


def test_layout_quirks(glue_dir):
    qqp = data.load_task("qqp", glue_dir=str(glue_dir))["train"]
    assert qqp.skipped == 1 and len(qqp) == gf.SIZES["train"]  # the broken row
    mnli = data.load_task("mnli", glue_dir=str(glue_dir))
    assert 'the king said " love me " and left' in mnli["train"].text_a  # no csv quoting
    assert set(mnli) == {"train", "dev_matched", "dev_mismatched"}
    assert set(mnli["train"].labels.tolist()) == {0, 1, 2}
    mrpc = data.load_task("mrpc", glue_dir=str(glue_dir))["train"]  # BOM before "Quality"
    assert mrpc.labels.tolist()[:4] == [0, 1, 0, 1]


def test_bad_input_is_one_line_user_error(glue_dir, tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"unknown GLUE task 'wnli'"):
        data.load_task("wnli", glue_dir=str(glue_dir))
    with pytest.raises(UserError, match=r"CoLA/train.tsv not found.*--glue_dir"):
        data.load_task("cola", glue_dir=str(tmp_path))
    with pytest.raises(UserError, match=r"exactly one GLUE source"):
        data.load_task("cola")
    with pytest.raises(UserError, match=r"has no split 'dev_matched'"):
        data.load_task("rte", glue_dir=str(glue_dir), splits=["dev_matched"])
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"pip install tensorflow-datasets") as e:
        data.load_task("cola", tfds_data_dir=str(tmp_path))
    assert "\n" not in str(e.value)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", gf.fake_tfds(["rte"]))
    with pytest.raises(UserError, match=r"glue/cola split train could not be read"):
        data.load_task("cola", tfds_data_dir=str(tmp_path))
    assert parse_tasks("all") == TASKS and parse_tasks("RTE,sst-2,rte") == ("sst2", "rte")
    assert get_task("STS-B").is_regression and get_task("mnli").num_labels == 3


def test_truncation_drops_from_the_longer_segment_first():
    a, b = list(range(10)), list(range(100, 104))
    assert data.truncate_pair(a, b, 9)
    assert (len(a), len(b)) == (5, 4) and a == [0, 1, 2, 3, 4]
    a, b = [1, 2, 3], [4, 5, 6]
    data.truncate_pair(a, b, 4)
    assert (a, b) == ([1, 2], [4, 5])  # ties: b first, then a
    a = list(range(10))
    assert data.truncate_pair(a, None, 6) and a == list(range(6))
    assert not data.truncate_pair([1], [2], 5)


def test_encoding_is_cls_a_sep_b_sep(prepared_corpus):
    tok = gf.tokenizer_of(prepared_corpus)
    split = data.GlueSplit("rte", "train", ["love is true", "death " * 40], ["the night", "fair day"],
                           np.array([0, 1], np.int32), np.arange(2))
    enc = data.encode_split(split, tok, max_seq_length=16)
    a, b = tok.encode("love is true"), tok.encode("the night")
    row = [tok.cls_id, *a, tok.sep_id, *b, tok.sep_id]
    assert enc.input_ids[0, :len(row)].tolist() == row
    assert (enc.input_ids[0, len(row):] == tok.pad_id).all()
    assert enc.token_type_ids[0].tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * (16 - len(row))
    assert enc.input_mask[0].tolist() == [1] * len(row) + [0] * (16 - len(row))
    # The long premise is cut, the short hypothesis kept whole; the row is full.
    fb = tok.encode("fair day")
    assert enc.input_mask[1].sum() == 16 and enc.truncated == 1
    assert enc.input_ids[1, 16 - len(fb) - 1:15].tolist() == fb and enc.input_ids[1, 15] == tok.sep_id
    single = data.encode_split(data.GlueSplit("sst2", "dev", ["sweet love"], None, np.array([1], np.int32),
                                              np.arange(1)), tok, 8)
    assert single.input_ids[0, :2].tolist()[0] == tok.cls_id and single.token_type_ids.sum() == 0
    batches = list(data.batches(enc, 4))
    assert len(batches) == 1 and batches[0][1] == 2
    assert batches[0][0]["weights"].tolist() == [1, 1, 0, 0]
    assert batches[0][0]["input_ids"].shape == (4, 16)
