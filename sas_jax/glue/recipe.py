"""The GLUE fine-tuning recipe of the paper (Table 6) as one ConfigDict per task.

`configs/glue.py:task=<task>[,base][,tiny]` is `task_config(task, base=..., tiny=...)`:
`base` is the Base learning-rate grid, `tiny` is for tests (short inputs, few
epochs, one seed, a high learning rate).

Steps and warm-up derive from the dataset size: steps/epoch = ceil(train_size /
batch_size), total = epochs · steps/epoch, warm-up = int(0.1 · total), as the
reference (`derive_steps`). `data.train_size` holds the GLUE count; a run on
other data uses the number of rows it actually loaded.
"""
from __future__ import annotations

import math

import ml_collections

from sas_jax.errors import UserError
from sas_jax.glue.tasks import get_task

LEARNING_RATES = {"small": (1e-4, 7.5e-5), "base": (7.5e-5, 5e-5)}  # Table 6


def task_config(task: str, *, base: bool = False, tiny: bool = False) -> ml_collections.ConfigDict:
    """The recipe of one task; ValueError (one line) for an unknown or missing task."""
    if not task:
        raise ValueError("no GLUE task given; add task=<name> to the variant, e.g. configs/glue.py:task=cola")
    try:
        spec = get_task(task)
    except UserError as e:  # a config file reports a bad variant as ValueError
        raise ValueError(str(e)) from None
    c = ml_collections.ConfigDict()
    c.task = spec.name  # GLUE task key (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte) or a task file's name

    c.init_from = ml_collections.ConfigDict()
    c.init_from.checkpoint_dir = ""  # pre-training --workdir (or its checkpoints/ folder)
    c.init_from.step = -1  # checkpoint step; -1 = the latest
    c.init_from.hf_folder = ""  # or a Hugging Face folder (ELECTRA/BERT/DebertaV2), via convert.import_hf
    c.init_from.tokenizer = ""  # override: .model or vocab.txt (default: the run's corpus / the HF folder's)
    c.init_from.init = "pretrained"  # or "random": that encoder's shape and tokenizer, initialiser weights (glue/random_init.py)
    c.init_from.model_config = ""  # init=random only: take the shape from configs/<name>.py[:variant] instead

    c.data = ml_collections.ConfigDict()
    c.data.glue_dir = ""  # folder with CoLA/, SST-2/, ... {train,dev,test}.tsv
    c.data.tfds_data_dir = ""  # or a tensorflow-datasets data_dir holding glue/<task>
    c.data.task_file = spec.file  # a task given by files: its task.json (docs/tasks.md); "" for GLUE
    c.data.max_seq_length = 128  # [CLS] a [SEP] (b [SEP]), longer segment truncated first
    # A GLUE TSV row of train/dev with too few columns, a label outside the task's, or an empty
    # text: refused naming file and line (False), or left out with a count (True; the official
    # QQP train.tsv has such rows; docs/cli.md).
    c.data.skip_bad_rows = False
    c.data.train_size = spec.train_size  # GLUE train rows (a task file's: its own): steps and warm-up derive from it
    c.data.dev_size = sum(spec.dev_sizes.values())  # GLUE dev rows (all dev splits)

    # The sweep grid (Table 6) and this run's point in it.
    c.learning_rates = LEARNING_RATES["base" if base else "small"]
    c.batch_sizes = (32,)  # Table 6 lists {16, 32}; add 16 with --batch_sizes=16,32
    c.num_seeds = spec.num_seeds  # 5 CoLA/MRPC/STS-B/RTE, 3 QNLI/SST-2, 1 MNLI/QQP
    c.learning_rate = c.learning_rates[0]  # peak, after linear warm-up; linear decay to 0
    c.batch_size = 32
    c.seed = 0  # head init, dropout and data order
    c.num_epochs = spec.num_epochs  # 20 CoLA/MRPC/STS-B/RTE, 4 the others
    c.warmup_fraction = 0.1  # warm-up steps = int(fraction · total steps)
    c.eval_batch_size = 128

    c.opt = ml_collections.ConfigDict()
    c.opt.b1 = 0.9
    c.opt.b2 = 0.999
    c.opt.eps = 1e-6  # Table 6 (the reference code left torch's 1e-8)
    c.opt.weight_decay = 0.0  # Table 6 (the reference code used 0.01); not on biases/LayerNorm
    c.opt.grad_clip_norm = 1.0  # global norm, as the reference; <= 0 disables

    c.dropout_rate = 0.1  # hidden dropout in the encoder and the head (Table 6)
    c.attention_dropout_rate = 0.1
    c.num_devices = -1  # data-parallel devices of this host; -1 = all
    c.log_every_steps = 0  # > 0: print train loss every K steps (else once per epoch)

    if tiny:
        c.data.max_seq_length = 32
        c.learning_rates = (5e-3,)  # a 32-wide encoder learns the fixtures in a few dozen steps
        c.learning_rate = 5e-3
        c.batch_sizes = (8,)
        c.batch_size = 8
        c.eval_batch_size = 16
        c.num_seeds = 1
        c.num_epochs = 2
    return c


def derive_steps(config, train_rows: int | None = None) -> dict:
    """steps_per_epoch, num_train_steps, warmup_steps from the size (or `train_rows`)."""
    rows = int(train_rows if train_rows is not None else config.data.train_size)
    per_epoch = max(1, math.ceil(rows / int(config.batch_size)))
    total = per_epoch * int(config.num_epochs)
    return {"train_rows": rows, "steps_per_epoch": per_epoch, "num_train_steps": total,
            "warmup_steps": int(float(config.warmup_fraction) * total)}
