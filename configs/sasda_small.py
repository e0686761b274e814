"""SASDA-Small: SAS (λ 50→200 epoch-wise, unigram cold start) on the disentangled-attention encoder
(paper Table 1; docs/reference.md §9.5).

    python -m sas_jax.main --config=configs/sasda_small.py --workdir=/tmp/sasda_small \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small", lambda_schedule="epochwise")
    config_lib.use_disentangled_attention(c)
    return config_lib.apply_variants(c, v)
