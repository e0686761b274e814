"""BERT-Base: MLM only, BERT's 80/10/10 masking, 12 × 768, L = 512, batch 256, 1M steps (paper Table 2, Table 5).

    python -m sas_jax.main --config=configs/bert_base.py --workdir=/tmp/bert_base \
        --config.data.corpus_dir=/data/wiki_books_512 --config.model.dtype=bfloat16

Variant: `:tiny` (tests).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False)
    c = config_lib.base_config("base")
    config_lib.set_objective(c, "bert", mlm=True, rtd=False)
    config_lib.use_bert_head(c)
    c.num_train_steps = 1_000_000
    return config_lib.apply_variants(c, v)
