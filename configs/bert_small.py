"""BERT-Small: MLM only, BERT's 80/10/10 masking of whole words, E = H = 256 (paper Table 1, Table 5).

    python -m sas_jax.main --config=configs/bert_small.py --workdir=/tmp/bert_small \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small")
    config_lib.set_objective(c, "bert", mlm=True, rtd=False)
    config_lib.use_bert_head(c)
    return config_lib.apply_variants(c, v)
