"""`python -m sas_jax.convert`: Hugging Face export and import.

    python -m sas_jax.convert export --checkpoint_dir=runs/demo --out=/tmp/hf_demo
    python -m sas_jax.convert export --model=runs/demo/glue/models/sst2/best --out=/tmp/hf_sst2
    python -m sas_jax.convert import --hf_folder=/tmp/hf_demo --workdir=runs/from_hf

`export` writes HF folder(s) that stock `AutoTokenizer` / `AutoModelFor*` load, with
a tokenizer giving the project's ids exactly and a model card; it refuses (exit 2,
one line) what HF cannot hold exactly: an MLM head whose LayerNorm eps differs
from the encoder's (SAS rows: 1e-5 vs 1e-12; `--mlm_eps_gap=skip` leaves the MLM
head out, `allow` writes it with the measured gap recorded), an enhanced mask
decoder, pre-LayerNorm layers. `import` writes a step-0 checkpoint the trainer
resumes (`python -m sas_jax.main --config=<row> --workdir=<workdir>`) and GLUE
fine-tunes (`init_from.checkpoint_dir=<workdir>`). See `sas_jax/convert/workdir.py`.
`export --model` writes a kept fine-tuned classifier (`glue sweep`'s
`models/<task>/best`) as a `*ForSequenceClassification` folder, exact or refused
(`sas_jax/convert/hf_classifier.py`).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sas_jax import cli, files
from sas_jax.errors import UserError


def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m sas_jax.convert", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="pre-training checkpoint, or a kept fine-tuned classifier -> Hugging Face "
                                      "folder(s)")
    e.add_argument("--checkpoint_dir", default="", help="a pre-training --workdir (or its checkpoints/)")
    e.add_argument("--model", default="", help="or a kept fine-tuned classifier: <glue sweep --out>/models/<task>/best "
                                               "(-> *ForSequenceClassification)")
    e.add_argument("--architecture", default="auto", choices=("auto", "ElectraForSequenceClassification",
                                                              "DebertaV2ForSequenceClassification",
                                                              "BertForSequenceClassification"),
                   help="with --model: the HF class (default auto: ELECTRA for absolute attention, DebertaV2 "
                        "for disentangled; BERT's tanh pooler head is refused)")
    e.add_argument("--out", required=True, help="output folder (must not hold an export)")
    e.add_argument("--step", type=int, default=-1, help="checkpoint step (default: the latest)")
    e.add_argument("--tokenizer", default="", help="override the run's tokenizer (.model or vocab.txt)")
    e.add_argument("--mlm_eps_gap", default="refuse", choices=("refuse", "skip", "allow"),
                   help="an MLM head whose LayerNorm eps HF cannot hold: refuse (default), skip it, "
                        "or allow (write it; the measured gap is recorded)")
    i = sub.add_parser("import", help="Hugging Face folder -> a checkpoint the trainer resumes")
    i.add_argument("--hf_folder", required=True, help="a folder written by export, or a stock HF model folder")
    i.add_argument("--workdir", required=True, help="the new run's --workdir (must hold no checkpoint)")
    i.add_argument("--config", default="", help="the row to continue as, e.g. configs/sas_small.py "
                                                 "(default: the config recorded by export)")
    i.add_argument("--tokenizer", default="", help="override the folder's tokenizer (.model or vocab.txt)")
    return p


@cli.entry_point  # bad arguments, paths, checkpoints: one line `error: ...`, exit 2
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    files.check_dir(args.out if args.command == "export" else args.workdir,  # one line, nothing run
                    "--out" if args.command == "export" else "--workdir")
    from sas_jax.convert import workdir  # noqa: PLC0415 - heavy imports after parsing

    if args.command == "export" and bool(args.checkpoint_dir) == bool(args.model):
        raise UserError("export needs exactly one of --checkpoint_dir=<pre-training workdir> or "
                        "--model=<glue sweep --out>/models/<task>/best")
    if args.command == "export" and args.model:
        from sas_jax.convert import hf_classifier  # noqa: PLC0415

        print(f"classifier: {hf_classifier.export_kept(args.model, args.out, architecture=args.architecture)}")
    elif args.command == "export":
        folders = workdir.export_checkpoint(args.checkpoint_dir, args.out, step=args.step,
                                            tokenizer=args.tokenizer, mlm_eps_gap=args.mlm_eps_gap)
        for role, folder in folders.items():
            print(f"{role}: {folder}")
    else:
        path = workdir.import_to_workdir(args.hf_folder, args.workdir, config=args.config,
                                         tokenizer=args.tokenizer)
        print(f"checkpoint: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
