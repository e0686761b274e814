"""Reading a pre-training run's scalars: TensorBoard event files and metrics.jsonl agree."""
import os

import numpy as np

from sas_jax.analysis import logs


def test_tensorboard_scalars_match_metrics_jsonl(tiny_workdir):
    workdir = tiny_workdir
    tb = logs.read_scalars(workdir)
    js = logs.read_jsonl_scalars(os.path.join(workdir, "metrics.jsonl"))
    for tag in ("train/mlm_loss", "train/rtd_accuracy", "sas/rtd_lambda", "sas/replaced_rate", "opt/learning_rate"):
        np.testing.assert_array_equal(tb[tag][0], js[tag][0])
        np.testing.assert_allclose(tb[tag][1], js[tag][1], rtol=1e-6)
    assert tb["train/mlm_loss"][0].tolist() == [1, 2, 3, 4]
