"""Corpus reader: memmapped rows, ordered reads, tokenizer fingerprint check, errors."""
import json
import os

import numpy as np
import pytest

from sas_jax.data import prepare as prepare_lib
from sas_jax.data import tokenizer as tokenizer_lib
from sas_jax.data.corpus import Corpus
from sas_jax.errors import UserError

WP_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able",
            "man", ",", ".", "##s", "is", "a", "play", "##ed", "dog"]
TEXT = ("the man played , the dog is a dog .\n\nthe unaffable man is a player\n"
        "a dog , a man , the dogs played .\n") * 5


@pytest.fixture
def prepared(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(WP_VOCAB) + "\n")
    src = tmp_path / "in.txt"
    src.write_text(TEXT)
    out = tmp_path / "corpus"
    meta = prepare_lib.prepare_corpus([str(src)], str(out), seq_len=8, tokenizer_path=str(vocab),
                                      workers=1, progress=False)
    return str(out), str(vocab), meta


def test_open_and_properties(prepared):
    out, vocab, meta = prepared
    corpus = Corpus.open(out)
    assert corpus.meta == meta
    assert (corpus.seq_len, corpus.num_rows, corpus.vocab_size) == (8, meta["num_rows"], len(WP_VOCAB))
    assert len(corpus) == meta["num_rows"] > 5
    assert isinstance(corpus.rows, np.memmap) and not corpus.rows.flags.writeable
    assert corpus.rows.shape == (meta["num_rows"], 8) and corpus.rows.dtype == np.uint16
    body = np.asarray(corpus.rows[:, 1:]).ravel()
    assert meta["packing"] == "document" and (body == 0).sum() == meta["pad_tokens"] > 0  # padded doc tails
    np.testing.assert_array_equal(corpus.unigram_counts,  # [PAD] is never counted
                                  np.bincount(body[body != 0], minlength=len(WP_VOCAB)))
    assert corpus.tokenizer.fingerprint == tokenizer_lib.load_tokenizer(vocab).fingerprint
    assert corpus.tokenizer.path == os.path.join(out, "vocab.txt")
    # The first row is [CLS] + the first 7 stream tokens.
    first = corpus.tokenizer.encode("the man played , the dog is a dog .")[:7]
    np.testing.assert_array_equal(corpus.rows[0], [2] + first)


def test_read_returns_requested_order(prepared):
    out, _, _ = prepared
    corpus = Corpus.open(out)
    ids = np.array([5, 0, 3, 5, corpus.num_rows - 1])
    batch = corpus.read(ids)
    assert batch.dtype == np.int32 and batch.shape == (5, 8)
    for i, r in enumerate(ids):
        np.testing.assert_array_equal(batch[i], corpus.rows[r])
    assert corpus.read(np.array([], np.int64)).shape == (0, 8)
    with pytest.raises(IndexError):
        corpus.read(np.array([corpus.num_rows]))


def test_tokenizer_argument_checked(prepared, tmp_path):
    out, vocab, _ = prepared
    assert Corpus.open(out, tokenizer=vocab).tokenizer.path == vocab  # same bytes: accepted
    assert Corpus.open(out, tokenizer=tokenizer_lib.load_tokenizer(vocab)).num_rows > 0
    other = tmp_path / "other_vocab.txt"
    other.write_text("\n".join(WP_VOCAB + ["extra"]) + "\n")
    with pytest.raises(UserError, match=r"^tokenizer .*other_vocab\.txt \(sha256 \w+\) does not match the "
                                        r"corpus prepared with vocab\.txt .*; re-run prepare or pass the "
                                        r"tokenizer it was built with$"):
        Corpus.open(out, tokenizer=str(other))
    with pytest.raises(UserError, match=r"lowercase=False but the corpus .* lowercase=True"):
        Corpus.open(out, tokenizer=tokenizer_lib.load_tokenizer(vocab, lowercase=False))


def test_missing_dir(tmp_path):
    with pytest.raises(UserError, match=r"^corpus dir .*nowhere not found; prepare one with "
                                        r"`python -m sas_jax\.prepare"):
        Corpus.open(str(tmp_path / "nowhere"))


def test_missing_meta(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "rows.partial.bin").write_bytes(b"\0" * 16)
    with pytest.raises(UserError, match=r"^corpus dir .*half has no meta\.json .*run `python -m "
                                        r"sas_jax\.prepare --output=.*half` first$"):
        Corpus.open(str(tmp_path / "half"))


def test_truncated_rows(prepared):
    out, _, meta = prepared
    path = os.path.join(out, "rows.bin")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 2)
    with pytest.raises(UserError, match=r"rows\.bin has \d+ bytes, expected \d+; the corpus is damaged"):
        Corpus.open(out)


def test_wrong_format_version(prepared):
    out, _, meta = prepared
    meta = dict(meta, format_version=99)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)
    with pytest.raises(UserError, match=r"format_version 99, this code reads 1"):
        Corpus.open(out)


def test_open_corpus_prepares_the_demo_only_at_its_default_place(tmp_path, config_factory, prepared):
    """`open_corpus` (data.corpus, no trainer needed): a mistyped corpus dir of the demo is refused
    and not created; a prepared one is opened, a relative one under the workdir."""
    from sas_jax.data.corpus import open_corpus  # noqa: PLC0415

    cfg = config_factory("sas_demo", "smoke", **{"data.corpus_dir": str(tmp_path / "demo_corpsu")})
    with pytest.raises(UserError, match=r"holds no prepared corpus; this config prepares its corpus only at "
                                        r"its default data.corpus_dir=demo_corpus"):
        open_corpus(cfg, str(tmp_path / "w"))
    assert not (tmp_path / "demo_corpsu").exists()
    out = prepared[0]
    cfg = config_factory("sas_small", "tiny", **{"data.corpus_dir": os.path.relpath(out, tmp_path)})
    assert open_corpus(cfg, str(tmp_path)).num_rows == Corpus.open(out).num_rows
