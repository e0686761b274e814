"""Experiment configs: the one loader, the one override parser, and the shared pieces.

Every file under `configs/` is one experiment: `get_config(arg)` returns an
`ml_collections.ConfigDict`. The argument after the colon in
`--config=configs/sas_small.py:tiny` selects a variant; `parse_arg` turns it into
typed values and rejects unknown keys (like big_vision's `configs/common.py`).

    config = load_config("sas_small:tiny", ["opt.learning_rate=5e-4"])   # or configs/sas_small.py:tiny
    override(config, "sas.position_policy=keep")

`load_config` is what every tool outside the absl entry point uses (GLUE, the
planner, benchmarks, tests); `python -m sas_jax.main` loads the same files through
absl's `config_flags`, and every CLI takes overrides as `--config.KEY=VALUE`.
"""
from __future__ import annotations

import difflib
import importlib.util
import os
import pathlib
from collections.abc import Sequence

import ml_collections

from sas_jax.errors import UserError

# The repository's experiment configs: a bare name such as `sas_small` means CONFIG_DIR/sas_small.py.
CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"

def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses `"tiny,steps=100"` into typed values, with `defaults` giving the types.

    A bare word sets a boolean to True. Unknown keys and badly typed values raise a
    one-line ValueError naming the key and the known ones.
    """
    out = ml_collections.ConfigDict(dict(defaults))
    if not arg:
        return out
    for item in arg.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition("=")
        if key not in defaults:
            raise ValueError(
                f"unknown config variant {key!r}{_did_you_mean(key, defaults)}; known: {', '.join(sorted(defaults))}"
            )
        kind = type(defaults[key])
        if not _:
            if kind is not bool:
                raise ValueError(f"config variant {key!r} needs a value: {key}=<{kind.__name__}>")
            out[key] = True
            continue
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            else:
                out[key] = kind(value)
        except ValueError:
            raise ValueError(
                f"config variant {key}={value!r} is not a {kind.__name__}"
            ) from None
    return out


# --------------------------------------------------------------------------- model


def encoder_shape_config(size: str = "small") -> ml_collections.ConfigDict:
    """Encoder shape of the paper's Table 5 (Small or Base)."""
    if size == "small":
        hidden, layers, heads, ffn, emb = 256, 12, 4, 1024, 256
    elif size == "base":
        hidden, layers, heads, ffn, emb = 768, 12, 12, 3072, 768
    else:
        raise ValueError(f"unknown model size {size!r}; use 'small' or 'base'")
    m = ml_collections.ConfigDict()
    m.vocab_size = 30522  # tokens; -1 = take it from the prepared corpus' tokenizer
    m.hidden_size = hidden  # width of the encoder
    m.embedding_size = emb  # width of the embedding tables; != hidden adds a projection
    m.num_layers = layers  # encoder layers
    m.num_heads = heads  # attention heads
    m.head_dim = 64  # features per head (kqv = num_heads * head_dim)
    m.intermediate_size = ffn  # FFN width
    m.max_position_embeddings = 512  # rows of the absolute position table
    m.type_vocab_size = 2  # token-type rows
    m.dropout_rate = 0.1  # on hidden states
    m.attention_dropout_rate = 0.1  # on attention probabilities
    m.layer_norm_eps = 1e-12  # embeddings and encoder layers
    m.mlm_layer_norm_eps = 1e-5  # the MLM head's LayerNorm
    m.dtype = "float32"  # compute dtype: float32 or bfloat16 (parameters stay float32)
    m.attention_impl = "xla"  # xla | cudnn (fused, GPU) | auto
    m.remat = "none"  # none | full | dots: rematerialisation policy per layer
    m.pre_layer_norm = False  # True: pre-LN layers + final LayerNorm (a departure from the paper's post-LN)
    m.attention_type = "absolute"  # absolute (BERT/ELECTRA/SAS) | disentangled (DebertaV2, SASDA)
    m.position_biased_input = True  # add absolute position embeddings at the input (DA: False)
    m.position_buckets = 256  # DA: log-bucketed relative span S, table of 2S rows (<= 0: no buckets)
    m.max_relative_positions = -1  # DA: M the buckets are fitted to; < 1 = max_position_embeddings
    m.share_att_key = True  # DA: project the relative table with each layer's own query/key
    m.pos_att_type = "c2p|p2c"  # DA: relative score terms, "|"-separated subset of c2p, p2c
    m.norm_rel_ebd = "layer_norm"  # DA: layer_norm | none on the relative table
    m.enhanced_mask_decoder = False  # DA: MLM head reads DeBERTa's EMD (absolute positions + last layer twice)
    m.generator_ratio = 0.25  # ELECTRA: generator width / discriminator width (heads = width/64, FFN 4x)
    m.embedding_sharing = "shared"  # ELECTRA-DA: shared | gdes (discriminator reads stop_gradient(E_G) + E_delta)
    return m


def optimizer_config(lr: float, warmup_steps: int) -> ml_collections.ConfigDict:
    o = ml_collections.ConfigDict()
    o.learning_rate = lr  # peak learning rate
    o.warmup_steps = warmup_steps  # linear warm-up from 0, in steps
    o.weight_decay = 0.01  # decoupled, not on biases / LayerNorm
    o.b1 = 0.9
    o.b2 = 0.999
    o.eps = 1e-6
    o.grad_clip_norm = 1.0  # global gradient norm; <= 0 disables
    return o


def sas_config(lambda_schedule: str = "epochwise") -> ml_collections.ConfigDict:
    s = ml_collections.ConfigDict()
    s.cold_start = "unigram"  # unigram | uniform | mask | mlm (BERT 80/10/10, no RTD loss): first visits
    s.cold_start_epochs = 1  # epochs whose every visit is a cold start, before the model's samples take over
    s.warmup_steps = 4000  # steps drawing from sqrt-unigram before plain unigram
    s.temperature = 1.0  # sampling temperature T of softmax(logits / T)
    s.lambda_schedule = lambda_schedule  # constant | epochwise
    s.lambda_start = 50.0  # RTD weight in the first epoch (the constant for SASc)
    s.lambda_end = 200.0  # RTD weight in the last epoch (epochwise only)
    s.position_policy = "official"  # official | keep | refill (docs/design.md)
    s.mask_rate = 0.15  # fraction of non-pad tokens selected: round(rate * n), whole words
    s.max_predictions = 20  # static MLM slots per row (P); must be >= round(rate * L)
    return s


def objective_config(corruption: str = "sas", *, mlm: bool = True, rtd: bool = True) -> ml_collections.ConfigDict:
    """What the pre-training objective is made of; every paper row is a setting of these.

    The selected positions use `sas.mask_rate` and the `sas.max_predictions` slots for
    every corruption; λ of the RTD loss is `sas.lambda_*` for every row with `rtd`.
    """
    o = ml_collections.ConfigDict()
    # sas: self-augmentation (cold start from sas.cold_start, then the model's own samples);
    # bert: fresh whole words every visit, 80% [MASK] / 10% random / 10% unchanged; unigram /
    # uniform: fresh whole words filled with context-free draws every visit, never from the
    # model; electra: ELECTRA's slots (with replacement), 85% [MASK], + a generator network.
    o.corruption = corruption
    o.mlm = mlm  # MLM head and loss (at the gathered slots)
    o.rtd = rtd  # RTD head and loss (every position), weighted by λ (sas.lambda_*)
    # bert/electra: share of the selected positions set to [MASK]
    o.mask_token_rate = 0.85 if corruption == "electra" else 0.8
    # bert: share set to a uniform id over the full vocabulary (the rest stays unchanged)
    o.random_token_rate = 0.1 if corruption == "bert" else 0.0
    return o


def set_objective(c: ml_collections.ConfigDict, corruption: str, *, mlm: bool = True, rtd: bool = True,
                  lambda_schedule: str | None = None, lambda_start: float = 50.0, lambda_end: float = 200.0):
    """Sets `c.objective` (and the λ schedule of its RTD loss) for one paper row."""
    c.objective = objective_config(corruption, mlm=mlm, rtd=rtd)
    if lambda_schedule is not None:
        c.sas.lambda_schedule, c.sas.lambda_start, c.sas.lambda_end = lambda_schedule, lambda_start, lambda_end
    return c


def use_bert_head(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """BERT's MLM transform LayerNorm uses the encoder's eps (1e-12), not the framework default."""
    c.model.mlm_layer_norm_eps = c.model.layer_norm_eps
    return c


def use_disentangled_attention(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The DeBERTa-style (DebertaV2) DA encoder of docs/reference.md §9.5 (DeBERTa, SASDA rows)."""
    m = c.model
    m.attention_type = "disentangled"
    m.position_biased_input = False  # relative positions only
    m.type_vocab_size = 0  # no token-type table
    m.layer_norm_eps = 1e-7
    m.position_buckets = 256
    m.max_relative_positions = -1
    m.share_att_key = True
    m.pos_att_type = "c2p|p2c"
    m.norm_rel_ebd = "layer_norm"
    return c


def use_electra(c: ml_collections.ConfigDict, *, embedding_size: int, generator_ratio: float):
    """ELECTRA: generator + discriminator with shared embeddings, MLM + 50·RTD (constant)."""
    set_objective(c, "electra", mlm=True, rtd=True, lambda_schedule="constant", lambda_start=50.0)
    c.model.embedding_size = embedding_size
    c.model.generator_ratio = generator_ratio
    c.model.mlm_layer_norm_eps = c.model.layer_norm_eps  # unused: the generator head takes layer_norm_eps
    return c


def apply_variants(c: ml_collections.ConfigDict, v: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The `demo` and `tiny` variants parsed by `parse_arg` (either may be absent)."""
    if v.get("demo", False):
        make_demo(c)
    if v.get("tiny", False):
        shrink_to_tiny(c)
    return c


def base_config(size: str = "small", lambda_schedule: str = "epochwise"):
    """The SAS pre-training config of the paper (Table 5) at the given size."""
    c = ml_collections.ConfigDict()
    c.seed = 99  # initialisation, dropout, sampling and data order all derive from it
    c.note = ""  # printed at the start of the run (e.g. how a config departs from the paper)
    c.model = encoder_shape_config(size)
    if size == "small":
        c.batch_size = 512  # global batch, rows
        c.seq_len = 128  # tokens per row
        c.num_train_steps = 250_000
        c.opt = optimizer_config(1e-3, 10_000)
    else:
        c.batch_size = 256
        c.seq_len = 512
        c.num_train_steps = 833_000
        c.opt = optimizer_config(2e-4, 10_000)
    c.objective = objective_config()
    c.sas = sas_config(lambda_schedule)
    if size == "base":
        c.sas.max_predictions = 80

    c.data = ml_collections.ConfigDict()
    c.data.corpus_dir = ""  # output folder of `python -m sas_jax.prepare`
    c.data.shuffle = "once"  # once (reference: fixed order every epoch) | per_epoch
    c.data.prefetch = 4  # batches built ahead of the device
    c.data.prepare = ml_collections.ConfigDict()  # demo only: how to build the corpus
    c.data.prepare.text_files = ""  # comma-separated text files to prepare into corpus_dir
    c.data.prepare.vocab_size = 0  # >0: train a SentencePiece model of this size
    c.data.prepare.tokenizer = ""  # path of a .model (SentencePiece) or vocab.txt
    c.data.prepare.max_rows = 0  # >0: keep only the first rows of the prepared corpus
    c.data.prepare.packing = "document"  # document (rows never cross a document) | stream
    c.data.eval_rows = 2048  # rows held out for evaluation (a fixed subset, never trained on); 0 = none

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # devices along the data axis; -1 = all that are left
    c.mesh.fsdp = 1  # devices along the fsdp axis
    c.mesh.tensor = 1  # devices along the tensor axis
    c.mesh.rules = "data_parallel"  # key of sharding.SHARDING_RULES

    c.ckpt = ml_collections.ConfigDict()
    c.ckpt.every_steps = 5000  # save every K steps (and at the end)
    c.ckpt.keep = 3  # checkpoints kept
    c.ckpt.async_save = True  # write in the background
    # Resume refuses a config that differs from the checkpoint's run (sas_jax/run_identity.py);
    # listed keys or sections (e.g. "num_train_steps,opt") may differ on purpose.
    c.ckpt.allow_changes = ""

    c.log = ml_collections.ConfigDict()
    c.log.every_steps = 100  # console and TensorBoard cadence
    c.log.tensorboard = True
    c.log.eval_every_steps = 10_000  # held-out evaluation cadence (and at the end); 0 = at the end only
    c.log.compilation_cache = True  # keep compiled steps in ~/.cache/sas_jax/jax (sas_jax/startup.py)
    c.log.profile_steps = ""  # "N,M": a jax.profiler trace of steps N..M in <workdir>/profile (sas_jax/profiling.py)
    return c


def shrink_to_tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The `tiny` variant used by tests: same structure, toy sizes."""
    c.model.vocab_size = 128
    c.model.embedding_size = 32 if c.model.embedding_size == c.model.hidden_size else 16  # keep E == H (or not)
    c.model.hidden_size = 32
    c.model.num_layers = 2
    c.model.num_heads = 2
    c.model.head_dim = 16
    c.model.intermediate_size = 64
    c.model.max_position_embeddings = 64
    c.batch_size = 8
    c.seq_len = 32
    c.sas.max_predictions = 6
    c.sas.warmup_steps = 5
    c.num_train_steps = 20
    c.opt.warmup_steps = 2
    c.ckpt.every_steps = 10
    c.log.every_steps = 5
    c.data.eval_rows = 0  # test corpora are tiny; tests that evaluate set it
    return c


# The demo variant's corpus folder (inside the workdir): the one place a run prepares its own
# corpus (`data.prepare.text_files`); any other `data.corpus_dir` must hold a prepared corpus.
DEMO_CORPUS_DIR = "demo_corpus"


def make_demo(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The `demo` variant: bundled corpus, a small SentencePiece vocab, a CPU-sized model."""
    c.model.vocab_size = -1  # from the trained tokenizer
    c.model.embedding_size = 128 if c.model.embedding_size == c.model.hidden_size else 64  # keep E == H (or not)
    c.model.hidden_size = 128
    c.model.num_layers = 2
    c.model.num_heads = 2
    c.model.intermediate_size = 512
    c.model.max_position_embeddings = 128
    c.batch_size = 32
    c.seq_len = 64
    c.sas.max_predictions = 10
    c.sas.warmup_steps = 100
    c.num_train_steps = 600  # ~1 min of 2 CPU cores after the corpus is prepared
    c.opt.learning_rate = 1e-3
    c.opt.warmup_steps = 100
    c.data.corpus_dir = DEMO_CORPUS_DIR  # relative to the workdir; prepared there on first use
    c.data.prepare.text_files = "data/demo/*.txt"
    c.data.prepare.vocab_size = 2000
    # The demo text's "documents" are speeches and stanzas (median 11 words): packed alone,
    # half of every 64-token row would be [PAD]. Each file is a run of whole works, so the
    # stream is packed instead (rows cross a speech, rarely a work).
    c.data.prepare.packing = "stream"
    c.ckpt.every_steps = 200
    c.log.every_steps = 25
    c.data.eval_rows = 512
    c.log.eval_every_steps = 200
    return c


# --------------------------------------------------------------------------- loading


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """`"path.py[:variant]"` or `"name[:variant]"` (a file of `configs/`) → its
    `get_config(variant)` with each `"a.b=v"` of `overrides` applied by `override`.

    A missing file, a file without `get_config` and a bad variant raise a one-line
    UserError naming the fix; nothing is written anywhere.
    """
    target, _, arg = str(spec).partition(":")
    path = _config_path(target.strip())
    name = "sas_jax_config_" + "".join(ch if ch.isalnum() else "_" for ch in str(path))
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise UserError(f"config file {path} cannot be read (line {e.lineno}: {e.msg}); fix the file") from None
    if not callable(getattr(module, "get_config", None)):
        raise UserError(f"config file {path} has no get_config(arg); it is not an experiment config")
    try:
        config = module.get_config(arg.strip() or None)
    except ValueError as e:
        where = f"{path.name}:{arg.strip()}" if arg.strip() else path.name
        raise UserError(f"{where}: {' '.join(str(e).split())}") from None
    for item in overrides or ():
        override(config, item)
    return config


def _config_path(target: str) -> pathlib.Path:
    if not target:
        raise UserError("no config given; pass a file such as configs/sas_small.py or a name such as sas_small")
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = pathlib.Path(target)
        if not path.is_file():
            raise UserError(f"config file {target} not found; pass an existing file such as "
                            f"configs/sas_small.py (or a name of {CONFIG_DIR})")
        return path
    path = CONFIG_DIR / f"{target}.py"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.name.startswith("_"))
        raise UserError(f"config {target!r} is not in {CONFIG_DIR}{_did_you_mean(target, known)}; "
                        f"known: {', '.join(known)}")
    return path


def override(config: ml_collections.ConfigDict, item: str) -> None:
    """Applies one `"a.b=value"` to `config`, typed by the field's current value.

    bool: true/false/1/0 (any case); int; float; str (taken as is); tuple/list:
    comma-separated, each element of the first element's type (float if empty).
    An unknown key (with a "did you mean" hint), a group instead of a field, or a
    value the field's type cannot take raises a one-line UserError.
    """
    key, sep, text = str(item).partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"config override {item!r} must look like KEY=VALUE, e.g. opt.learning_rate=5e-4")
    node = config
    *groups, field = key.split(".")
    for depth, part in enumerate(groups):
        child = node.get(part, None) if isinstance(node, ml_collections.ConfigDict) else None
        if not isinstance(child, ml_collections.ConfigDict):
            if isinstance(node, ml_collections.ConfigDict) and part in node:
                raise UserError(f"config key {'.'.join(groups[:depth + 1])!r} is a field, not a group; "
                                f"cannot set {key!r}")
            raise _unknown_key(config, key)
        node = child
    if field not in node:
        raise _unknown_key(config, key)
    current = node[field]
    if isinstance(current, ml_collections.ConfigDict):
        raise UserError(f"config key {key!r} is a group; set one of its fields, e.g. "
                        f"{key}.{sorted(current)[0] if len(current) else '<field>'}=<value>")
    value = _typed(key, text, current)
    if isinstance(node, ml_collections.FrozenConfigDict):
        raise UserError(f"cannot set {key!r}: the config is frozen")
    with node.ignore_type():  # the type was checked above; ints may land in float fields
        node[field] = value


def _typed(key: str, text: str, current):
    """`text` as the type of `current`; UserError naming key, value and type when it cannot be."""
    kind = type(current)
    try:
        if isinstance(current, str) or current is None:
            return text
        text = text.strip()
        if isinstance(current, bool):
            return _parse_bool(text)
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, (tuple, list)):
            inner = text[1:-1] if text[:1] + text[-1:] in ("()", "[]") else text
            elem = type(current[0]) if current else float
            parse = _parse_bool if elem is bool else elem
            return kind(parse(v.strip()) for v in inner.split(",") if v.strip())
    except ValueError:
        pass
    else:
        raise UserError(f"config key {key!r} holds a {kind.__name__}, which cannot be set from the command line")
    expected = {bool: "a bool (true/false/1/0)", int: "an int", float: "a float"}.get(kind, kind.__name__)
    if isinstance(current, (tuple, list)):
        elem = type(current[0]).__name__ if current else "float"
        expected = f"a comma-separated list of {elem}"
    raise UserError(f"config {key}={text!r} is not valid: {key} takes {expected} (it is now {current!r})")


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low not in ("true", "false", "1", "0"):
        raise ValueError(text)
    return low in ("true", "1")


def _flat_keys(config, prefix: str = "") -> list:
    out = []
    for k, v in config.items():
        out.append(prefix + k)
        if isinstance(v, ml_collections.ConfigDict):
            out += _flat_keys(v, prefix + k + ".")
    return out


def _did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(config, key: str) -> UserError:
    return UserError(f"unknown config key {key!r}{_did_you_mean(key, _flat_keys(config))}; "
                     "see the config file's fields (and their comments)")
