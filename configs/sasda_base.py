"""SASDA-Base: SAS (λ 50→200 epoch-wise) on the DA encoder, 12 × 768, L = 512, batch 256, 833K steps
(paper Table 2).

    python -m sas_jax.main --config=configs/sasda_base.py --workdir=/tmp/sasda_base \
        --config.data.corpus_dir=/data/wiki_books_512 --config.model.dtype=bfloat16

No absolute positions: `position_biased_input=False` and no Enhanced Mask Decoder, so the model
locates tokens only relative to each other ([CLS] at position 0 is still distinguishable by content).
`--config.model.enhanced_mask_decoder=True` adds DeBERTa's EMD on the MLM path (docs/reference.md §9.7;
not exportable to HF).

Variant: `:tiny` (tests).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False)
    c = config_lib.base_config("base", lambda_schedule="epochwise")
    config_lib.use_disentangled_attention(c)
    c.num_train_steps = 833_000
    return config_lib.apply_variants(c, v)
