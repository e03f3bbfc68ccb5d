"""Medians, spread and pair-by-pair ratios over repeated runs."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median_ci95(values: Sequence[float]) -> tuple[float, float]:
    """A distribution-free 95% confidence interval of the median: the order statistics
    n/2 ∓ 0.98·√n (the normal approximation of the binomial), clamped to the sample."""
    s = sorted(values)
    n = len(s)
    half = 0.98 * n ** 0.5
    lo = max(0, int(n / 2 - half))
    hi = min(n - 1, int(n / 2 + half + 0.999))
    return s[lo], s[hi]


def summary(values: Sequence[float]) -> dict[str, float]:
    """median with its 95% confidence interval, p10, p90, min, max and n, rounded to 0.01."""
    ci_lo, ci_hi = median_ci95(values)
    return {
        "median": round(percentile(values, 0.5), 2),
        "ci95_lo": round(ci_lo, 2),
        "ci95_hi": round(ci_hi, 2),
        "p10": round(percentile(values, 0.1), 2),
        "p90": round(percentile(values, 0.9), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "n": len(values),
    }


def pairwise(a: Sequence[float], b: Sequence[float], op: str) -> dict[str, float]:
    """Summary of a[i] - b[i] (op "diff") or a[i] / b[i] (op "ratio"), run i against run i."""
    if len(a) != len(b):
        raise ValueError(f"unpaired runs: {len(a)} against {len(b)}")
    if op == "diff":
        return summary([x - y for x, y in zip(a, b, strict=False)])
    return summary([x / y for x, y in zip(a, b, strict=False) if y > 0])
