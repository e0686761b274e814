"""Re-evaluates a finished run's checkpoints on its held-out rows (`sas_jax/evaluation.py`).

    python -m sas_jax.analysis.held_out --checkpoint_dir=runs/demo [--steps=400,800] [--eval_rows=512]

Each checkpoint's parameters get exactly the figures training would have logged at that step
(`eval/*`): the same held-out ids and corruption (a pure function of the example id), so runs
made before a measure existed can be compared with new ones. Prints one JSON line per step.
"""
from __future__ import annotations

import argparse
import json
import sys

import ml_collections

from sas_jax import checkpointing, cli, evaluation, objectives, sharding
from sas_jax.data import corpus as corpus_lib
from sas_jax.errors import UserError


def evaluate_run(checkpoint_dir: str, steps=None, *, eval_rows: int | None = None, corpus=None) -> dict:
    """{step: held-out figures} of the run's checkpoints (`steps`: all when None)."""
    cfg = ml_collections.ConfigDict(checkpointing.read_step_meta(checkpoint_dir)["config"])
    rows = int(cfg.data.eval_rows if eval_rows is None else eval_rows)
    if rows <= 0:
        raise UserError(f"the run in {checkpoint_dir} held out no rows (data.eval_rows=0); pass --eval_rows=N "
                        "(rows that run also trained on, so the figures are not held-out ones)")
    workdir = checkpoint_dir.rstrip("/").removesuffix("/checkpoints")
    corpus = corpus if corpus is not None else corpus_lib.open_corpus(cfg, workdir)
    vocab = int(corpus.vocab_size if cfg.model.vocab_size == -1 else cfg.model.vocab_size)
    model = objectives.build(cfg, vocab).model
    mesh = sharding.make_mesh(cfg.mesh)
    held = evaluation.HeldOut(cfg, corpus, vocab_size=vocab, model=model, mesh=mesh,
                              rules=sharding.logical_rules(cfg.mesh),
                              ids=evaluation.held_out_ids(corpus.num_rows, rows))
    wanted = checkpointing.checkpoint_steps(checkpoint_dir) if steps is None else [int(s) for s in steps]
    out = {}
    for step in wanted:
        params, _ = checkpointing.read_params(checkpoint_dir, step)
        out[step] = held.evaluate(params)
    return out


@cli.entry_point  # a bad workdir or step: one line `error: ...`, exit 2
def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m sas_jax.analysis.held_out", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint_dir", required=True, help="a pre-training --workdir")
    ap.add_argument("--steps", default="", help="comma-separated steps (default: every checkpoint)")
    ap.add_argument("--eval_rows", type=int, default=None, help="held-out rows (default: the run's data.eval_rows)")
    args = ap.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",") if s.strip()] or None
    except ValueError:
        raise UserError(f"--steps={args.steps!r} is not a comma-separated list of steps, e.g. 400,800") from None
    for step, f in evaluate_run(args.checkpoint_dir, steps, eval_rows=args.eval_rows).items():
        print(json.dumps({"step": step, **{f"eval/{k}": round(float(v), 6) for k, v in f.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
