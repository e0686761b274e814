"""Unif-SASc (paper Table 4): SAS with the uniform cold start (all V ids), constant λ = 50.

    python -m sas_jax.main --config=configs/unif_sasc.py --workdir=/tmp/unif_sasc \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small", lambda_schedule="constant")
    c.sas.cold_start = "uniform"
    return config_lib.apply_variants(c, v)
