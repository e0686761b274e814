"""GLUE fine-tuning with the paper's recipe (Table 6), one task per variant.

    python -m sas_jax.glue sweep --checkpoint_dir=/ckpt/sas_small --glue_dir=/data/glue \
        --out=/ckpt/sas_small/glue [--config=configs/glue.py:base] [--config.opt.eps=1e-8]

The sweep loads `configs/glue.py:task=<task>` for each of `--tasks` (all 8 by
default); in Python, `config_lib.load_config("glue:task=cola,tiny")`.

Variants: `task=<cola|sst2|mrpc|stsb|qqp|mnli|qnli|rte>` (required), `base` (the
Base learning-rate grid 7.5e-5, 5e-5), `tiny` (tests: short inputs, few epochs,
one seed, a high learning rate). Fields and their comments: `sas_jax/glue/recipe.py`.
"""
from sas_jax import config_lib
from sas_jax.glue import recipe


def get_config(arg=None):
    v = config_lib.parse_arg(arg, task="", base=False, tiny=False)
    return recipe.task_config(v.task, base=v.base, tiny=v.tiny)
