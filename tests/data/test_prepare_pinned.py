"""`prepare_corpus` writes the same bytes as before its split into steps (hashes pinned from
the code of commit 785ec62): meta.json (its temp paths and the tokenizer fingerprint blanked),
rows.bin and unigram_counts.npy, and nothing else is left in the output dir. meta.json's pins
were renewed once on purpose when it gained `rows_sha256` (rows.bin and the counts unchanged)."""
import hashlib
import json
import pathlib

import pytest

from sas_jax.data import prepare as prepare_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
WP_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able",
            "man", ",", ".", "##s", "is", "a", "play", "##ed", "##er", "and", "dog"]
FILE_A = (b"the man played, and the dog played.\n" b"a dog is a dog\n" b"\n" b"the unaffable player\n"
          b"\xff\xfe not utf-8 \xc3\x28\n" b"is a man.\n" b"\n  \n\n" b"dogs, dogs and men\n")
FILE_B = (b"\n" b"un man un dog\n" b"the man the dog the man the dog the man the dog\n" b"\n"
          b"played played played played\n" b"\n")


def digests(out: pathlib.Path, tmp: pathlib.Path) -> dict:
    meta_text = (out / "meta.json").read_text()
    fingerprint = json.loads(meta_text)["tokenizer_fingerprint"]
    # The content hash prepare records while writing is the hash of the file it wrote.
    assert json.loads(meta_text)["rows_sha256"] == hashlib.sha256((out / "rows.bin").read_bytes()).hexdigest()
    meta_text = meta_text.replace(str(tmp), "<tmp>").replace(fingerprint, "<fp>")
    return {"meta.json": hashlib.sha256(meta_text.encode()).hexdigest()[:16],
            **{n: hashlib.sha256((out / n).read_bytes()).hexdigest()[:16] for n in ("rows.bin", "unigram_counts.npy")}}


def test_the_fixture_corpus_recipe_is_unchanged(tmp_path):
    """conftest's `prepared_corpus`: 150 KB of the demo text, a trained 300-piece SentencePiece, L=32."""
    text = (ROOT / "data" / "demo" / "poems.txt").read_bytes()[:150_000].decode("utf-8", "ignore")
    (tmp_path / "text.txt").write_text(text)
    out = tmp_path / "prepared"
    prepare_lib.prepare_corpus([str(tmp_path / "text.txt")], str(out), seq_len=32, train_vocab_size=300,
                               progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "rows.bin", "tokenizer.model",
                                                     "unigram_counts.npy"]
    assert digests(out, tmp_path) == {"meta.json": "b6c3c414647563ba", "rows.bin": "0467ab3df74bbc90",
                                      "unigram_counts.npy": "28a8904d4dc15bcb"}


@pytest.mark.parametrize("kw, pinned", [
    (dict(seq_len=4), ("20d5c77e232d30c4", "f3f23951e584f332", "4b14d31dd5645b4f")),
    (dict(seq_len=6, packing="stream", add_sep=True, max_rows=5),
     ("7bcada46ef30d900", "cc1ed6ed7e04e79a", "dd17687e29bf2cae")),
    (dict(seq_len=5, add_sep=True), ("2db273fab1e93da0", "d9ec8405ad0980ad", "9178a818ec7dca8b")),
])
def test_a_given_tokenizer_corpus_is_unchanged(tmp_path, kw, pinned):
    (tmp_path / "a.txt").write_bytes(FILE_A)
    (tmp_path / "b.txt").write_bytes(FILE_B)
    (tmp_path / "vocab.txt").write_text("\n".join(WP_VOCAB) + "\n")
    out = tmp_path / "out"
    prepare_lib.prepare_corpus([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], str(out),
                               tokenizer_path=str(tmp_path / "vocab.txt"), workers=1, progress=False, **kw)
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "rows.bin", "unigram_counts.npy", "vocab.txt"]
    assert digests(out, tmp_path) == dict(zip(("meta.json", "rows.bin", "unigram_counts.npy"), pinned))
