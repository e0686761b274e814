"""GLUE loading from the TSV layouts, and BERT-style encoding (from tfds, read without
TensorFlow: tests/data/test_tfds_source.py, on real ArrayRecord datasets)."""
import glue_fixtures as gf
import numpy as np
import pytest

from sas_jax.errors import UserError
from sas_jax.glue import data
from sas_jax.glue.tasks import TASKS, get_task, parse_tasks


def test_layout_quirks(glue_dir, capsys):
    with pytest.raises(UserError, match=r"QQP/train.tsv line 7: short row, 4 fields where 6 are needed: "
                                        r"'999\\t1\\t2\\ta question cut short'; .*pass --skip_bad_rows"):
        data.load_task("qqp", glue_dir=str(glue_dir))  # the broken row: refused by default
    qqp = data.load_task("qqp", glue_dir=str(glue_dir), skip_bad_rows=True)["train"]
    assert qqp.skipped == 1 and len(qqp) == gf.SIZES["train"]  # left out, with a note naming it
    assert "note: skipped 1 bad row(s) of" in capsys.readouterr().out
    mnli = data.load_task("mnli", glue_dir=str(glue_dir))
    assert 'the king said " love me " and left' in mnli["train"].text_a  # no csv quoting
    assert set(mnli) == {"train", "dev_matched", "dev_mismatched"}
    assert set(mnli["train"].labels.tolist()) == {0, 1, 2}
    mrpc = data.load_task("mrpc", glue_dir=str(glue_dir))["train"]  # BOM before "Quality"
    assert mrpc.labels.tolist()[:4] == [0, 1, 0, 1]


def test_bad_input_is_one_line_user_error(glue_dir, tmp_path):
    with pytest.raises(UserError, match=r"unknown GLUE task 'wnli'"):
        data.load_task("wnli", glue_dir=str(glue_dir))
    with pytest.raises(UserError, match=r"CoLA/train.tsv not found.*--glue_dir"):
        data.load_task("cola", glue_dir=str(tmp_path))
    with pytest.raises(UserError, match=r"exactly one GLUE source"):
        data.load_task("cola")
    with pytest.raises(UserError, match=r"has no split 'dev_matched'"):
        data.load_task("rte", glue_dir=str(glue_dir), splits=["dev_matched"])
    assert parse_tasks("all") == TASKS and parse_tasks("RTE,sst-2,rte") == ("sst2", "rte")
    assert get_task("STS-B").is_regression and get_task("mnli").num_labels == 3


@pytest.mark.parametrize("line, want", [
    ("a fine sentence\t7", r"label '7' is not one of SST-2's labels: 0, 1"),
    ("   \t1", r"empty text \(column 1\)"),
    ("no label at all", r"short row, 1 fields where 2 are needed"),
])
def test_a_bad_glue_row_is_named_or_skipped_with_a_count(glue_dir, tmp_path, capsys, line, want):
    import shutil  # noqa: PLC0415

    root = tmp_path / "glue"
    shutil.copytree(glue_dir / "SST-2", root / "SST-2")
    path = root / "SST-2" / "train.tsv"
    rows = path.read_text().splitlines()
    path.write_text("\n".join([*rows[:3], line, *rows[3:]]) + "\n")
    with pytest.raises(UserError, match=rf"SST-2/train.tsv line 4: {want}.*; fix the file, or pass --skip_bad_rows"):
        data.load_task("sst2", glue_dir=str(root))
    train = data.load_task("sst2", glue_dir=str(root), skip_bad_rows=True)["train"]
    assert train.skipped == 1 and len(train) == len(rows) - 1
    assert f"skipped 1 bad row(s) of {path} (skip_bad_rows); the first: line 4: " in capsys.readouterr().out


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
