"""ELECTRA-Small: generator (1/4 width: H_g = 64, 1 head, FFN 256) + discriminator, E = 128,
MLM + 50·RTD constant, 85% [MASK] (paper Table 1, Table 5; docs/reference.md §8).

    python -m sas_jax.main --config=configs/electra_small.py --workdir=/tmp/electra_small \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small")
    config_lib.use_electra(c, embedding_size=128, generator_ratio=0.25)
    return config_lib.apply_variants(c, v)
