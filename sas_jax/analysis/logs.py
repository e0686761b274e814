"""Reading a pre-training run's logs: TensorBoard event files (or metrics.jsonl).

`read_scalars(workdir)` → {tag: (steps, values)} for tags such as `train/mlm_loss`,
`train/rtd_accuracy`, `sas/rtd_lambda`, `sas/replaced_rate`, `opt/learning_rate`.
The event files are parsed with the protobufs tensorboardX ships (TFRecord framing:
length, crc, payload, crc), so neither TensorFlow nor tensorboard is needed. A step
logged twice (a resumed run repeats the steps after its last checkpoint) keeps the
later value.
"""
from __future__ import annotations

import glob
import json
import os
import struct

import numpy as np

from sas_jax.errors import UserError
from sas_jax.metrics_log import tag as tag_of


def iter_events(path: str):
    """Event protos of one `events.out.tfevents.*` file; a truncated tail is ignored."""
    from tensorboardX.proto import event_pb2  # noqa: PLC0415

    with open(path, "rb") as f:
        while True:
            head = f.read(12)
            if len(head) < 12:
                return
            (length,) = struct.unpack("<Q", head[:8])
            payload = f.read(length)
            if len(payload) < length or len(f.read(4)) < 4:
                return
            event = event_pb2.Event()
            event.ParseFromString(payload)
            yield event


def read_event_scalars(paths) -> dict:
    values: dict = {}
    for path in paths:
        for event in iter_events(path):
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    values.setdefault(v.tag, {})[int(event.step)] = float(v.simple_value)
    return _arrays(values)


def read_jsonl_scalars(path: str) -> dict:
    values: dict = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
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


def read_scalars(workdir: str) -> dict:
    """{tag: (steps, values)} of a pre-training workdir (TensorBoard, else metrics.jsonl)."""
    files = sorted(glob.glob(os.path.join(workdir, "tensorboard", "**", "events.out.tfevents.*"),
                             recursive=True), key=os.path.getmtime)
    if files:
        scalars = read_event_scalars(files)
        if scalars:
            return scalars
    jsonl = os.path.join(workdir, "metrics.jsonl")
    if os.path.isfile(jsonl):
        return read_jsonl_scalars(jsonl)
    raise UserError(f"{workdir} has no tensorboard/events.out.tfevents.* nor metrics.jsonl; pass the "
                    "--workdir of a pre-training run")
