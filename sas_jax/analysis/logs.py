"""Reading a pre-training run's logs: TensorBoard event files (or metrics.jsonl).

`read_scalars(workdir)` → {tag: (steps, values)} for tags such as `train/mlm_loss`,
`train/rtd_accuracy`, `sas/rtd_lambda`, `sas/replaced_rate`, `opt/learning_rate`.
The event files are read by TensorBoard's own reader
(`tensorboard.backend.event_processing.event_accumulator.EventAccumulator`: record
framing and CRCs checked, a truncated tail ignored, TensorFlow not needed), installed by
`pip install 'sas_jax[logs]'` (Colab has it). Without `tensorboard`, or with no event
files, the run's `metrics.jsonl` (always written, same scalars) is read instead. A step
logged twice (a resumed run repeats the steps after its last checkpoint) keeps the later
value.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from sas_jax import metrics_log
from sas_jax.errors import UserError
from sas_jax.metrics_log import tag as tag_of


def have_tensorboard() -> bool:
    """Whether TensorBoard's event reader is importable (`pip install tensorboard`)."""
    try:
        from tensorboard.backend.event_processing import event_accumulator  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def iter_events(path: str):
    """Event protos of one `events.out.tfevents.*` file (TensorBoard's `EventFileLoader`)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: PLC0415

    yield from EventFileLoader(path).Load()


def read_event_scalars(paths) -> dict:
    """{tag: (steps, values)} of the scalars in these event files, read in the order given."""
    from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: PLC0415

    values: dict = {}
    for path in paths:
        acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0})  # 0: keep every point
        acc.Reload()
        for tag in acc.Tags().get(ea.SCALARS, []):
            for s in acc.Scalars(tag):
                values.setdefault(tag, {})[int(s.step)] = float(s.value)
    return _arrays(values)


def read_jsonl_scalars(path: str) -> dict:
    """{tag: (steps, values)} of a metrics.jsonl (`metrics_log.read_records`: torn lines skipped)."""
    values: dict = {}
    for d in metrics_log.read_records(path):
        step = int(d.pop("step"))
        for k, v in d.items():
            values.setdefault(tag_of(k), {})[step] = float(v)
    return _arrays(values)


def _arrays(values: dict) -> dict:
    out = {}
    for tag, by_step in values.items():
        steps = np.asarray(sorted(by_step), np.int64)
        out[tag] = (steps, np.asarray([by_step[s] for s in steps], np.float64))
    return out


def event_files(workdir: str) -> list:
    """`<workdir>/tensorboard/**/events.out.tfevents.*`, oldest first."""
    return sorted(glob.glob(os.path.join(workdir, "tensorboard", "**", "events.out.tfevents.*"),
                            recursive=True), key=os.path.getmtime)


def read_scalars(workdir: str) -> dict:
    """{tag: (steps, values)} of a pre-training workdir (TensorBoard, else metrics.jsonl)."""
    files = event_files(workdir)
    if files and have_tensorboard():
        scalars = read_event_scalars(files)
        if scalars:
            return scalars
    jsonl = os.path.join(workdir, "metrics.jsonl")
    if os.path.isfile(jsonl):
        return read_jsonl_scalars(jsonl)
    if files:
        raise UserError(f"{workdir} has TensorBoard event files but no metrics.jsonl, and tensorboard is not "
                        "installed to read them: pip install tensorboard")
    raise UserError(f"{workdir} has no tensorboard/events.out.tfevents.* nor metrics.jsonl; pass the "
                    "--workdir of a pre-training run")
