"""SAScDA-Small: SAS with a constant RTD weight λ = 50 and the paper's unigram cold start, on the
disentangled-attention encoder (SASc's recipe on SASDA's encoder; not a row of the paper's table:
the fair comparison in docs/small_scale.md puts every objective on the same relative-position
encoder).

    python -m sas_jax.main --config=configs/sascda_small.py --workdir=/tmp/sascda_small \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small", lambda_schedule="constant")
    config_lib.use_disentangled_attention(c)
    return config_lib.apply_variants(c, v)
