"""Unig-MLM-SAS (ablation, paper Table 4): SAS corruption (unigram cold start, then the model's own
samples), MLM loss only: no RTD head, no RTD loss.

    python -m sas_jax.main --config=configs/unig_mlm_sas.py --workdir=/tmp/unig_mlm_sas \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small")
    config_lib.set_objective(c, "sas", mlm=True, rtd=False)
    return config_lib.apply_variants(c, v)
