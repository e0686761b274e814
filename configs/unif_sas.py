"""Unif-SAS (paper Table 4): SAS with the uniform cold start (all V ids), λ 50→200 epoch-wise.

    python -m sas_jax.main --config=configs/unif_sas.py --workdir=/tmp/unif_sas \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small", lambda_schedule="epochwise")
    c.sas.cold_start = "uniform"
    return config_lib.apply_variants(c, v)
