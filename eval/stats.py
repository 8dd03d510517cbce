"""The statistics behind the evaluation report: a mean with its bootstrap interval, a paired difference between
two models over the units both answered, and the GSB (good / same / bad) score of pairwise verdicts.

Units are resampled, never replies within a unit: a unit (an item and seed, or a character) is what was drawn
from the population, so its score is one observation however many judges or questions went into it.
"""

import math

import numpy as np
from scipy.stats import bootstrap

TIE = 1e-9  # scores are means of small integers; differences below this are float noise, not a win


def mean_ci(values, *, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean and its percentile-bootstrap interval at `level`, the same bounds for the same seed.
    One value or all values equal gives a zero-width interval (the bootstrap would only resample one number);
    no values gives NaNs."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2 or np.all(np.abs(x - x[0]) <= TIE):
        return mean, mean, mean
    ci = bootstrap(
        (x,),
        np.mean,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return mean, float(ci.low), float(ci.high)


def paired_diff(a: dict, b: dict, **same) -> dict:
    """b − a over the units (keys) both have: the mean difference with its bootstrap interval (units resampled,
    `same` passed to mean_ci), and how many units b wins, ties and loses."""
    shared = sorted(a.keys() & b.keys(), key=str)
    diffs = [b[k] - a[k] for k in shared]
    mean, lo, hi = mean_ci(diffs, **same)
    return {
        "n": len(diffs),
        "mean": mean,
        "lo": lo,
        "hi": hi,
        "wins": sum(d > TIE for d in diffs),
        "ties": sum(abs(d) <= TIE for d in diffs),
        "losses": sum(d < -TIE for d in diffs),
    }


def gsb(outcomes: list[str]) -> dict:
    """Counts of G (b better), S (same), B (b worse) and the GSB score (G − B) / (G + S + B) in [−1, 1]."""
    g, s, b = (sum(o == k for o in outcomes) for k in "GSB")
    n = g + s + b
    return {"G": g, "S": s, "B": b, "n": n, "score": (g - b) / n if n else math.nan}
