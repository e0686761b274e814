"""Small statistics for comparing rows over seeds (`python -m sas_jax.study`), numpy and math only.

    mean_sd([0.61, 0.63, 0.60])                  # {"n": 3, "mean": ..., "sd": ... (sample sd), "note": None}
    paired_t_test(a, b)                          # a[i], b[i] from the same seed: two-sided p of mean(a - b) = 0
    paired_bootstrap(a, b)                       # 10,000 seeded resamples of the pairs: 95% interval of mean(a - b)

Everything returns plain dicts (JSON as they are). A statistic that cannot be computed (fewer
than two pairs, differences that never vary) has `None` values and a `note` saying why.

The t distribution's tail comes from the regularized incomplete beta function (`betainc`, a
continued fraction): for t with df degrees of freedom the two-sided p-value is
I_{df/(df+t²)}(df/2, 1/2). scipy is not one of the package's requirements, so nothing here uses it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
LEVEL = 0.95


def _betacf(a: float, b: float, x: float, *, max_iter: int = 500, eps: float = 1e-15) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), for x < (a + 1) / (a + b + 2)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        for aa in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"the incomplete beta I_{x}({a}, {b}) did not converge in {max_iter} terms")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError(f"betainc needs a, b > 0, not a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs 0 <= x <= 1, not x={x}")
    if x in (0.0, 1.0):
        return x
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"the t distribution needs df > 0, not {df}")
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


def mean_sd(values: Sequence) -> dict:
    """{n, mean, sd (sample, ddof 1), note} of the values that are not None; sd is None below 2."""
    vals = [float(v) for v in values if v is not None]
    n = len(vals)
    if not n:
        return {"n": 0, "mean": None, "sd": None, "note": "no values"}
    sd = float(np.std(vals, ddof=1)) if n > 1 else None
    return {"n": n, "mean": float(np.mean(vals)), "sd": sd,
            "note": None if n > 1 else "1 seed: no sd (needs 2)"}


def _differences(a: Sequence, b: Sequence) -> np.ndarray:
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, not {len(a)} and {len(b)}")
    return np.asarray(a, float) - np.asarray(b, float)


def paired_t_test(a: Sequence, b: Sequence) -> dict:
    """Two-sided paired t-test of mean(a - b) = 0 (a[i] and b[i] share seed i):
    {n, mean_diff, sd_diff, t, df, p, note}."""
    d = _differences(a, b)
    n = int(d.size)
    out = {"n": n, "mean_diff": float(d.mean()) if n else None, "sd_diff": None, "t": None, "df": None,
           "p": None, "note": None}
    if n < 2:
        out["note"] = f"{n} seed{'s' if n != 1 else ''} in common: a paired test needs 2"
        return out
    sd = float(np.std(d, ddof=1))
    out.update(sd_diff=sd, df=n - 1)
    if sd <= 1e-12 * float(np.abs(d).max()):  # equal up to rounding (0.8 - 0.7 vs 0.7 - 0.6), or all 0
        out["note"] = "every seed differs by the same amount (sd of the differences 0): t is undefined"
        return out
    t = float(d.mean() / (sd / math.sqrt(n)))
    out.update(t=t, p=t_two_sided_p(t, n - 1))
    return out


def paired_bootstrap(a: Sequence, b: Sequence, *, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> dict:
    """Percentile interval of mean(a - b) over `resamples` resamples of the pairs with replacement
    (numpy's default_rng(seed)): {n, mean_diff, low, high, level, resamples, seed, note}."""
    d = _differences(a, b)
    n = int(d.size)
    out = {"n": n, "mean_diff": float(d.mean()) if n else None, "low": None, "high": None, "level": level,
           "resamples": int(resamples), "seed": int(seed), "note": None}
    if n < 2:
        out["note"] = f"{n} seed{'s' if n != 1 else ''} in common: resampling needs 2"
        return out
    idx = np.random.default_rng(seed).integers(0, n, size=(int(resamples), n))
    means = d[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    out.update(low=float(low), high=float(high))
    return out
