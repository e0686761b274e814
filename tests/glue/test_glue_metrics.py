"""GLUE metrics (numpy) agree with scipy and scikit-learn; the GLUE score and mean ± std."""
import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as skm

from sas_jax.glue import metrics
from sas_jax.glue.tasks import TASKS


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y, p = rng.integers(0, 2, n), rng.integers(0, 2, n)
    p[: n // 3] = y[: n // 3]  # correlated, not identical
    assert metrics.accuracy(p, y) == pytest.approx(skm.accuracy_score(y, p))
    assert metrics.f1_binary(p, y) == pytest.approx(skm.f1_score(y, p))
    assert metrics.matthews_corrcoef(p, y) == pytest.approx(skm.matthews_corrcoef(y, p))
    y3, p3 = rng.integers(0, 3, n), rng.integers(0, 3, n)
    p3[: n // 2] = y3[: n // 2]
    assert metrics.matthews_corrcoef(p3, y3) == pytest.approx(skm.matthews_corrcoef(y3, p3))


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 200))
    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n)
    assert metrics.pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y)[0], abs=1e-12)
    assert metrics.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-12)
    # Ties (STS-B labels are multiples of 0.2): average ranks, as scipy.
    xt, yt = np.round(x * 2) / 2, np.round(y * 5) / 5
    np.testing.assert_allclose(metrics.rankdata(xt), scipy.stats.rankdata(xt))
    assert metrics.spearman(xt, yt) == pytest.approx(scipy.stats.spearmanr(xt, yt)[0], abs=1e-12)


def test_degenerate_inputs_give_zero_not_nan():
    y = np.array([0, 1, 0, 1])
    assert metrics.matthews_corrcoef(np.zeros(4), y) == 0.0
    assert metrics.pearson(np.ones(4), np.arange(4)) == 0.0
    assert metrics.f1_binary(np.zeros(4), np.zeros(4)) == 0.0


def test_task_metrics_and_reported_scores():
    y = np.array([0, 1, 1, 0, 1, 0])
    p = np.array([0, 1, 0, 0, 1, 1])
    cola = metrics.task_metrics("cola", p, y)
    assert cola["score"] == cola["selection"] == pytest.approx(skm.matthews_corrcoef(y, p))
    mrpc = metrics.task_metrics("MRPC", p, y)
    assert mrpc["score"] == mrpc["selection"] == pytest.approx(4 / 6)
    assert mrpc["f1"] == pytest.approx(skm.f1_score(y, p))
    x = np.array([0.1, 2.0, 3.3, 4.0, 1.0])
    t = np.array([0.0, 2.5, 3.0, 5.0, 0.8])
    stsb = metrics.task_metrics("sts-b", x, t)
    assert stsb["selection"] == pytest.approx(scipy.stats.pearsonr(x, t)[0])
    assert stsb["score"] == pytest.approx((scipy.stats.pearsonr(x, t)[0] + scipy.stats.spearmanr(x, t)[0]) / 2)
    mnli = metrics.combine_mnli({"accuracy": 0.8}, {"accuracy": 0.7})
    assert mnli["score"] == pytest.approx(0.75) and mnli["selection"] == 0.8


def test_glue_score_and_mean_std():
    scores = {t: 0.1 * (i + 1) for i, t in enumerate(TASKS)}
    assert metrics.glue_score(scores) == pytest.approx(0.45)
    assert metrics.glue_score({**scores, "rte": None}) is None
    v = [0.81, 0.84, 0.80, 0.83, 0.82]
    mean, std, n = metrics.mean_std(v)
    assert (mean, n) == (pytest.approx(np.mean(v)), 5) and std == pytest.approx(np.std(v, ddof=1))
    assert metrics.mean_std([0.5]) == (0.5, 0.0, 1)
