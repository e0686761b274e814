"""Build a real labelled task from an installed package into task files: `python -m sas_jax.prepare_task`.

    python -m sas_jax.prepare_task wordnet_supersense --out=data/tasks/wordnet_supersense [--seed=0] \\
        [--wordnet_dir=/usr/share/wordnet] [--pos=noun,verb] [--max_train=N --max_dev=N --max_test=N] [--baseline]

Writes `<out>/{train,dev,test}.tsv`, `task.json` (fine-tune it with `python -m sas_jax.glue sweep
--tasks=<out>/task.json ...`) and `meta.json` (sizes, label counts). `--baseline` also fits the
bag-of-words logistic regression (scikit-learn) and adds its dev/test accuracy to `meta.json`.
The recipes, their sources and licences: `sas_jax/data/real_tasks.py`, docs/tasks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from sas_jax import cli, files


def parser() -> argparse.ArgumentParser:
    from sas_jax.data import real_tasks  # noqa: PLC0415

    p = cli.ArgumentParser(prog="python -m sas_jax.prepare_task", description=__doc__.split("\n\n")[0],
                           epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", choices=sorted(real_tasks.RECIPES), help="the task to build")
    p.add_argument("--out", required=True, help="output folder (task.json and the split files)")
    p.add_argument("--seed", type=int, default=0, help="split (and sample) seed (default 0)")
    p.add_argument("--wordnet_dir", default=real_tasks.WORDNET_DIR,
                   help=f"WordNet's dict folder (default {real_tasks.WORDNET_DIR}, Debian's wordnet-base)")
    p.add_argument("--pos", default="noun,verb", help="parts of speech (noun,verb,adj,adv; default noun,verb)")
    for split in ("train", "dev", "test"):
        p.add_argument(f"--max_{split}", type=int, default=0, help=f"keep a seeded sample of N {split} rows (0 = all)")
    p.add_argument("--baseline", action="store_true",
                   help="fit the bag-of-words logistic regression (needs scikit-learn; minutes on a CPU)")
    return p


@cli.entry_point  # a missing package, a bad option: one line `error: ...`, exit 2
def main(argv=None) -> int:
    from sas_jax.data import real_tasks  # noqa: PLC0415

    a = parser().parse_args(argv)
    files.check_dir(a.out, "--out")  # below a file, unwritable: one line, nothing run
    meta = real_tasks.build(a.recipe, a.out, wordnet_dir=a.wordnet_dir, seed=a.seed,
                            pos=tuple(p.strip() for p in a.pos.split(",") if p.strip()),
                            max_train=a.max_train, max_dev=a.max_dev, max_test=a.max_test, log=print)
    print(f"{a.recipe}: {meta['sizes']['train']} train / {meta['sizes']['dev']} dev / {meta['sizes']['test']} test "
          f"rows, {meta['num_labels']} labels; majority class {100 * meta['majority']['dev']:.1f} % of dev")
    if a.baseline:
        from sas_jax.glue import bag_of_words  # noqa: PLC0415

        base = bag_of_words.bag_of_words_baseline(a.out, seed=a.seed)
        meta["bag_of_words"] = base
        files.write_json(os.path.join(a.out, "meta.json"), meta)
        print("bag of words: " + json.dumps({s: base[s] for s in ("dev", "test") if s in base}))
    print(f"fine-tune it: python -m sas_jax.glue sweep --checkpoint_dir=<workdir> --tasks={os.path.join(a.out, 'task.json')} "
          "--out=<dir>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
