"""CoLA fine-tuning with the paper's recipe (Table 6): 8,551 train / 1,043 dev; 20 epochs, 5 seeds.

Metric: Matthews correlation (selection and report).

    python -m sas_jax.glue sweep --tasks=cola --checkpoint_dir=/ckpt/sas_small --glue_dir=/data/glue \
        --out=/ckpt/sas_small/glue

Variants: `:base` (Base learning-rate grid 7.5e-5, 5e-5), `:tiny` (tests). Fields and
their comments: `sas_jax/glue/recipe.py`.
"""
from sas_jax.glue import recipe


def get_config(arg=None):
    return recipe.task_config("cola", arg)
