"""Real tensorflow-datasets builders for the tests, prepared as ArrayRecord without TensorFlow.

`build_text(data_dir, docs)` prepares `tiny_text` (one `text` field, plus `title`);
`build_glue(data_dir, rows)` prepares `glue/<task>` with the features of tfds' GLUE
builder (the text fields of `TaskSpec.tfds_keys`, `label` a ClassLabel or float32 for
STS-B, `idx` int32) and its split names (validation*, test*). Both call tfds' own
`download_and_prepare(file_format="array_record")`; nothing is downloaded. The
classes are defined outside tfds' registry (the real `glue` builder owns that name).
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import registered

from sas_jax.glue.tasks import SPECS

with registered.skip_registration():

    class TinyText(tfds.core.GeneratorBasedBuilder):
        """Documents given to the constructor, one example each."""

        VERSION = tfds.core.Version("1.0.0")

        def __init__(self, *, docs, **kw):
            self._docs = docs
            super().__init__(**kw)

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "title": tfds.features.Text()}))

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(docs) for split, docs in self._docs.items()}

        def _generate_examples(self, docs):
            for i, doc in enumerate(docs):
                yield i, {"text": doc, "title": f"doc {i}"}

    class Glue(tfds.core.GeneratorBasedBuilder):
        """glue/<task> with the real builder's name, version, features and splits."""

        name = "glue"
        VERSION = tfds.core.Version("2.0.0")
        BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=t) for t in SPECS]

        def __init__(self, *, rows, **kw):
            self._rows = rows  # {our split name: [(a, b, label)]}
            super().__init__(**kw)

        def _spec(self):
            return SPECS[self.builder_config.name]

        def _info(self):
            spec = self._spec()
            ka, kb = spec.tfds_keys
            feats = {ka: tfds.features.Text(), "idx": np.int32,
                     "label": np.float32 if spec.is_regression else tfds.features.ClassLabel(
                         num_classes=spec.num_labels)}
            if kb:
                feats[kb] = tfds.features.Text()
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(feats))

        def _split_generators(self, dl_manager):
            return {split.replace("dev", "validation"): self._generate_examples(rows)
                    for split, rows in self._rows.items()}

        def _generate_examples(self, rows):
            ka, kb = self._spec().tfds_keys
            for i, (a, b, label) in enumerate(rows):
                ex = {ka: a, "idx": i, "label": label}
                if kb:
                    ex[kb] = b
                yield i, ex


def build_text(data_dir, docs) -> None:
    """`docs`: a list (the train split) or {split: list of documents}."""
    docs = docs if isinstance(docs, dict) else {"train": docs}
    TinyText(docs=docs, data_dir=str(data_dir), file_format="array_record").download_and_prepare()


def build_glue(data_dir, task: str, rows) -> None:
    """`rows`: {split (ours: train, dev, test, dev_matched...): [(a, b, label)]}."""
    Glue(rows=rows, config=task, data_dir=str(data_dir), file_format="array_record").download_and_prepare()
