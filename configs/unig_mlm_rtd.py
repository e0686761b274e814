"""Unig-MLM-RTD (ablation, paper Table 4): fresh unigram corruption every visit (never from the
model), MLM + RTD with λ rising 50→200 epoch-wise.

    python -m sas_jax.main --config=configs/unig_mlm_rtd.py --workdir=/tmp/unig_mlm_rtd \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small")
    config_lib.set_objective(c, "unigram", mlm=True, rtd=True, lambda_schedule="epochwise",
                             lambda_start=50.0, lambda_end=200.0)
    return config_lib.apply_variants(c, v)
