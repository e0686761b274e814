"""`sas_jax.startup.unroll_cpu_threefry`: the same random bits with or without JAX's CPU loop."""
import jax
import numpy as np

from sas_jax import startup


def _draws(key):
    """Fresh function object per call, so nothing lowered under the other lowering is reused."""
    def dropout_and_sample(k):
        k1, k2 = jax.random.split(k)
        return jax.random.bernoulli(k1, 0.9, (16, 128, 32)), jax.random.categorical(k2, jax.numpy.zeros((8, 50)))

    jitted = jax.jit(dropout_and_sample)
    return jitted.lower(key).as_text(), jax.device_get(jitted(key))


def test_unrolled_threefry_draws_the_same_bits_without_a_loop(monkeypatch):
    key = jax.random.key(3)
    try:
        assert startup.unroll_cpu_threefry(False) is False
        rolled_text, rolled = _draws(key)
        assert startup.unroll_cpu_threefry(True) is True
        unrolled_text, unrolled = _draws(key)
        monkeypatch.setenv(startup.THREEFRY_ENV, "rolled")
        assert startup.unroll_cpu_threefry() is False
        again_text, again = _draws(key)
        monkeypatch.delenv(startup.THREEFRY_ENV)
        assert startup.unroll_cpu_threefry() is True  # the default
    finally:
        startup.unroll_cpu_threefry(False)  # the tests' lowering (conftest)
    assert "stablehlo.while" in rolled_text and "stablehlo.while" in again_text
    assert "stablehlo.while" not in unrolled_text
    for a, b, c in zip(rolled, unrolled, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert 0.85 < rolled[0].mean() < 0.95  # real draws, not a constant
