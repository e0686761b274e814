"""Tokenizer tests: fixed special ids, word-start tables, WordPiece continuation pieces."""
import hashlib
import os

import numpy as np
import pytest

from sas_jax.data import tokenizer as tokenizer_lib
from sas_jax.errors import UserError

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "data", "demo", "poems.txt")

# A hand-written BERT-style vocab: ids are line numbers.
WP_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able",
            "man", ",", ".", "##s", "is", "a", "play", "##ed", "##er"]


def write_vocab(tmp_path, pieces=WP_VOCAB, name="vocab.txt"):
    path = tmp_path / name
    path.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("sp") / "m")
    return tokenizer_lib.train_sentencepiece([DEMO], 400, prefix)


# ---------------------------------------------------------------- SentencePiece


def test_sentencepiece_training_fixes_special_ids(sp_model):
    tok = tokenizer_lib.load_tokenizer(sp_model)
    assert isinstance(tok, tokenizer_lib.SentencePieceTokenizer)
    assert tok.vocab_size == 400
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert [tok.id_to_piece(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tok.fingerprint == hashlib.sha256(open(sp_model, "rb").read()).hexdigest()
    assert tok.path == sp_model


def test_sentencepiece_specials_never_come_from_text(sp_model):
    tok = tokenizer_lib.load_tokenizer(sp_model)
    ids = tok.encode("[CLS] thou art [MASK] more lovely [SEP] [PAD]")
    assert not set(ids) & {0, 2, 3, 4}
    assert tok.decode(tok.encode("thou art more lovely")) == "thou art more lovely"
    assert tok.decode([2] + tok.encode("thou art") + [4, 3, 0]) == "thou art"


def test_sentencepiece_tables(sp_model):
    tok = tokenizer_lib.load_tokenizer(sp_model)
    pieces = [tok.id_to_piece(i) for i in range(tok.vocab_size)]
    expected = np.array([p.startswith("\u2581") for p in pieces])
    expected[:5] = True  # specials count as word starts
    np.testing.assert_array_equal(tok.word_start_table, expected)
    assert tok.word_start_table.dtype == bool and tok.word_start_table.shape == (400,)
    # There are both kinds of pieces in a 400-piece model.
    assert 0 < expected[5:].sum() < 395
    np.testing.assert_array_equal(np.flatnonzero(tok.special_table), [0, 2, 3, 4])

    ids = np.array(tok.encode("From fairest creatures we desire increase"))
    starts = tok.starts_word(ids)
    assert starts.sum() == 6  # one word start per word
    assert starts[0]
    # Vectorised over any shape.
    grid = np.stack([ids, ids[::-1]])
    np.testing.assert_array_equal(tok.starts_word(grid), tok.word_start_table[grid])


def test_encode_batch_matches_encode(sp_model):
    tok = tokenizer_lib.load_tokenizer(sp_model)
    texts = ["shall I compare thee", "", "to a summer's day?"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.encode("") == []


def test_sentencepiece_vocab_too_big_is_user_error(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("a b c\n")
    with pytest.raises(UserError, match=r"SentencePiece training failed .*smaller --train_vocab"):
        tokenizer_lib.train_sentencepiece([str(text)], 5000, str(tmp_path / "m"))


def test_sentencepiece_model_without_specials_is_user_error(tmp_path):
    import sentencepiece as spm

    text = tmp_path / "t.txt"
    text.write_text(open(DEMO).read()[:50000])
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / "plain"),
                                   vocab_size=100, minloglevel=2)
    with pytest.raises(UserError, match=r"lacks the pieces \[PAD\], \[CLS\], \[SEP\], \[MASK\]"):
        tokenizer_lib.load_tokenizer(str(tmp_path / "plain.model"))


# ---------------------------------------------------------------- WordPiece


def test_wordpiece_continuations_and_word_starts(tmp_path):
    tok = tokenizer_lib.load_tokenizer(write_vocab(tmp_path))
    assert isinstance(tok, tokenizer_lib.WordPieceTokenizer)
    assert tok.vocab_size == len(WP_VOCAB)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)

    ids = tok.encode("The unaffable man played, mans xyz.")
    assert [tok.id_to_piece(i) for i in ids] == [
        "the", "un", "##aff", "##able", "man", "play", "##ed", ",", "man", "##s", "[UNK]", "."]
    np.testing.assert_array_equal(
        tok.starts_word(np.array(ids)),
        [True, True, False, False, True, True, False, True, True, False, True, True])
    expected = np.array([not p.startswith("##") for p in WP_VOCAB])
    np.testing.assert_array_equal(tok.word_start_table, expected)
    np.testing.assert_array_equal(np.flatnonzero(tok.special_table), [0, 2, 3, 4])
    assert tok.decode(tok.encode("the unaffable man")) == "the unaffable man"
    assert tok.decode(np.array([2, 5, 4, 9, 3, 0])) == "the man"  # specials left out
    assert tok.encode_batch(["the man", "unaffable"]) == [[5, 9], [6, 7, 8]]
    # Special tokens in the text are plain text, as with SentencePiece.
    assert not set(tok.encode("[CLS] the [MASK] man [SEP] [PAD]")) & {0, 2, 3, 4}


def test_wordpiece_lowercase_option(tmp_path):
    path = write_vocab(tmp_path)
    assert tokenizer_lib.load_tokenizer(path).encode("The MAN") == [5, 9]
    cased = tokenizer_lib.load_tokenizer(path, lowercase=False)
    assert cased.lowercase is False
    assert cased.encode("The MAN") == [1, 1]  # not in this lowercase vocab


def test_wordpiece_specials_from_any_position(tmp_path):
    pieces = ["the", "[UNK]", "[MASK]", "man", "[SEP]", "[CLS]", "[PAD]", "##s"]
    tok = tokenizer_lib.load_tokenizer(write_vocab(tmp_path, pieces))
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (6, 1, 5, 4, 2)
    np.testing.assert_array_equal(np.flatnonzero(tok.special_table), [2, 4, 5, 6])
    np.testing.assert_array_equal(tok.word_start_table, [1, 1, 1, 1, 1, 1, 1, 0])


def test_wordpiece_missing_special_is_user_error(tmp_path):
    path = write_vocab(tmp_path, [p for p in WP_VOCAB if p != "[MASK]"])
    with pytest.raises(UserError, match=r"vocab file .*vocab\.txt lacks \[MASK\]; add those tokens"):
        tokenizer_lib.load_tokenizer(path)


# ---------------------------------------------------------------- loading


def test_load_tokenizer_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"tokenizer file .*nope\.model not found; pass an existing"):
        tokenizer_lib.load_tokenizer(str(tmp_path / "nope.model"))


def test_load_tokenizer_unknown_type(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text("{}")
    with pytest.raises(UserError, match=r"unknown type; pass a SentencePiece \.model"):
        tokenizer_lib.load_tokenizer(str(path))


def test_message_is_one_line(tmp_path):
    with pytest.raises(UserError) as info:
        tokenizer_lib.load_tokenizer(str(tmp_path / "nope.txt"))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- WordPiece training


@pytest.mark.parametrize("lowercase", [True, False], ids=["uncased", "cased"])
def test_wordpiece_training(tmp_path, lowercase):
    """Fixed special ids, `##` continuations, BERT uncased/cased normalisation, and the
    loader reads the vocab.txt back with the ids the trainer gave."""
    from tokenizers import BertWordPieceTokenizer  # noqa: PLC0415

    lines = list(tokenizer_lib.iter_text_lines([DEMO]))[:4000]
    path = tokenizer_lib.train_wordpiece(lines + ["Café CAFÉ café"] * 3, 600, str(tmp_path / "v" / "vocab.txt"),
                                         lowercase=lowercase)
    pieces = open(path, encoding="utf-8").read().split("\n")[:-1]
    assert tuple(pieces[:5]) == tokenizer_lib.SPECIAL_PIECES and len(pieces) == len(set(pieces)) == 600
    assert any(p.startswith("##") for p in pieces)
    tok = tokenizer_lib.load_tokenizer(path, lowercase=lowercase)
    assert tok.kind == "wordpiece" and tok.vocab_size == 600
    assert tok.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    text = "".join(pieces[5:])
    if lowercase:  # learnt on lowercased text without accents, as BERT uncased
        assert text == text.lower() and "é" not in text and "É" not in text
        assert tok.encode("CAFÉ") == tok.encode("cafe") and tok.unk_id not in tok.encode("CAFÉ")
    else:
        assert text != text.lower() and "é" in text and "É" in text
        assert tok.encode("CAFÉ") != tok.encode("café") and tok.unk_id not in tok.encode("CAFÉ")
    # The vocab.txt is a BERT vocabulary: stock BertWordPieceTokenizer encodes as the loader does.
    bert = BertWordPieceTokenizer(path, lowercase=lowercase)
    for line in lines[:300]:
        assert tok.encode(line) == bert.encode(line, add_special_tokens=False).ids, line
    with pytest.raises(UserError, match=r"vocabulary size 5 is too small"):
        tokenizer_lib.train_wordpiece(lines, 5, str(tmp_path / "x.txt"))

