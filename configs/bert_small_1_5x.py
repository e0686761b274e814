"""BERT-Small 1.5x: BERT-Small trained 375K steps, 1.5x the 250K of the other Small rows (paper Table 1).

    python -m sas_jax.main --config=configs/bert_small_1_5x.py --workdir=/tmp/bert_small_1_5x \
        --config.data.corpus_dir=/data/wiki_books_128

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small")
    config_lib.set_objective(c, "bert", mlm=True, rtd=False)
    config_lib.use_bert_head(c)
    c.num_train_steps = 375_000
    return config_lib.apply_variants(c, v)
