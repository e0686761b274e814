import numpy as np
from scipy import stats

from sas_jax.corruption import keyed_random


def test_uniforms_depend_only_on_their_keys():
    ids = np.array([5, 9, 1000003])
    a = keyed_random.uniform(99, 7, ids, 16, stream=0)
    # A different batch slice (another process, another batch size) sees the same numbers.
    b = keyed_random.uniform(99, 7, ids[1:], 16, stream=0)
    np.testing.assert_array_equal(a[1:], b)
    for other in (keyed_random.uniform(98, 7, ids, 16, 0), keyed_random.uniform(99, 8, ids, 16, 0),
                  keyed_random.uniform(99, 7, ids, 16, 1)):
        assert not np.any(np.isclose(a, other))


def test_uniforms_are_uniform_and_uncorrelated():
    u = keyed_random.uniform(1, 2, np.arange(2000), 64, stream=3)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    # neighbouring positions and neighbouring ids are not correlated
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.02
    assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < 0.02
