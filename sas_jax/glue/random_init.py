"""The no-pre-training baseline: fine-tune an encoder whose weights come from the initialiser.

    python -m sas_jax.glue sweep --init=random --checkpoint_dir=runs/sas_demo --tasks=rte ...
    python -m sas_jax.glue sweep --init=random --model_config=sas_small --tokenizer=vocab.txt ...

The encoder has the shape and the tokenizer of a given pre-training checkpoint (only its
`meta` item is read: the run's config and parameter shapes, never its weights), of a Hugging
Face folder (its config.json and tokenizer files), or of a config (`configs/<name>.py[:variant]`,
`model.vocab_size = -1` taking the tokenizer's size). `Pretrained.params` is empty, so each
fine-tuning run keeps every weight of its fresh `GlueModel` init — seeded by the run's
fine-tuning seed (`finetune`: `fold_in(key(seed), 0)`), the same initialisers pre-training
starts from. Every downstream number can then stand beside what pre-training adds.

`init_from` (a config's block, or a sweep's source) selects it with `init = "random"`;
`model.load_pretrained` comes here for it.
"""
from __future__ import annotations

import json
import os

from sas_jax.errors import UserError

INIT_CHOICES = ("pretrained", "random")
WORD_TABLE = "['embeddings']['word_embeddings']['embedding']"  # checkpointing.param_shapes key


def is_random(init_from) -> bool:
    init = (init_from.get("init", "") or "pretrained") if init_from else "pretrained"
    if init not in INIT_CHOICES:
        raise UserError(f"init_from.init={init!r} is not one of {', '.join(INIT_CHOICES)}")
    return init == "random"


def shape_source(init_from) -> dict:
    """What gives the random encoder its shape and tokenizer, made concrete (the latest step resolved)."""
    from sas_jax import checkpointing  # noqa: PLC0415

    if init_from.get("checkpoint_dir"):
        _, step = checkpointing.resolve_step(init_from["checkpoint_dir"], int(init_from.get("step", -1)))
        return {"init": "random", "checkpoint_dir": os.path.abspath(init_from["checkpoint_dir"]), "step": step}
    if init_from.get("hf_folder"):
        if not os.path.isfile(os.path.join(init_from["hf_folder"], "config.json")):
            raise UserError(f"{init_from['hf_folder']} is not a Hugging Face model folder (no config.json)")
        return {"init": "random", "hf_folder": os.path.abspath(init_from["hf_folder"])}
    if init_from.get("model_config"):
        return {"init": "random", "model_config": str(init_from["model_config"])}
    raise UserError("--init=random needs a shape: --checkpoint_dir=<pre-training workdir>, --hf_folder=<HF folder> "
                    "or --model_config=<configs/ name[:variant]> with --tokenizer=<.model or vocab.txt>")


def random_encoder(init_from):
    """A `model.Pretrained` with the shape and tokenizer named by `init_from` and no weights."""
    from sas_jax.glue import model as model_lib  # noqa: PLC0415
    from sas_jax.models.config import ModelConfig  # noqa: PLC0415

    source = shape_source(init_from)
    override = init_from.get("tokenizer", "") or ""
    if "checkpoint_dir" in source:
        cfg, tok = _checkpoint_shape(source["checkpoint_dir"], source["step"], override)
    elif "hf_folder" in source:
        from sas_jax.convert.hf_config import from_hf_config  # noqa: PLC0415

        with open(os.path.join(source["hf_folder"], "config.json")) as f:
            hf = json.load(f)
        try:
            cfg = from_hf_config(hf)
        except (KeyError, ValueError) as e:
            raise UserError(f"{source['hf_folder']}/config.json cannot be read: {' '.join(str(e).split())[:300]}") from None
        tok = model_lib._hf_tokenizer(source["hf_folder"], override)
    else:
        from sas_jax import config_lib  # noqa: PLC0415
        from sas_jax.data.corpus import tokenizer_of_run  # noqa: PLC0415

        config = config_lib.load_config(source["model_config"])
        if not override and not (config.data.get("prepare", {}).get("tokenizer") or config.data.get("corpus_dir")):
            raise UserError(f"--model_config={source['model_config']} names no tokenizer; pass --tokenizer=<.model "
                            "or vocab.txt>")
        tok = tokenizer_of_run(os.getcwd(), config.to_dict(), override)
        model = config.model.to_dict()
        vocab = int(model.pop("vocab_size", -1))
        cfg = ModelConfig.from_config(model, vocab_size=tok.vocab_size if vocab == -1 else vocab)
    if tok.vocab_size > cfg.vocab_size:
        raise UserError(f"the tokenizer has {tok.vocab_size} tokens but the model's word table {cfg.vocab_size}; "
                        "pass the tokenizer the model was made for")
    return model_lib.Pretrained(cfg, {}, tok, {"kind": "random", **source})


def _checkpoint_shape(checkpoint_dir: str, step: int, override: str) -> tuple:
    """(ModelConfig, tokenizer) of a checkpoint from its meta item alone (config and parameter shapes)."""
    from sas_jax import checkpoint_damage, checkpointing  # noqa: PLC0415
    from sas_jax.data.corpus import tokenizer_of_run  # noqa: PLC0415
    from sas_jax.models.config import ModelConfig  # noqa: PLC0415

    step_dir, step = checkpointing.resolve_step(checkpoint_dir, step)
    with checkpoint_damage.explained(checkpoint_dir, step):
        meta = checkpointing._read_meta_item(step_dir)
    config = meta.get("config", {}) or {}
    shape = (meta.get("param_shapes", {}) or {}).get(WORD_TABLE)
    if not shape:
        raise UserError(f"{step_dir} records no word table shape (param_shapes); is it a pre-training checkpoint "
                        "of this package?")
    model = dict(config.get("model", {}))
    model.pop("vocab_size", None)
    try:
        cfg = ModelConfig.from_config(model, vocab_size=int(shape[0]))
    except ValueError as e:
        raise UserError(f"{step_dir}: its model config cannot be read ({e})") from None
    workdir = os.path.dirname(checkpointing._checkpoints_root(checkpoint_dir))
    return cfg, tokenizer_of_run(workdir, config, override)
