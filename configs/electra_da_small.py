"""ELECTRA-DA-Small: ELECTRA-Small's recipe (generator 1/4 width: H_g = 64, 1 head, FFN 256;
E = 128; MLM + 50·RTD constant; 85% [MASK]) on the SASDA-Small disentangled-attention encoder,
i.e. DeBERTa-V3's replaced-token detection (docs/reference.md §8, §9.5, §9.8).

    python -m sas_jax.main --config=configs/electra_da_small.py --workdir=/tmp/electra_da_small \
        --config.data.corpus_dir=/data/wiki_books_128

Generator and discriminator share the word table [V, E] (the generator's MLM logits stay tied to
it); each keeps its own `embed_proj`, embedding LayerNorm and relative table.
`--config.model.embedding_sharing=gdes` switches to gradient-disentangled embedding sharing: the
discriminator reads stop_gradient(E_G) + E_delta, and its export folds E_delta in.

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small")
    config_lib.use_disentangled_attention(c)
    config_lib.use_electra(c, embedding_size=128, generator_ratio=0.25)
    return config_lib.apply_variants(c, v)
