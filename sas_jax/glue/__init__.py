"""GLUE fine-tuning and evaluation with the paper's recipe (Table 6), and the same for
tasks given by files (a task.json beside TSV/CSV/JSONL files; docs/tasks.md).

| module | holds |
|---|---|
| `tasks` | the eight tasks: labels, metrics, sizes, TSV/tfds layouts; `get_task` also takes a task file |
| `user_task` | tasks given by files: the task.json format, reading and checking the files, their `TaskSpec` |
| `random_init` | the no-pre-training baseline (`--init=random`): a checkpoint's shape and tokenizer, no weights |
| `data` | loading (GLUE TSV folders or tfds), `[CLS] a [SEP] (b [SEP])` encoding, batches |
| `model` | `GlueModel` (encoder + classification head), the encoder of a checkpoint / HF folder |
| `recipe` | the per-task ConfigDict behind `configs/glue.py:task=<task>`, step derivation |
| `metrics` | numpy MCC, F1, Pearson, Spearman, per-task scores, GLUE score, mean ± std |
| `finetune` | one run: pure jitted step, per-epoch dev evaluation, best-epoch selection |
| `sweep` | grid × seeds with resume, tables, GLUE-vs-steps curves, the CLI |
| `predict` | test-set files for the GLUE server from a sweep's best runs (`glue predict`) |
| `kept_model` | the fine-tuned weights a sweep keeps (`models/<task>/best/`): format, selection, loading, `Predictor` |
| `predict_file` | labels a text/TSV/CSV/JSONL file with a kept model (`glue predict_file`) |
| `results`, `plots` | score tables; GLUE figures (task scores, GLUE vs pre-training steps) |

Checkpoints are read by `sas_jax.checkpointing`; probing, pre-training logs and
their figures are in `sas_jax.analysis`.
"""
from sas_jax.glue.tasks import SPECS, TASKS, get_task

__all__ = ["SPECS", "TASKS", "get_task"]
