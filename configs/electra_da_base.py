"""ELECTRA-DA-Base: ELECTRA-Base's recipe (generator 1/3 width: H_g = 256, 4 heads; E = 768;
L = 512, batch 256, 766K steps; MLM + 50·RTD constant) on the SASDA-Base disentangled-attention
encoder (docs/reference.md §8, §9.5, §9.8).

    python -m sas_jax.main --config=configs/electra_da_base.py --workdir=/tmp/electra_da_base \
        --config.data.corpus_dir=/data/wiki_books_512 --config.model.dtype=bfloat16

Shared word table, per-network projection, LayerNorm and relative table, as electra_da_small.py;
`--config.model.embedding_sharing=gdes` for gradient-disentangled embedding sharing.

Variant: `:tiny` (tests).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False)
    c = config_lib.base_config("base")
    config_lib.use_disentangled_attention(c)
    config_lib.use_electra(c, embedding_size=768, generator_ratio=1 / 3)
    c.num_train_steps = 766_000
    return config_lib.apply_variants(c, v)
