"""DeBERTa-Small: BERT's MLM objective on the disentangled-attention (DA) encoder
(docs/reference.md §9.5: no absolute positions, no token types, LayerNorm eps 1e-7).

    python -m sas_jax.main --config=configs/deberta_small.py --workdir=/tmp/deberta_small \
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
    c = config_lib.base_config("small")
    config_lib.set_objective(c, "bert", mlm=True, rtd=False)
    config_lib.use_disentangled_attention(c)
    config_lib.use_bert_head(c)  # the MLM head's LayerNorm takes the encoder's eps (1e-7)
    return config_lib.apply_variants(c, v)
