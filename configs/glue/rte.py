"""RTE fine-tuning with the paper's recipe (Table 6): 2,490 train / 277 dev; 20 epochs, 5 seeds.

Metric: accuracy.

    python -m sas_jax.glue sweep --tasks=rte --checkpoint_dir=/ckpt/sas_small --glue_dir=/data/glue \
        --out=/ckpt/sas_small/glue

Variants: `:base` (Base learning-rate grid 7.5e-5, 5e-5), `:tiny` (tests). Fields and
their comments: `sas_jax/glue/recipe.py`.
"""
from sas_jax.glue import recipe


def get_config(arg=None):
    return recipe.task_config("rte", arg)
