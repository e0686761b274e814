"""Tokenizers: one small interface over SentencePiece and BERT WordPiece.

Both backends are thin wrappers around well-kept libraries (`sentencepiece`, Hugging
Face `tokenizers`); nothing here tokenizes by hand. Every tokenizer exposes the ids of
its special tokens, a sha256 `fingerprint` of its file (a prepared corpus records it),
and two numpy tables built once:

- `word_start_table[V]`: True where a token starts a word (whole-word masking).
  SentencePiece: the piece starts with '▁' (U+2581). WordPiece: the piece does not
  start with '##'. Special tokens ([PAD], [UNK], [CLS], [SEP], [MASK]) are True.
- `special_table[V]`: True for [PAD], [CLS], [SEP] and [MASK] (never masked, never
  drawn by the unigram cold start). [UNK] is not special: it can be drawn.

`encode` never adds special tokens, and a literal "[MASK]" in the text is text, not
the mask id, in both backends. `load_tokenizer(path)` picks the backend by suffix.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence

import numpy as np

from sas_jax.errors import UserError

SPECIAL_PIECES = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SP_WORD_START = "\u2581"  # '▁', SentencePiece's word-boundary marker.


def file_fingerprint(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Tokenizer:
    """The shared interface. Subclasses set the ids and implement the four methods."""

    kind: str = ""  # "sentencepiece" or "wordpiece"
    path: str
    fingerprint: str
    vocab_size: int
    pad_id: int
    unk_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    word_start_table: np.ndarray  # bool[V]
    special_table: np.ndarray  # bool[V]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens added."""
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; [PAD], [CLS], [SEP] and [MASK] are left out."""
        raise NotImplementedError

    def id_to_piece(self, i: int) -> str:
        raise NotImplementedError

    def starts_word(self, ids: np.ndarray) -> np.ndarray:
        """Vectorised: True where `ids` start a word (same shape as `ids`)."""
        return self.word_start_table[np.asarray(ids)]

    def _plain_ids(self, ids: Iterable[int]) -> list[int]:
        ids = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), np.int64).reshape(-1)
        return ids[~self.special_table[ids]].tolist()

    @property
    def special_ids(self) -> dict[str, int]:
        return {"pad": self.pad_id, "unk": self.unk_id, "cls": self.cls_id,
                "sep": self.sep_id, "mask": self.mask_id}

    def _build_tables(self, pieces: Sequence[str], is_word_start) -> None:
        starts = np.fromiter((is_word_start(p) for p in pieces), dtype=bool, count=len(pieces))
        special = np.zeros(len(pieces), dtype=bool)
        special[[self.pad_id, self.cls_id, self.sep_id, self.mask_id]] = True
        starts[special] = True
        starts[self.unk_id] = True
        self.word_start_table = starts
        self.special_table = special
        self.word_start_table.setflags(write=False)
        self.special_table.setflags(write=False)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(path={self.path!r}, vocab_size={self.vocab_size}, "
                f"fingerprint={self.fingerprint[:12]})")


# ----------------------------------------------------------------------------------
# SentencePiece
# ----------------------------------------------------------------------------------


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece `.model`. Special ids are looked up by piece name, so models
    trained elsewhere work as long as they define [PAD], [CLS], [SEP] and [MASK]."""

    kind = "sentencepiece"

    def __init__(self, path: str | os.PathLike, num_threads: int = -1):
        import sentencepiece as spm

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise UserError(f"tokenizer file {self.path} not found; pass an existing "
                            "SentencePiece .model or train one with --train_vocab=<size>")
        self.fingerprint = file_fingerprint(self.path)
        self.num_threads = num_threads  # for encode_batch; -1 = all cores
        try:
            self._sp = spm.SentencePieceProcessor(model_file=self.path)
        except (RuntimeError, OSError) as e:
            raise UserError(f"tokenizer file {self.path} is not a valid SentencePiece model "
                            f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                            "pass a .model file written by sentencepiece") from None
        self.vocab_size = int(self._sp.vocab_size())
        pieces = [self._sp.id_to_piece(i) for i in range(self.vocab_size)]
        index = {p: i for i, p in enumerate(pieces)}
        missing = [p for p in ("[PAD]", "[CLS]", "[SEP]", "[MASK]") if p not in index]
        if missing:
            raise UserError(f"SentencePiece model {self.path} lacks the pieces {', '.join(missing)}; "
                            "train it with sas_jax.data.tokenizer.train_sentencepiece "
                            "(or --train_vocab) so the special pieces exist")
        self.pad_id = index["[PAD]"]
        self.cls_id = index["[CLS]"]
        self.sep_id = index["[SEP]"]
        self.mask_id = index["[MASK]"]
        self.unk_id = int(self._sp.unk_id())
        self._build_tables(pieces, lambda p: p.startswith(SP_WORD_START))

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._sp.encode(list(texts), num_threads=self.num_threads)

    def decode(self, ids: Iterable[int]) -> str:
        return self._sp.decode(self._plain_ids(ids))

    def id_to_piece(self, i: int) -> str:
        return self._sp.id_to_piece(int(i))


def train_sentencepiece(
    text_files: Sequence[str] | None,
    vocab_size: int,
    model_prefix: str,
    *,
    sentences: Iterable[str] | None = None,
    model_type: str = "unigram",
    input_sentence_size: int = 2_000_000,
    num_threads: int = 2,
) -> str:
    """Trains a SentencePiece model and returns the path of `<model_prefix>.model`.

    Ids are fixed: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4 (no BOS/EOS); the
    three control symbols never come out of `encode` of plain text. The input is
    `text_files` (plain text, read as UTF-8; undecodable and blank lines skipped) or
    an iterable of `sentences`. At most `input_sentence_size` sentences are sampled,
    which bounds time and memory on big corpora.
    """
    import sentencepiece as spm

    if sentences is None:
        if not text_files:
            raise UserError("train_sentencepiece needs text_files or sentences; pass the corpus files")
        for f in text_files:
            if not os.path.isfile(f):
                raise UserError(f"input file {f} not found; pass existing text files to train the vocabulary")
        sentences = iter_text_lines(text_files)
    if vocab_size < len(SPECIAL_PIECES) + 1:
        raise UserError(f"vocabulary size {vocab_size} is too small; pass --train_vocab >= 8 "
                        "(a few thousand is usual)")
    os.makedirs(os.path.dirname(os.path.abspath(model_prefix)), exist_ok=True)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_prefix=model_prefix,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=0, pad_piece="[PAD]",
            unk_id=1, unk_piece="[UNK]",
            bos_id=-1, eos_id=-1,
            control_symbols=["[CLS]", "[SEP]", "[MASK]"],
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            num_threads=num_threads,
            minloglevel=2,
        )
    except RuntimeError as e:
        msg = " ".join(str(e).split())
        raise UserError(f"SentencePiece training failed ({msg}); use a smaller --train_vocab "
                        "or a bigger corpus") from None
    return model_prefix + ".model"


def train_wordpiece(
    sentences: Iterable[str],
    vocab_size: int,
    vocab_path: str,
    *,
    lowercase: bool = True,
    min_frequency: int = 2,
) -> str:
    """Trains a BERT WordPiece vocabulary with Hugging Face `tokenizers` and writes it
    to `vocab_path` (a `vocab.txt`, one piece per line, id = line number); returns it.

    Ids are fixed as for SentencePiece: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.
    The pipeline is `WordPieceTokenizer`'s (BertNormalizer, BertPreTokenizer, `##`
    continuation pieces), so the vocabulary is learnt on exactly the text that it
    will encode: `lowercase` (BERT uncased: lowercase and strip accents) or cased
    (neither). Load it with the same `lowercase` (a prepared corpus records it).
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import normalizers, pre_tokenizers, trainers
    from tokenizers.models import WordPiece

    if vocab_size < len(SPECIAL_PIECES) + 1:
        raise UserError(f"vocabulary size {vocab_size} is too small; pass --train_vocab >= 8 "
                        "(a few thousand is usual)")
    tok = HFTokenizer(WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=bool(lowercase))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_PIECES), show_progress=False,
                                        continuing_subword_prefix="##")
    tok.train_from_iterator(iter(sentences), trainer=trainer)
    vocab = tok.get_vocab(with_added_tokens=True)
    pieces = sorted(vocab, key=vocab.__getitem__)
    if [vocab[p] for p in pieces] != list(range(len(pieces))) or tuple(pieces[:5]) != SPECIAL_PIECES:
        raise RuntimeError(f"WordPiece training gave unexpected ids: {pieces[:8]}")  # a bug, not input
    os.makedirs(os.path.dirname(os.path.abspath(vocab_path)), exist_ok=True)
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("".join(p + "\n" for p in pieces))
    return vocab_path


def decoded_lines(raw_lines: Iterable[bytes]) -> Iterable[str]:
    """Non-blank, strictly UTF-8 decodable lines (undecodable ones are skipped)."""
    for raw in raw_lines:
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            continue
        if line:
            yield line


def iter_text_lines(text_files: Sequence[str]) -> Iterable[str]:
    """Non-blank, strictly UTF-8 decodable lines of the files (others skipped)."""
    for path in text_files:
        with open(path, "rb") as f:
            yield from decoded_lines(f)


# ----------------------------------------------------------------------------------
# WordPiece (BERT vocab.txt)
# ----------------------------------------------------------------------------------


class WordPieceTokenizer(Tokenizer):
    """BERT WordPiece from a `vocab.txt` (one piece per line, id = line number),
    through Hugging Face `tokenizers` (BertNormalizer + BertPreTokenizer + WordPiece,
    as `BertWordPieceTokenizer`)."""

    kind = "wordpiece"

    def __init__(self, path: str | os.PathLike, lowercase: bool = True):
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise UserError(f"tokenizer file {self.path} not found; pass an existing BERT vocab.txt "
                            "or a SentencePiece .model")
        self.fingerprint = file_fingerprint(self.path)
        self.lowercase = bool(lowercase)
        try:
            with open(self.path, encoding="utf-8") as f:
                pieces = [line.rstrip("\r\n") for line in f]
        except UnicodeDecodeError:
            raise UserError(f"vocab file {self.path} is not UTF-8 text; pass a BERT vocab.txt "
                            "(one token per line)") from None
        while pieces and not pieces[-1]:
            pieces.pop()  # a trailing empty line is not a token
        index: dict[str, int] = {}
        for i, p in enumerate(pieces):
            index.setdefault(p, i)
        missing = [p for p in SPECIAL_PIECES if p not in index]
        if missing:
            raise UserError(f"vocab file {self.path} lacks {', '.join(missing)}; "
                            "add those tokens to vocab.txt (BERT vocabularies have them)")
        if len(index) != len(pieces):
            raise UserError(f"vocab file {self.path} has duplicate tokens; "
                            "pass a BERT vocab.txt with one distinct token per line")
        # The pipeline of BertWordPieceTokenizer, except that the special tokens are
        # not registered as added tokens: "[MASK]" in the text is plain text (as with
        # the SentencePiece control symbols), never the mask id.
        tok = HFTokenizer(WordPiece(index, unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=self.lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        self._tok = tok
        # encode_batch_fast (tokenizers >= 0.20) skips the offsets we do not use.
        self._encode_batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
        self.vocab_size = len(pieces)
        self._pieces = pieces
        self.pad_id = index["[PAD]"]
        self.unk_id = index["[UNK]"]
        self.cls_id = index["[CLS]"]
        self.sep_id = index["[SEP]"]
        self.mask_id = index["[MASK]"]
        self._build_tables(pieces, lambda p: not p.startswith("##"))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode(self._plain_ids(ids))

    def id_to_piece(self, i: int) -> str:
        return self._pieces[int(i)]


# ----------------------------------------------------------------------------------


def load_tokenizer(path: str | os.PathLike, *, lowercase: bool = True) -> Tokenizer:
    """`.model` → SentencePiece; `.txt` → BERT WordPiece (`lowercase` applies to it)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"tokenizer file {path} not found; pass an existing SentencePiece .model "
                        "or BERT vocab.txt (or --train_vocab=<size> to train one)")
    if path.endswith(".model"):
        return SentencePieceTokenizer(path)
    if path.endswith(".txt"):
        return WordPieceTokenizer(path, lowercase=lowercase)
    raise UserError(f"tokenizer file {path} has an unknown type; pass a SentencePiece .model "
                    "or a BERT vocab .txt")
