import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

from sas_jax import losses


def test_mlm_loss_counts_exactly_the_weighted_slots():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 11)).astype(np.float32)
    targets = rng.integers(0, 11, (3, 4))
    w = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    loss, m = losses.mlm_loss(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(w))
    logp = jax.nn.log_softmax(logits)
    ce = -np.take_along_axis(np.asarray(logp), targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(loss, (ce[0, 0] + ce[0, 1] + ce[1, 0]) / 3, rtol=1e-6)
    assert m["mlm_slots"] == 3
    # Changing the logits of unweighted slots changes nothing.
    logits2 = logits.copy()
    logits2[w == 0] += rng.normal(size=(int((w == 0).sum()), 11)).astype(np.float32) * 10
    np.testing.assert_allclose(losses.mlm_loss(jnp.asarray(logits2), jnp.asarray(targets), jnp.asarray(w))[0], loss)


def test_mlm_loss_with_no_valid_slot_is_zero_not_nan():
    loss, m = losses.mlm_loss(jnp.ones((2, 3, 5)), jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 3)))
    assert float(loss) == 0.0 and float(m["mlm_accuracy"]) == 0.0


def test_rtd_loss_mean_over_non_pad_with_label_one_replaced():
    logits = jnp.array([[2.0, -1.0, 0.5, 3.0], [0.0, 1.0, -2.0, 9.0]])
    labels = jnp.array([[0, 1, 1, 0], [0, 0, 1, 1]])
    mask = jnp.array([[1, 1, 1, 1], [1, 1, 1, 0]])
    loss, m = losses.rtd_loss(logits, labels, mask)
    bce = optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32))
    np.testing.assert_allclose(loss, (bce * mask).sum() / 7, rtol=1e-6)
    pred = np.asarray(logits) > 0
    y, mk = np.asarray(labels).astype(bool), np.asarray(mask).astype(bool)
    np.testing.assert_allclose(m["rtd_accuracy"], ((pred == y) & mk).sum() / 7)
    np.testing.assert_allclose(m["rtd_precision"], (pred & y & mk).sum() / (pred & mk).sum())
    np.testing.assert_allclose(m["rtd_recall"], (pred & y & mk).sum() / (y & mk).sum())
    np.testing.assert_allclose(m["replaced_rate"], 3 / 7)


def test_sampler_matches_softmax_of_logits_over_temperature():
    logits = jnp.array([2.0, 1.0, 0.0, -1.0, 0.5, 3.0])
    for temperature in (1.0, 0.7):
        n = 60_000
        draws = losses.sample_tokens(jax.random.key(0), jnp.broadcast_to(logits, (n, 1, 6)), temperature)
        observed = np.bincount(np.asarray(draws).ravel(), minlength=6)
        probs = np.asarray(jax.nn.softmax(logits / temperature), np.float64)
        expected = probs / probs.sum() * n
        chi2, p = stats.chisquare(observed, expected)
        assert p > 1e-3, (temperature, observed, expected)
    # A wrong temperature is detected by the same test.
    draws = losses.sample_tokens(jax.random.key(0), jnp.broadcast_to(logits, (n, 1, 6)), 2.0)
    observed = np.bincount(np.asarray(draws).ravel(), minlength=6)
    probs = np.asarray(jax.nn.softmax(logits), np.float64)
    assert stats.chisquare(observed, probs / probs.sum() * n)[1] < 1e-6


def test_sampling_carries_no_gradient():
    g = jax.grad(lambda x: losses.sample_tokens(jax.random.key(1), x, 1.0).astype(jnp.float32).sum())(
        jnp.ones((1, 2, 4)))
    assert float(jnp.abs(g).sum()) == 0.0
