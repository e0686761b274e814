"""SASc-Small: SAS with a constant RTD weight λ = 50 (paper Table 1).

    python -m sas_jax.main --config=configs/sasc_small.py --workdir=/tmp/sasc_small \
        --config.data.corpus_dir=/data/wiki_books_128
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small", lambda_schedule="constant")
    if v.demo:
        config_lib.make_demo(c)
    if v.tiny:
        config_lib.shrink_to_tiny(c)
    return c
