"""Unig-MLM (ablation, paper Table 4): MLM only; every visit draws fresh whole-word positions and fills
them with context-free unigram draws (sqrt-unigram for the first sas.warmup_steps); never samples the model.

    python -m sas_jax.main --config=configs/unig_mlm.py --workdir=/tmp/unig_mlm \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small")
    config_lib.set_objective(c, "unigram", mlm=True, rtd=False)
    return config_lib.apply_variants(c, v)
