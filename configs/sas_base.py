"""SAS-Base: 12 layers × 768, L = 512, batch 256, λ 50→200 epoch-wise (paper Table 5).

    python -m sas_jax.main --config=configs/sas_base.py --workdir=/tmp/sas_base \
        --config.data.corpus_dir=/data/wiki_books_512 --config.model.dtype=bfloat16
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False)
    c = config_lib.base_config("base", lambda_schedule="epochwise")
    if v.tiny:
        config_lib.shrink_to_tiny(c)
    return c
