"""Corpus preparation: row layout, counts, add_sep, bad lines, workers, errors, CLI."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sas_jax.data import prepare as prepare_lib
from sas_jax.data import tokenizer as tokenizer_lib
from sas_jax.errors import UserError

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(REPO, "data", "demo", "poems.txt")

WP_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able",
            "man", ",", ".", "##s", "is", "a", "play", "##ed", "##er", "and", "dog"]

# Two files; documents separated by blank lines (also runs of blank lines and
# whitespace-only lines); one line of invalid UTF-8 in the middle of a document.
FILE_A = (b"the man played, and the dog played.\n"
          b"a dog is a dog\n"
          b"\n"
          b"the unaffable player\n"
          b"\xff\xfe not utf-8 \xc3\x28\n"
          b"is a man.\n"
          b"\n  \n\n"
          b"dogs, dogs and men\n")  # last document ends at end of file, no blank line
FILE_B = (b"\n"
          b"un man un dog\n"
          b"the man the dog the man the dog the man the dog\n"
          b"\n"
          b"played played played played\n"
          b"\n")


def expected_docs(tok, raws, add_sep):
    """Reference: decode lines strictly, drop blanks/bad ones; the ids of each document
    ([SEP] after each with add_sep). A file ends a document."""
    docs = []
    for raw in raws:
        doc = []
        for line in raw.split(b"\n"):
            try:
                text = line.decode("utf-8").strip()
            except UnicodeDecodeError:
                continue
            if text:
                doc += tok.encode(text)
            elif doc:
                docs.append(doc + ([tok.sep_id] if add_sep else []))
                doc = []
        if doc:
            docs.append(doc + ([tok.sep_id] if add_sep else []))
    return docs


def expected_stream(tok, raws, add_sep):
    """Reference of stream packing: all documents in one stream."""
    return np.array([t for d in expected_docs(tok, raws, add_sep) for t in d], np.int64)


def expected_document_rows(tok, docs, seq_len, add_sep):
    """Reference of document packing: each document cut into rows of [CLS] + seq_len-1,
    its last row padded with [PAD]; with add_sep a tail of only [SEP] is dropped."""
    body = seq_len - 1
    rows = []
    for doc in docs:
        for i in range(0, len(doc), body):
            part = doc[i:i + body]
            if add_sep and part == [tok.sep_id]:
                continue
            rows.append([tok.cls_id] + part + [tok.pad_id] * (body - len(part)))
    return np.array(rows, np.int64).reshape(-1, seq_len)


@pytest.fixture
def inputs(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(FILE_A)
    b.write_bytes(FILE_B)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(WP_VOCAB) + "\n")
    return [str(a), str(b)], str(vocab)


def run(files, out, **kw):
    kw.setdefault("seq_len", 4)
    kw.setdefault("workers", 1)
    return prepare_lib.prepare_corpus(files, str(out), progress=False, **kw)


def load_rows(out, meta):
    rows = np.fromfile(os.path.join(out, "rows.bin"), dtype=meta["dtype"])
    return rows.reshape(meta["num_rows"], meta["seq_len"])


@pytest.mark.parametrize("add_sep", [False, True])
@pytest.mark.parametrize("chunk_bytes", [1 << 20, 16])  # 16: many chunks, documents straddle them
def test_stream_rows_counts_and_meta(tmp_path, inputs, monkeypatch, add_sep, chunk_bytes):
    """packing=stream: exactly the format before document packing existed."""
    files, vocab = inputs
    monkeypatch.setattr(prepare_lib, "_CHUNK_BYTES", chunk_bytes)
    out = str(tmp_path / "out")
    seq_len = 6
    meta = prepare_lib.prepare_corpus(files, out, seq_len=seq_len, tokenizer_path=vocab,
                                      add_sep=add_sep, packing="stream", workers=1, progress=False)
    tok = tokenizer_lib.load_tokenizer(vocab)
    stream = expected_stream(tok, [FILE_A, FILE_B], add_sep)
    n = len(stream) // (seq_len - 1)
    rows = load_rows(out, meta)

    assert rows.shape == (n, seq_len) and rows.dtype == np.uint16
    assert (rows[:, 0] == tok.cls_id).all()
    np.testing.assert_array_equal(rows[:, 1:].ravel(), stream[: n * (seq_len - 1)])
    counts = np.load(os.path.join(out, "unigram_counts.npy"))
    assert counts.dtype == np.int64 and counts.shape == (len(WP_VOCAB),)
    np.testing.assert_array_equal(counts, np.bincount(stream[: n * (seq_len - 1)], minlength=len(WP_VOCAB)))
    assert counts[[tok.cls_id, tok.pad_id, tok.mask_id]].tolist() == [0, 0, 0]
    assert (counts[tok.sep_id] > 0) == add_sep
    if add_sep:  # 5 documents → 5 [SEP]s in the stream
        assert (stream == tok.sep_id).sum() == 5

    on_disk = json.load(open(os.path.join(out, "meta.json")))
    assert on_disk == meta
    assert meta == {
        "format_version": 1, "seq_len": seq_len, "num_rows": n,
        "num_tokens": n * (seq_len - 1), "dropped_tokens": len(stream) - n * (seq_len - 1),
        "pad_tokens": 0, "packing": "stream",
        "dtype": "uint16", "rows_sha256": hashlib.sha256(rows.tobytes()).hexdigest(),
        "vocab_size": len(WP_VOCAB), "tokenizer_file": "vocab.txt",
        "tokenizer_fingerprint": tok.fingerprint, "tokenizer_kind": "wordpiece",
        "tokenizer_lowercase": True, "special_ids": tok.special_ids, "add_sep": add_sep,
        "skipped_lines": 1, "max_rows": None, "sources": [os.path.abspath(f) for f in files],
    }
    # The tokenizer is copied next to the rows; only the corpus files are left.
    assert open(os.path.join(out, "vocab.txt")).read() == open(vocab).read()
    assert sorted(os.listdir(out)) == ["meta.json", "rows.bin", "unigram_counts.npy", "vocab.txt"]


@pytest.mark.parametrize("add_sep", [False, True])
@pytest.mark.parametrize("chunk_bytes", [1 << 20, 16])
@pytest.mark.parametrize("seq_len", [3, 6])
def test_document_rows_counts_and_meta(tmp_path, inputs, monkeypatch, add_sep, chunk_bytes, seq_len):
    """packing=document (the default): rows inside documents, tails padded."""
    files, vocab = inputs
    monkeypatch.setattr(prepare_lib, "_CHUNK_BYTES", chunk_bytes)
    out = str(tmp_path / "out")
    meta = prepare_lib.prepare_corpus(files, out, seq_len=seq_len, tokenizer_path=vocab,
                                      add_sep=add_sep, workers=1, progress=False)
    tok = tokenizer_lib.load_tokenizer(vocab)
    docs = expected_docs(tok, [FILE_A, FILE_B], add_sep)
    assert len(docs) == 5
    want = expected_document_rows(tok, docs, seq_len, add_sep)
    rows = load_rows(out, meta)
    np.testing.assert_array_equal(rows, want)
    body = rows[:, 1:]
    counts = np.load(os.path.join(out, "unigram_counts.npy"))
    np.testing.assert_array_equal(counts, np.bincount(body[body != tok.pad_id], minlength=len(WP_VOCAB)))
    assert counts[[tok.cls_id, tok.pad_id, tok.mask_id]].tolist() == [0, 0, 0]
    total = sum(len(d) for d in docs)
    assert meta["packing"] == "document"
    assert meta["num_tokens"] == counts.sum() == total - meta["dropped_tokens"]
    assert meta["pad_tokens"] == (body == tok.pad_id).sum()
    assert (meta["pad_tokens"] > 0) == (seq_len == 6 or not add_sep)
    assert meta["num_rows"] == len(want)
    # A tail of only the final [SEP] is dropped.
    lone = sum(len(d) % (seq_len - 1) == 1 for d in docs) if add_sep else 0
    assert meta["dropped_tokens"] == lone
    if add_sep and seq_len == 3:
        assert lone > 0
    assert json.load(open(os.path.join(out, "meta.json"))) == meta


THREE_DOCS = ("the man the man played\nthe man the\n\n"  # document 0: the, man, play(ed)
              "\n  \na dog is a dog, a dog\n\n\n"  # document 1: a, dog, is, ","
              "unaffable un un unaffable. un\nun un un.\n")  # document 2: un, ##aff, ##able, "."


@pytest.mark.parametrize("chunk_bytes,workers", [(1 << 20, 1), (8, 1), (8, 2)])
def test_no_row_crosses_a_document(tmp_path, inputs, monkeypatch, chunk_bytes, workers):
    """Three documents with disjoint vocabularies: every row's tokens come from one."""
    _, vocab = inputs
    monkeypatch.setattr(prepare_lib, "_CHUNK_BYTES", chunk_bytes)
    src = tmp_path / "three.txt"
    src.write_text(THREE_DOCS)
    tok = tokenizer_lib.load_tokenizer(vocab)
    docs = expected_docs(tok, [src.read_bytes()], add_sep=False)
    assert len(docs) == 3 and all(len(d) > 6 for d in docs)
    owner = {t: i for i, d in enumerate(docs) for t in d}
    assert len(owner) == sum(len(set(d)) for d in docs)  # disjoint vocabularies
    meta = prepare_lib.prepare_corpus([str(src)], str(tmp_path / "o"), seq_len=5, tokenizer_path=vocab,
                                      workers=workers, progress=False)
    rows = load_rows(str(tmp_path / "o"), meta)
    for row in rows:
        text = [t for t in row[1:] if t != tok.pad_id]
        assert text and len({owner[t] for t in text}) == 1, row
        # Padding only at the end of a row.
        assert (row[1 + len(text):] == tok.pad_id).all()
    np.testing.assert_array_equal(rows, expected_document_rows(tok, docs, 5, False))
    # The same text as one stream does cross documents.
    meta = prepare_lib.prepare_corpus([str(src)], str(tmp_path / "s"), seq_len=5, tokenizer_path=vocab,
                                      packing="stream", workers=workers, progress=False)
    rows = load_rows(str(tmp_path / "s"), meta)
    assert any(len({owner[t] for t in row[1:]}) > 1 for row in rows)


def test_padded_rows_read_back(tmp_path, inputs):
    """The corpus reader takes padded rows; [PAD] is never in the unigram counts."""
    from sas_jax.data.corpus import Corpus

    files, vocab = inputs
    run(files, tmp_path / "o", tokenizer_path=vocab, seq_len=6)
    corpus = Corpus.open(str(tmp_path / "o"))
    rows = corpus.read(np.arange(corpus.num_rows))
    assert (rows == corpus.tokenizer.pad_id).any()
    assert corpus.unigram_counts[corpus.tokenizer.pad_id] == 0
    body = rows[:, 1:]
    np.testing.assert_array_equal(corpus.unigram_counts,
                                  np.bincount(body[body != corpus.tokenizer.pad_id], minlength=len(WP_VOCAB)))


def test_unknown_packing(tmp_path, inputs):
    files, vocab = inputs
    with pytest.raises(UserError, match=r"^packing='rows' is unknown; pass --packing=document"):
        run(files, tmp_path / "o", tokenizer_path=vocab, packing="rows")


def test_two_workers_match_one(tmp_path, monkeypatch):
    # A bigger input split into many chunks, with bad lines and documents everywhere.
    text = open(DEMO, "rb").read()[:120_000]
    lines = text.split(b"\n")
    lines[10::97] = [b"\xff bad \xfe"] * len(lines[10::97])
    src = tmp_path / "in.txt"
    src.write_bytes(b"\n".join(lines))
    model = tokenizer_lib.train_sentencepiece([str(src)], 300, str(tmp_path / "sp"))
    monkeypatch.setattr(prepare_lib, "_CHUNK_BYTES", 4096)
    metas, blobs = [], []
    for workers in (1, 2):
        out = str(tmp_path / f"w{workers}")
        metas.append(prepare_lib.prepare_corpus([str(src)], out, seq_len=32, tokenizer_path=model,
                                                add_sep=True, workers=workers, progress=False))
        blobs.append([open(os.path.join(out, f), "rb").read() for f in ("rows.bin", "unigram_counts.npy")])
    assert metas[0] == metas[1]
    assert blobs[0] == blobs[1]
    assert metas[0]["skipped_lines"] == len(lines[10::97]) > 10
    assert metas[0]["num_rows"] > 100
    # And both equal the reference document rows.
    tok = tokenizer_lib.load_tokenizer(model)
    docs = expected_docs(tok, [src.read_bytes()], add_sep=True)
    rows = load_rows(str(tmp_path / "w2"), metas[1])
    np.testing.assert_array_equal(rows, expected_document_rows(tok, docs, 32, add_sep=True))


def test_train_vocab_and_max_rows(tmp_path):
    out = str(tmp_path / "out")
    meta = prepare_lib.prepare_corpus(DEMO, out, seq_len=16, train_vocab_size=300, packing="stream",
                                      max_rows=50, workers=1, progress=False)
    assert meta["num_rows"] == 50 and meta["max_rows"] == 50
    assert meta["tokenizer_file"] == "tokenizer.model" and meta["vocab_size"] == 300
    tok = tokenizer_lib.load_tokenizer(os.path.join(out, "tokenizer.model"))
    assert tok.fingerprint == meta["tokenizer_fingerprint"]
    assert (tok.cls_id, tok.sep_id, tok.mask_id) == (2, 3, 4)
    rows = load_rows(out, meta)
    assert (rows[:, 0] == 2).all()
    lines = [l.strip() for l in open(DEMO, encoding="utf-8") if l.strip()]
    stream = np.concatenate([tok.encode(l) for l in lines[:200]])
    np.testing.assert_array_equal(rows[:, 1:].ravel(), stream[: 50 * 15])
    # Document packing stops at max_rows too.
    meta = prepare_lib.prepare_corpus(DEMO, str(tmp_path / "doc"), seq_len=16, tokenizer_path=str(
        os.path.join(out, "tokenizer.model")), max_rows=50, workers=1, progress=False)
    docs = expected_docs(tok, [open(DEMO, "rb").read()[:20_000]], add_sep=False)
    np.testing.assert_array_equal(load_rows(str(tmp_path / "doc"), meta),
                                  expected_document_rows(tok, docs, 16, False)[:50])
    assert sorted(os.listdir(out)) == ["meta.json", "rows.bin", "tokenizer.model", "unigram_counts.npy"]


def test_big_vocab_uses_int32(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(WP_VOCAB + [f"w{i}" for i in range(70_000)]) + "\n")
    src = tmp_path / "in.txt"
    src.write_text("w69999 the w7 man w65535 " * 4 + "\n")
    meta = prepare_lib.prepare_corpus([str(src)], str(tmp_path / "out"), seq_len=5,
                                      tokenizer_path=str(vocab), workers=1, progress=False)
    assert meta["dtype"] == "int32"
    rows = load_rows(str(tmp_path / "out"), meta)
    off = len(WP_VOCAB)
    np.testing.assert_array_equal(rows[0], [2, off + 69999, 5, off + 7, 9])


def test_globs_and_comma_lists(tmp_path, inputs):
    files, vocab = inputs
    specs = [[str(tmp_path / "[ab].txt")], ",".join(files), f"{files[0]}, {tmp_path}/b*"]
    for i, spec in enumerate(specs):
        meta = run(spec, tmp_path / f"o{i}", tokenizer_path=vocab)
        assert meta["sources"] == [os.path.abspath(f) for f in files]


def test_interrupted_run_leaves_no_corpus(tmp_path, inputs, monkeypatch):
    files, vocab = inputs

    def boom(self, ids, doc_ends=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_lib._RowWriter, "add", boom)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        prepare_lib.prepare_corpus(files, str(out), seq_len=4, tokenizer_path=vocab, workers=1,
                                   progress=False)
    assert os.listdir(out) == []
    # ...so the same output dir can be used again.
    monkeypatch.undo()
    prepare_lib.prepare_corpus(files, str(out), seq_len=4, tokenizer_path=vocab, workers=1,
                               progress=False)
    assert "meta.json" in os.listdir(out)


# ---------------------------------------------------------------- bad input


def test_missing_input_file(tmp_path, inputs):
    _, vocab = inputs
    with pytest.raises(UserError, match=r"^input file .*missing\.txt not found; fix the path in --input$"):
        run([str(tmp_path / "missing.txt")], tmp_path / "o", tokenizer_path=vocab)


def test_glob_matching_nothing(tmp_path, inputs):
    _, vocab = inputs
    with pytest.raises(UserError, match=r"^input glob .*\*\.md matches no file"):
        run(str(tmp_path / "*.md"), tmp_path / "o", tokenizer_path=vocab)


def test_input_directory(tmp_path, inputs):
    _, vocab = inputs
    with pytest.raises(UserError, match=r"is a directory; pass files or a glob like .*/\*\.txt"):
        run([str(tmp_path)], tmp_path / "o", tokenizer_path=vocab)


def test_empty_corpus(tmp_path, inputs):
    _, vocab = inputs
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"\n  \n\xff\xfe\n\n")
    out = tmp_path / "o"
    with pytest.raises(UserError, match=r"^the corpus is empty: no tokens in .*empty\.txt "
                                        r"\(1 undecodable lines skipped\); pass text files"):
        run([str(empty)], out, tokenizer_path=vocab)
    assert os.listdir(out) == []


def test_empty_corpus_with_train_vocab(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"\n\n")
    with pytest.raises(UserError, match=r"^the corpus is empty: no text lines in .*empty\.txt; pass text"):
        run([str(empty)], tmp_path / "o", train_vocab_size=100)
    assert os.listdir(tmp_path / "o") == []


def test_corpus_shorter_than_a_row(tmp_path, inputs):
    _, vocab = inputs
    short = tmp_path / "short.txt"
    short.write_text("the man\n")
    with pytest.raises(UserError, match=r"only 2 tokens, less than one row of seq_len-1=3"):
        run([str(short)], tmp_path / "o", tokenizer_path=vocab, packing="stream")
    # Document packing pads it into one row.
    meta = run([str(short)], tmp_path / "d", tokenizer_path=vocab)
    np.testing.assert_array_equal(load_rows(str(tmp_path / "d"), meta), [[2, 5, 9, 0]])


def test_missing_tokenizer(tmp_path, inputs):
    files, _ = inputs
    with pytest.raises(UserError, match=r"^tokenizer file .*nope\.model not found; pass an existing"):
        run(files, tmp_path / "o", tokenizer_path=str(tmp_path / "nope.model"))


def test_tokenizer_and_train_vocab_exclusive(tmp_path, inputs):
    files, vocab = inputs
    for kw in ({}, {"tokenizer_path": vocab, "train_vocab_size": 100}):
        with pytest.raises(UserError, match=r"pass exactly one of --tokenizer=.* and --train_vocab"):
            run(files, tmp_path / "o", **kw)


def test_output_dir_holding_a_corpus(tmp_path, inputs):
    files, vocab = inputs
    run(files, tmp_path / "o", tokenizer_path=vocab)
    before = open(tmp_path / "o" / "rows.bin", "rb").read()
    with pytest.raises(UserError, match=r"^output dir .*o already holds a corpus; pick another "
                                        r"--output or delete that directory$"):
        run(files, tmp_path / "o", tokenizer_path=vocab, seq_len=5)
    assert open(tmp_path / "o" / "rows.bin", "rb").read() == before


# ---------------------------------------------------------------- CLI


def cli(*args):
    return subprocess.run([sys.executable, "-m", "sas_jax.prepare", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_error_exits_2_with_one_line(tmp_path, inputs):
    _, vocab = inputs
    res = cli(f"--input={tmp_path}/missing.txt", f"--tokenizer={vocab}", f"--output={tmp_path}/o")
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: input file {tmp_path}/missing.txt not found; fix the path")


def test_main_without_input(capsys, tmp_path):
    from sas_jax import prepare as prepare_cli

    assert prepare_cli.main([f"--output={tmp_path}/o", "--train_vocab=100"]) == 2
    assert capsys.readouterr().err == ("error: no input given; pass --input=<file or glob>[,...] "
                                       "or --tfds=<name>\n")


def test_cli_success(tmp_path, inputs):
    files, vocab = inputs
    out = tmp_path / "o"
    res = cli(f"--input={','.join(files)}", f"--tokenizer={vocab}", "--seq_len=5", "--add_sep",
              "--workers=2", f"--output={out}")
    assert res.returncode == 0, res.stderr
    summary = res.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"prepared {out}: ") and "tokens/s" in summary
    meta = json.load(open(out / "meta.json"))
    assert meta["seq_len"] == 5 and meta["add_sep"] is True and meta["skipped_lines"] == 1
    assert meta["packing"] == "document"
    tok = tokenizer_lib.load_tokenizer(vocab)
    docs = expected_docs(tok, [FILE_A, FILE_B], add_sep=True)
    np.testing.assert_array_equal(load_rows(str(out), meta), expected_document_rows(tok, docs, 5, True))
    res = cli(f"--input={','.join(files)}", f"--tokenizer={vocab}", "--seq_len=5", "--packing=stream",
              f"--output={tmp_path}/s", "--no_progress")
    assert res.returncode == 0, res.stderr
    meta = json.load(open(tmp_path / "s" / "meta.json"))
    stream = expected_stream(tok, [FILE_A, FILE_B], add_sep=False)
    assert meta["packing"] == "stream" and meta["pad_tokens"] == 0
    np.testing.assert_array_equal(load_rows(str(tmp_path / "s"), meta)[:, 1:].ravel(),
                                  stream[: meta["num_rows"] * 4])


@pytest.mark.parametrize("lowercase", [True, False], ids=["uncased", "cased"])
def test_cli_trains_a_wordpiece_vocab(tmp_path, lowercase):
    """--train_vocab --vocab_type=wordpiece: a BERT vocab.txt in the corpus, the rows its ids."""
    src = tmp_path / "in.txt"
    src.write_bytes(open(DEMO, "rb").read()[:60_000])
    out = tmp_path / "o"
    res = cli(f"--input={src}", "--train_vocab=400", "--vocab_type=wordpiece",
              "--lowercase" if lowercase else "--no_lowercase", "--seq_len=16", f"--output={out}", "--no_progress")
    assert res.returncode == 0, res.stderr
    meta = json.load(open(out / "meta.json"))
    assert meta["tokenizer_file"] == "vocab.txt" and meta["tokenizer_kind"] == "wordpiece"
    assert meta["tokenizer_lowercase"] is lowercase and meta["vocab_size"] == 400
    assert meta["special_ids"] == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert sorted(os.listdir(out)) == ["meta.json", "rows.bin", "unigram_counts.npy", "vocab.txt"]
    tok = tokenizer_lib.load_tokenizer(str(out / "vocab.txt"), lowercase=lowercase)
    assert tok.fingerprint == meta["tokenizer_fingerprint"]
    docs = expected_docs(tok, [src.read_bytes()], add_sep=False)
    np.testing.assert_array_equal(load_rows(str(out), meta), expected_document_rows(tok, docs, 16, False))


def test_vocab_type_errors(tmp_path, inputs, capsys):
    from sas_jax import prepare as prepare_cli

    files, vocab = inputs
    assert prepare_cli.main([f"--input={files[0]}", f"--tokenizer={vocab}", "--vocab_type=wordpiece",
                             f"--output={tmp_path}/o"]) == 2
    assert capsys.readouterr().err.startswith("error: --vocab_type says what --train_vocab trains; pass")
    with pytest.raises(UserError, match=r"vocab_type='bpe' is unknown; pass --vocab_type=sentencepiece or"):
        run(files, tmp_path / "o", train_vocab_size=100, vocab_type="bpe")
    assert not os.path.exists(tmp_path / "o")
