"""Reading a pre-training run's scalars: TensorBoard event files and metrics.jsonl agree."""
import os

import numpy as np
import pytest

from sas_jax.analysis import logs
from sas_jax.errors import UserError


def test_tensorboard_scalars_match_metrics_jsonl(tiny_workdir):
    workdir = tiny_workdir
    tb = logs.read_scalars(workdir)
    js = logs.read_jsonl_scalars(os.path.join(workdir, "metrics.jsonl"))
    for tag in ("train/mlm_loss", "train/rtd_accuracy", "sas/rtd_lambda", "sas/replaced_rate", "opt/learning_rate"):
        np.testing.assert_array_equal(tb[tag][0], js[tag][0])
        np.testing.assert_allclose(tb[tag][1], js[tag][1], rtol=1e-6)
    assert tb["train/mlm_loss"][0].tolist() == [1, 2, 3, 4]


def _write_events(logdir, suffix, points, purge_step=None):
    from tensorboardX import SummaryWriter  # noqa: PLC0415

    w = SummaryWriter(str(logdir), filename_suffix=suffix, purge_step=purge_step)
    for step, value in points:
        w.add_scalar("train/mlm_loss", value, step)
    w.close()


def test_event_files_are_read_by_tensorboard_and_a_resumed_step_keeps_the_later_value(tmp_path):
    assert logs.have_tensorboard()  # the [test] extra installs it (pip install 'sas_jax[logs]')
    logdir = tmp_path / "tensorboard"
    _write_events(logdir, ".first", [(s, float(s)) for s in range(1, 6)])
    _write_events(logdir, ".resumed", [(s, 10.0 + s) for s in range(4, 8)], purge_step=4)
    first, resumed = sorted(logdir.iterdir())
    os.utime(first, (1, 1))  # oldest first, by mtime
    scalars = logs.read_scalars(str(tmp_path))
    assert scalars["train/mlm_loss"][0].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert scalars["train/mlm_loss"][1].tolist() == [1, 2, 3, 14, 15, 16, 17]
    assert [e.step for e in logs.iter_events(str(resumed)) if e.summary.value] == [4, 5, 6, 7]


def test_a_damaged_record_is_dropped_not_misread(tmp_path):
    """TensorBoard's reader checks each record's CRC: a flipped byte loses that point only."""
    logdir = tmp_path / "tensorboard"
    _write_events(logdir, ".x", [(s, float(s)) for s in range(1, 5)])
    (path,) = logdir.iterdir()
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # inside the last record's payload
    path.write_bytes(bytes(data))
    steps, values = logs.read_scalars(str(tmp_path))["train/mlm_loss"]
    assert steps.tolist() == [1, 2, 3] and values.tolist() == [1.0, 2.0, 3.0]


def test_without_tensorboard_metrics_jsonl_is_read(tmp_path, monkeypatch):
    _write_events(tmp_path / "tensorboard", ".x", [(1, 9.0)])
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "mlm_loss": 2.5}\n{"step": 2, "mlm_loss": 2.0}\n')
    monkeypatch.setattr(logs, "have_tensorboard", lambda: False)
    steps, values = logs.read_scalars(str(tmp_path))["train/mlm_loss"]
    assert steps.tolist() == [1, 2] and values.tolist() == [2.5, 2.0]
    (tmp_path / "metrics.jsonl").unlink()
    with pytest.raises(UserError, match="pip install tensorboard"):
        logs.read_scalars(str(tmp_path))


@pytest.mark.slow
def test_the_event_writer_loads_without_torch_and_torch_still_imports_after(tmp_path):
    """tensorboardX imports torch when it is installed (seconds per training process); the
    writer is loaded without it, its events read back, and torch imports normally afterwards.
    A fresh interpreter: this one may hold torch already."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = ("import sys; from sas_jax import metrics_log\n"
            "W = metrics_log.summary_writer_class(); assert 'torch' not in sys.modules\n"
            f"w = W({str(tmp_path / 'tensorboard')!r}); w.add_scalar('train/mlm_loss', 2.5, 3); w.close()\n"
            "import importlib.util\n"
            "if importlib.util.find_spec('torch'): import torch; assert torch.ones(2).sum() == 2\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    steps, values = logs.read_scalars(str(tmp_path))["train/mlm_loss"]
    assert steps.tolist() == [3] and values.tolist() == [2.5]
