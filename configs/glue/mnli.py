"""MNLI fine-tuning with the paper's recipe (Table 6): 392,702 train / 9,815 + 9,832 dev; 4 epochs, 1 seed.

Metric: matched accuracy for selection; mean of matched and mismatched reported.

    python -m sas_jax.glue sweep --tasks=mnli --checkpoint_dir=/ckpt/sas_small --glue_dir=/data/glue \
        --out=/ckpt/sas_small/glue

Variants: `:base` (Base learning-rate grid 7.5e-5, 5e-5), `:tiny` (tests). Fields and
their comments: `sas_jax/glue/recipe.py`.
"""
from sas_jax.glue import recipe


def get_config(arg=None):
    return recipe.task_config("mnli", arg)
