"""GLUE fine-tuning and evaluation with the paper's recipe (Table 6).

| module | holds |
|---|---|
| `tasks` | the eight tasks: labels, metrics, sizes, TSV/tfds layouts |
| `data` | loading (GLUE TSV folders or tfds), `[CLS] a [SEP] (b [SEP])` encoding, batches |
| `model` | `GlueModel` (encoder + classification head), loading checkpoints / HF folders |
| `recipe` | the per-task ConfigDict behind `configs/glue/<task>.py`, step derivation |
| `metrics` | numpy MCC, F1, Pearson, Spearman, per-task scores, GLUE score, mean ± std |
| `finetune` | one run: pure jitted step, per-epoch dev evaluation, best-epoch selection |
| `sweep` | grid × seeds with resume, tables, GLUE-vs-steps curves, the CLI |
| `results`, `plots`, `logs`, `probe` | tables, figures, TensorBoard reading, fill-mask / RTD probing |
"""
from sas_jax.glue.tasks import SPECS, TASKS, get_task

__all__ = ["SPECS", "TASKS", "get_task"]
