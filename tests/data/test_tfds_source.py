"""tfds without TensorFlow: real tfds datasets (tiny builders, prepared as ArrayRecord here)
read through the project's one path (`sas_jax.data.tfds_source`) by `prepare --tfds` and
by GLUE's `--tfds_data_dir`; one-line errors that say what is wrong."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sas_jax.data import prepare as prepare_lib
from sas_jax.data import tfds_source
from sas_jax.data import tokenizer as tokenizer_lib
from sas_jax.errors import UserError

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "glue"))  # glue_fixtures (for the `glue_dir` fixture too)
DOCS = ["the man played.\n\n  \nthe dog played.\n", "un dog is a man", "a dog and the man , played ."]


def _needs_tfds():
    pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets not installed "
                        "(pip install 'sas_jax[tfds]'); the real-tfds tests need it")
    pytest.importorskip("array_record", reason="array_record not installed (pip install 'sas_jax[tfds]')")
    import tfds_fixtures  # noqa: PLC0415 (imports tensorflow_datasets)

    return tfds_fixtures


@pytest.fixture
def vocab(tmp_path):
    from test_prepare import WP_VOCAB  # noqa: PLC0415

    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(WP_VOCAB) + "\n")
    return str(path)


def test_missing_packages_is_one_line(tmp_path, vocab, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import raises ImportError
    with pytest.raises(UserError, match=r"^reading tfds datasets needs tensorflow-datasets(?: and array_record)?, "
                                        r"which (is|are) not installed; pip install 'sas_jax\[tfds\]' "
                                        r"\(TensorFlow is not needed\)$"):
        prepare_lib.prepare_corpus(None, str(tmp_path / "o"), seq_len=4, tokenizer_path=vocab,
                                   tfds_name="wikipedia", workers=1, progress=False)
    assert not os.path.exists(tmp_path / "o")  # checked before anything is written
    from sas_jax.glue import data as glue_data  # noqa: PLC0415

    with pytest.raises(UserError, match=r"^reading tfds datasets needs tensorflow-datasets.*sas_jax\[tfds\]"):
        glue_data.load_task("cola", tfds_data_dir=str(tmp_path))
    monkeypatch.setitem(sys.modules, "array_record.python.array_record_module", None)
    with pytest.raises(UserError, match=r"needs tensorflow-datasets and array_record, which are not installed"):
        tfds_source.import_tfds()


def test_tensorflow_is_not_installed():
    """The point of the data-source path: everything below runs without TensorFlow."""
    _needs_tfds()
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("tensorflow is installed here, so this cannot show the path works without it")
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401, PLC0415


def test_prepare_corpus_from_tfds(tmp_path, vocab):
    """Each example is one document, even with blank lines inside it; the newest version is read."""
    from test_prepare import expected_document_rows, load_rows  # noqa: PLC0415

    tf = _needs_tfds()
    data_dir = tmp_path / "tfds"
    tf.build_text(data_dir, {"train": DOCS, "test": DOCS[:1]})
    meta = prepare_lib.prepare_corpus(None, str(tmp_path / "o"), seq_len=3, tokenizer_path=vocab,
                                      tfds_name="tiny_text", tfds_data_dir=str(data_dir), add_sep=True,
                                      workers=1, progress=False)
    assert meta["sources"] == ["tfds:tiny_text/train"] and meta["skipped_lines"] == 0
    tok = tokenizer_lib.load_tokenizer(vocab)
    stored = [ex["text"].decode() for ex in tfds_source.open_split("tiny_text", str(data_dir), "train")]
    assert sorted(stored) == sorted(DOCS)  # tfds stores examples shuffled; rows follow its order
    docs = [tok.encode(" ".join(d.split())) + [tok.sep_id] for d in stored]
    np.testing.assert_array_equal(load_rows(str(tmp_path / "o"), meta),
                                  expected_document_rows(tok, docs, 3, add_sep=True))
    assert "tensorflow" not in sys.modules

    # The CLI, in a fresh process (the builder class is not importable there: read from files).
    res = subprocess.run([sys.executable, "-m", "sas_jax.prepare", "--tfds=tiny_text:1.0.0",
                          f"--data_dir={data_dir}", "--tfds_split=test", f"--tokenizer={vocab}", "--seq_len=8",
                          f"--output={tmp_path}/cli", "--no_progress"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    meta = json.load(open(tmp_path / "cli" / "meta.json"))
    assert meta["sources"] == ["tfds:tiny_text:1.0.0/test"]
    np.testing.assert_array_equal(load_rows(str(tmp_path / "cli"), meta), expected_document_rows(
        tok, [tok.encode("the man played. the dog played.")], 8, add_sep=False))


def test_tfds_errors_are_one_line(tmp_path, vocab):
    tf = _needs_tfds()
    data_dir = tmp_path / "tfds"

    def err(name="tiny_text", split="train", key="text"):
        with pytest.raises(UserError) as e:
            prepare_lib.prepare_corpus(None, str(tmp_path / "o"), seq_len=4, tokenizer_path=vocab,
                                       tfds_name=name, tfds_data_dir=str(data_dir), tfds_split=split,
                                       tfds_text_key=key, workers=1, progress=False)
        assert "\n" not in str(e.value)
        assert not os.path.exists(tmp_path / "o")
        return str(e.value)

    assert err() == (f"tfds dataset tiny_text is not prepared in {data_dir}; prepare it with `tfds build "
                     f"tiny_text --data_dir={data_dir} --file_format=array_record` on a machine with internet")
    tf.build_text(data_dir, DOCS)
    assert "has no version 9.9.9 in" in err("tiny_text:9.9.9") and "(there: 1.0.0)" in err("tiny_text:9.9.9")
    assert err(split="validation").endswith("has no split 'validation' (splits: train); pass one of those")
    assert err(key="body") == ("tfds dataset tiny_text has no field 'body' (fields: text, title); "
                               "pass --tfds_text_key=<field>")
    # Prepared as TFRecord (what `tfds build` writes by default): only TensorFlow reads it.
    info_path = data_dir / "tiny_text" / "1.0.0" / "dataset_info.json"
    info = json.load(open(info_path))
    info["fileFormat"] = "tfrecord"
    json.dump(info, open(info_path, "w"))
    msg = err()
    assert "is stored as tfrecord, which only TensorFlow reads" in msg and "--file_format=array_record" in msg
    # A dataset with configs needs one named.
    tf.build_glue(data_dir, "rte", {"train": [("a man", "a dog", 0)]})
    assert err("glue").startswith(f"tfds dataset glue in {data_dir} has configs (rte); name one: --tfds=glue/rte")


def test_glue_from_tfds_gives_the_tsv_rows(tmp_path, glue_dir):
    """All eight tasks, every split: the ArrayRecord dataset and the TSV folder load the same rows."""
    tf = _needs_tfds()
    import glue_fixtures as gf  # noqa: PLC0415

    from sas_jax.glue import data  # noqa: PLC0415
    from sas_jax.glue.tasks import SPECS, TASKS  # noqa: PLC0415

    data_dir = tmp_path / "tfds"
    for task in TASKS:
        tf.build_glue(data_dir, task, gf.task_rows(task))
    for task in TASKS:
        spec = SPECS[task]
        splits = ("train", *spec.dev_splits, *spec.test_splits)
        from_tsv = data.load_task(task, glue_dir=str(glue_dir), splits=splits)
        from_tfds = data.load_task(task, tfds_data_dir=str(data_dir), splits=splits)
        expected = gf.task_rows(task)
        for split in splits:
            a, b = from_tsv[split], from_tfds[split]
            rows = expected[split]
            assert a.text_a == b.text_a == [r[0] for r in rows]
            if spec.tsv_b is None:
                assert a.text_b is None and b.text_b is None
            else:
                assert a.text_b == b.text_b == [r[1] for r in rows]
            np.testing.assert_allclose(b.labels, [r[2] for r in rows], rtol=1e-6)
            np.testing.assert_allclose(b.labels, a.labels, rtol=1e-6)
            assert a.labels.dtype == b.labels.dtype == (np.float32 if task == "stsb" else np.int32)
            assert b.idx.tolist() == list(range(len(rows)))
            assert a.has_labels == b.has_labels == (not split.startswith("test"))
    with pytest.raises(UserError, match=r"^tfds dataset glue/cola is not prepared in .*; prepare it with "
                                        r"`tfds build glue/cola --data_dir=.* --file_format=array_record`"):
        data.load_task("cola", tfds_data_dir=str(tmp_path / "empty"))
    assert "tensorflow" not in sys.modules
