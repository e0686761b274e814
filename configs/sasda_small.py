"""SASDA-Small: SAS (λ 50→200 epoch-wise, unigram cold start) on the disentangled-attention encoder
(paper Table 1; docs/reference.md §9.5).

    python -m sas_jax.main --config=configs/sasda_small.py --workdir=/tmp/sasda_small \
        --config.data.corpus_dir=/data/wiki_books_128

No absolute positions: `position_biased_input=False` and no Enhanced Mask Decoder, so the model
locates tokens only relative to each other ([CLS] at position 0 is still distinguishable by content).
`--config.model.enhanced_mask_decoder=True` adds DeBERTa's EMD on the MLM path (docs/reference.md §9.7;
not exportable to HF).

Variants: `:tiny` (tests), `:demo` (bundled corpus, CPU, minutes).
"""
from sas_jax import config_lib


def get_config(arg=None):
    v = config_lib.parse_arg(arg, tiny=False, demo=False)
    c = config_lib.base_config("small", lambda_schedule="epochwise")
    config_lib.use_disentangled_attention(c)
    return config_lib.apply_variants(c, v)
