"""The project's tokenizer → a Hugging Face fast tokenizer (`tokenizer.json` and its
configs) that stock `AutoTokenizer.from_pretrained` loads and that gives exactly the
ids of `sas_jax.data.tokenizer` on text.

- SentencePiece (unigram `.model`): the pieces and scores become a `tokenizers`
  Unigram model; the model's own normaliser (its precompiled NFKC charsmap),
  whitespace handling (strip + collapse runs when `remove_extra_whitespaces`) and
  the `▁` dummy prefix (`Metaspace`, when `add_dummy_prefix`) are reproduced.
  Other SentencePiece model types (bpe, char, word) and byte fallback are refused.
- WordPiece (`vocab.txt`): the pipeline of `WordPieceTokenizer` (BertNormalizer with
  its `lowercase`, BertPreTokenizer, WordPiece `##`), as is.

Both register [PAD] [UNK] [CLS] [SEP] [MASK] as special added tokens (so a literal
"[MASK]" in text is the mask id, as `pipeline("fill-mask")` needs; the project's
`encode` reads it as text, its fill-mask splits on it the same way). Special tokens
are added as pre-training rows have them: one sequence is `[CLS] a` (rows are
`[CLS]` + tokens, no `[SEP]`; the project's fill-mask encodes the same way), a pair
is `[CLS] a [SEP] b [SEP]` with token types 0/1 (the project's GLUE encoding).

`write_hf_tokenizer` verifies the result against the project's tokenizer on sample
lines (the bundled corpus, if given, plus hard cases) and raises `ValueError` on
any difference, so an export never ships a tokenizer that disagrees.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence

from sas_jax.data import tokenizer as tokenizer_lib

# Hard cases checked on every export, besides the caller's sample lines.
PROBE_LINES = (
    "To be, or not to be: that is the question.",
    "  two  spaces\tand a tab, trailing   ",
    "Ünïcödé café naïve — “quotes” ½ ﬁne ＦＵＬＬ width",
    "日本語のテキスト and 中文 mixed",
    "emoji 🙂 and symbols ©®™ §¶",
    "O'er the hills, (and) [brackets] {braces} <angles> & 100%!",
    "UPPER lower MiXeD 1234567890",
)
# File name of the project's tokenizer copy in an export folder: `sas_jax.data.tokenizer`
# (and `glue.model`) read it; AutoTokenizer ignores it (tokenizer_class names the fast class).
PROJECT_FILE = {"sentencepiece": "tokenizer.model", "wordpiece": "vocab.txt"}


def _special_tokens(tok):
    from tokenizers import AddedToken

    return [AddedToken(tok.id_to_piece(i), special=True, normalized=False)
            for i in sorted({tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id})]


def _post_processor(tok, single_sep: bool = False):
    from tokenizers import processors

    cls, sep = tok.id_to_piece(tok.cls_id), tok.id_to_piece(tok.sep_id)
    single = f"{cls} $A {sep}" if single_sep else f"{cls} $A"
    return processors.TemplateProcessing(single=single, pair=f"{cls} $A {sep} $B:1 {sep}:1",
                                         special_tokens=[(cls, tok.cls_id), (sep, tok.sep_id)])


def sentencepiece_to_hf(tok: tokenizer_lib.SentencePieceTokenizer):
    """A `tokenizers.Tokenizer` equal to the SentencePiece model on text."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import Unigram

    proto = sentencepiece_model_pb2.ModelProto()
    with open(tok.path, "rb") as f:
        proto.ParseFromString(f.read())
    model_type = sentencepiece_model_pb2.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)
    if model_type != "UNIGRAM":
        raise ValueError(f"SentencePiece model {tok.path} is of type {model_type.lower()}; only unigram "
                         "models convert exactly to a Hugging Face tokenizer.json")
    if proto.trainer_spec.byte_fallback:
        raise ValueError(f"SentencePiece model {tok.path} uses byte fallback, which this export does not "
                         "convert; train the vocabulary without byte_fallback")
    spec = proto.normalizer_spec
    out = Tokenizer(Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=tok.unk_id, byte_fallback=False))
    steps = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")]
    if steps:
        out.normalizer = normalizers.Sequence(steps)
    scheme = "always" if spec.add_dummy_prefix else "never"
    out.pre_tokenizer = pre_tokenizers.Metaspace(replacement=tokenizer_lib.SP_WORD_START, prepend_scheme=scheme,
                                                 split=bool(proto.trainer_spec.split_by_whitespace))
    out.decoder = decoders.Metaspace(replacement=tokenizer_lib.SP_WORD_START, prepend_scheme=scheme)
    return out


def wordpiece_to_hf(tok: tokenizer_lib.WordPieceTokenizer):
    """A `tokenizers.Tokenizer` with the pipeline of `WordPieceTokenizer`."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    vocab = {tok.id_to_piece(i): i for i in range(tok.vocab_size)}
    out = Tokenizer(WordPiece(vocab, unk_token=tok.id_to_piece(tok.unk_id)))
    out.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=tok.lowercase)
    out.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    out.decoder = decoders.WordPiece(prefix="##")
    return out


def to_hf_tokenizer(tok: tokenizer_lib.Tokenizer, *, single_sep: bool = False):
    """The `tokenizers.Tokenizer` of an export: model + specials + post-processor (one
    sequence `[CLS] a`, as pre-training rows; `single_sep`: `[CLS] a [SEP]`, as GLUE inputs)."""
    if tok.kind == "sentencepiece":
        out = sentencepiece_to_hf(tok)
    elif tok.kind == "wordpiece":
        out = wordpiece_to_hf(tok)
    else:
        raise ValueError(f"tokenizer kind {tok.kind!r} cannot be exported")
    out.add_special_tokens(_special_tokens(tok))
    out.post_processor = _post_processor(tok, single_sep)
    return out


def mismatches(tok: tokenizer_lib.Tokenizer, hf, lines: Iterable[str], limit: int = 3) -> tuple[int, list]:
    """(number of lines checked, up to `limit` lines whose ids differ), special-token
    strings aside (the two readings of a literal "[MASK]" differ by design)."""
    specials = [tok.id_to_piece(i) for i in (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id)]
    lines = [s for s in lines if not any(p in s for p in specials)]
    ours = tok.encode_batch(lines)
    theirs = [e.ids for e in hf.encode_batch(lines, add_special_tokens=False)]
    return len(lines), [s for s, a, b in zip(lines, ours, theirs) if list(a) != list(b)][:limit]


def write_hf_tokenizer(tok: tokenizer_lib.Tokenizer, out_dir: str, *, model_max_length: int,
                       sample_lines: Sequence[str] = (), single_sep: bool = False) -> dict:
    """Writes tokenizer.json, tokenizer_config.json, special_tokens_map.json and the
    project's tokenizer file (`PROJECT_FILE`) into `out_dir`; returns the
    tokenizer_config dict. Raises ValueError if the HF tokenizer differs from `tok`
    on `sample_lines` or `PROBE_LINES`. `single_sep`: one sequence is `[CLS] a [SEP]` (a
    fine-tuned classifier's input) instead of pre-training's `[CLS] a`."""
    hf = to_hf_tokenizer(tok, single_sep=single_sep)
    _, bad = mismatches(tok, hf, [*PROBE_LINES, *sample_lines])
    if bad:
        raise ValueError(f"the Hugging Face tokenizer built from {tok.path} differs from it on "
                         f"{bad[0]!r}: ids {tok.encode(bad[0])[:12]} vs "
                         f"{hf.encode(bad[0], add_special_tokens=False).ids[:12]}; it cannot be exported exactly")
    os.makedirs(out_dir, exist_ok=True)
    hf.save(os.path.join(out_dir, "tokenizer.json"))
    special = {"pad_token": tok.id_to_piece(tok.pad_id), "unk_token": tok.id_to_piece(tok.unk_id),
               "cls_token": tok.id_to_piece(tok.cls_id), "sep_token": tok.id_to_piece(tok.sep_id),
               "mask_token": tok.id_to_piece(tok.mask_id)}
    config = {
        # The generic fast class: it loads tokenizer.json as written (a model-specific
        # class could rebuild the pipeline from a vocab file with its own defaults).
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "do_lower_case": bool(getattr(tok, "lowercase", False)),
        "model_max_length": int(model_max_length),
        "padding_side": "right",
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
        "sas_jax_tokenizer": {"kind": tok.kind, "file": PROJECT_FILE[tok.kind], "fingerprint": tok.fingerprint,
                              "special_ids": tok.special_ids},
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
        f.write("\n")
    shutil.copyfile(tok.path, os.path.join(out_dir, PROJECT_FILE[tok.kind]))
    return config


def project_tokenizer(folder: str) -> tokenizer_lib.Tokenizer | None:
    """The project's tokenizer stored in an export folder (None if there is none):
    `tokenizer.model`/`spiece.model`/`spm.model` or `vocab.txt`, with the folder's
    `do_lower_case` (default True, as BERT) for WordPiece."""
    lowercase = True
    cfg_path = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(cfg_path):
        with open(cfg_path) as f:
            lowercase = bool(json.load(f).get("do_lower_case", True))
    for name in ("tokenizer.model", "spiece.model", "spm.model", "vocab.txt"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return tokenizer_lib.load_tokenizer(path, lowercase=lowercase)
    return None
