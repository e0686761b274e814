"""Which recipe knobs let a small model leave the unigram plateau: the Markov-corpus search.

    python benchmarks/markov_recipes.py --out=runs/markov_recipes [--steps=600] [--recipes=base,pre_ln,...]

Every recipe is `configs/bert_small.py:demo` with every selected token [MASK]ed (so the
held-out [MASK]ed MLM loss is an honest context measure), trained by the project's trainer on
`sas_jax.data.synthetic.markov_corpus(4000, 64, 2000, branching=2, active_tokens=200)`
(unigram entropy ~4.86 nats; once a token's left neighbour is known at most ln 2 = 0.69 nats
are left), with the built-in held-out evaluation (512 rows) every 200 steps. One knob is
changed per recipe (`RECIPES`). Finished recipes are skipped on a re-run (each has its own
workdir under --out); the table (markdown) is printed at the end and written to
<out>/table.md. Wall times depend on the machine's load; compare at equal steps only.
"""
from __future__ import annotations

import argparse
import os
import sys

from sas_jax import config_lib, metrics_log, train
from sas_jax.data.synthetic import markov_corpus

# name -> (what changes, config overrides, markov_corpus keyword changes)
RECIPES = {
    "base": ("absolute positions, post-LN (the paper's encoder)", {}, {}),
    "pre_ln": ("pre-LayerNorm", {"model.pre_layer_norm": True}, {}),
    "wide": ("4 layers x 256 (4 heads, FFN 1024)", {"model.num_layers": 4, "model.hidden_size": 256,
                                                    "model.embedding_size": 256, "model.intermediate_size": 1024,
                                                    "model.num_heads": 4}, {}),
    "heads4": ("4 heads of 32 (same width)", {"model.num_heads": 4, "model.head_dim": 32}, {}),
    "b2_098": ("Adam b2 = 0.98", {"opt.b2": 0.98}, {}),
    "per_token": ("per-token masking (every token starts a word)", {}, {"word_start_frac": 1.0}),
    "vocab500": ("vocabulary 500 (same 200 active tokens)", {}, {"vocab_size": 500}),
    "warmup400": ("warm-up 400 steps, lr 3e-4", {"opt.warmup_steps": 400, "opt.learning_rate": 3e-4}, {}),
    "da": ("disentangled attention (relative positions)", "DA", {}),
}
CORPUS = dict(num_rows=4000, seq_len=64, vocab_size=2000, branching=2, active_tokens=200)


def recipe_config(name: str, steps: int):
    what, overrides, _ = RECIPES[name]
    c = config_lib.load_config("configs/bert_small.py:demo")
    if overrides == "DA":
        config_lib.use_disentangled_attention(c)
        overrides = {}
    for key, value in {"objective.mask_token_rate": 1.0, "objective.random_token_rate": 0.0,
                       "num_train_steps": steps, "log.eval_every_steps": 200, "ckpt.every_steps": steps,
                       "log.tensorboard": False, **overrides}.items():
        config_lib.override(c, f"{key}={value}")
    return c


def run(name: str, out: str, steps: int) -> dict:
    """{step: held-out [MASK]ed MLM loss} of one recipe (trained unless already finished)."""
    workdir = os.path.join(out, name)
    metrics = os.path.join(workdir, "metrics.jsonl")

    def evals():
        if not os.path.exists(metrics):
            return {}
        rows = metrics_log.read_records(metrics)
        return {d["step"]: d for d in rows if "eval/mlm_loss" in d}

    if steps not in evals():
        corpus = markov_corpus(**{**CORPUS, **RECIPES[name][2]})
        train.Trainer(recipe_config(name, steps), workdir, corpus=corpus).run()
    return evals()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        print(f"error: unknown recipe {unknown[0]!r}; known: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    lines = ["| recipe | what changes | held-out [MASK]ed MLM loss (step) | unigram CE at these positions |",
             "|---|---|---|---|"]
    for name in names:
        e = run(name, args.out, args.steps)
        curve = ", ".join(f"{d['eval/mlm_loss']:.4f} ({s})" for s, d in sorted(e.items()) if s > 0)
        lines.append(f"| `{name}` | {RECIPES[name][0]} | {curve} | {e[max(e)]['eval/unigram_ce']:.3f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
