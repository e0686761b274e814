"""QQP fine-tuning with the paper's recipe (Table 6): 363,846 train / 40,430 dev; 4 epochs, 1 seed.

Metric: accuracy (F1 also reported).

    python -m sas_jax.glue sweep --tasks=qqp --checkpoint_dir=/ckpt/sas_small --glue_dir=/data/glue \
        --out=/ckpt/sas_small/glue

Variants: `:base` (Base learning-rate grid 7.5e-5, 5e-5), `:tiny` (tests). Fields and
their comments: `sas_jax/glue/recipe.py`.
"""
from sas_jax.glue import recipe


def get_config(arg=None):
    return recipe.task_config("qqp", arg)
