"""Looking at a pre-training run after (or while) it trains; nothing here is GLUE.

| module | holds |
|---|---|
| `probe` | fill-mask from the MLM head, P(replaced) from the RTD head, of a finished checkpoint |
| `logs` | the run's scalars from its TensorBoard event files (or metrics.jsonl) |
| `plots` | pre-training curves, the RTD heat map, fill-mask bars (matplotlib, Agg) |

Checkpoints are read by `sas_jax.checkpointing.read_model`; GLUE results and their
figures are in `sas_jax.glue`.
"""
