"""`python -m sas_jax.prepare`: the corpus preparation command line.

Argument parsing only; the work and the corpus format are in the library
`sas_jax.data.prepare` (`prepare_corpus`, documented there).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sas_jax import cli, files
from sas_jax.data import prepare as prepare_lib
from sas_jax.errors import UserError


def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m sas_jax.prepare",
        description="Tokenise plain text (documents separated by blank lines) into a "
                    "prepared corpus: rows of [CLS] + seq_len-1 tokens.")
    src = p.add_argument_group("input (one of)")
    src.add_argument("--input", help="comma-separated text files or globs")
    src.add_argument("--tfds", help="tfds text dataset, <name>[/<config>][:<version>], prepared as "
                                    "ArrayRecord in --data_dir (read without TensorFlow; "
                                    "pip install 'sas_jax[tfds]')")
    src.add_argument("--data_dir", help="tfds data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    src.add_argument("--tfds_split", default="train", help="tfds split (default: train)")
    src.add_argument("--tfds_text_key", default="text", help="tfds text field (default: text)")
    tk = p.add_argument_group("tokenizer (one of)")
    tk.add_argument("--tokenizer", help="SentencePiece .model or BERT vocab.txt")
    tk.add_argument("--train_vocab", type=int, default=0,
                    help="train a vocabulary of this size on the input (--vocab_type)")
    tk.add_argument("--vocab_type", choices=prepare_lib.VOCAB_TYPES, default=None,
                    help="what --train_vocab trains: sentencepiece (default; tokenizer.model) or "
                         "wordpiece (BERT vocab.txt)")
    case = tk.add_mutually_exclusive_group()
    case.add_argument("--lowercase", dest="lowercase", action="store_true", default=True,
                      help="WordPiece: lowercase and strip accents, as BERT uncased (the default)")
    case.add_argument("--no_lowercase", dest="lowercase", action="store_false",
                      help="WordPiece: keep case and accents, as BERT cased")
    p.add_argument("--seq_len", type=int, default=128, help="tokens per row, [CLS] included")
    p.add_argument("--add_sep", action="store_true", help="append [SEP] at each document end")
    p.add_argument("--packing", choices=prepare_lib.PACKINGS, default="document",
                   help="document (default): rows inside documents, a document's last row padded "
                        "with [PAD]; stream: one token stream, rows may span documents")
    p.add_argument("--output", required=True, help="output directory (must not hold a corpus)")
    p.add_argument("--workers", type=int, default=None,
                   help="tokenizer processes (default: cpu count; 1 for inputs under 8 MB)")
    p.add_argument("--max_rows", type=int, default=None, help="stop after this many rows")
    p.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")
    return p


@cli.entry_point  # bad arguments and inputs: one line `error: ...`, exit 2
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.input and not args.tfds:
        raise UserError("no input given; pass --input=<file or glob>[,...] or --tfds=<name>")
    if args.vocab_type and not args.train_vocab:
        raise UserError("--vocab_type says what --train_vocab trains; pass --train_vocab=<size> too "
                        "(a --tokenizer file's type is its suffix: .model or vocab.txt)")
    files.check_dir(args.output, "--output")  # below a file, unwritable: one line, nothing run
    prepare_lib.prepare_corpus(
        args.input, args.output, seq_len=args.seq_len, tokenizer_path=args.tokenizer,
        train_vocab_size=args.train_vocab, vocab_type=args.vocab_type or "sentencepiece",
        add_sep=args.add_sep, packing=args.packing,
        workers=args.workers,
        max_rows=args.max_rows, lowercase=args.lowercase, tfds_name=args.tfds,
        tfds_data_dir=args.data_dir, tfds_split=args.tfds_split,
        tfds_text_key=args.tfds_text_key, progress=args.progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
