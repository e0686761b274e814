"""SAS-Small: λ rising 50→200 epoch-wise, unigram cold start (paper Table 1, Table 5).

    python -m sas_jax.main --config=configs/sas_small.py --workdir=/tmp/sas_small \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small", lambda_schedule="epochwise")
    if v.demo:
        config_lib.make_demo(c)
    if v.tiny:
        config_lib.shrink_to_tiny(c)
    return c
