"""The bench's statistics: medians, spreads and the median's confidence interval."""

from __future__ import annotations

import random

from bench._stats import median_ci95, pairwise, summary


def test_median_ci95_brackets_the_median_and_narrows_with_more_runs() -> None:
    values = [float(v) for v in range(1, 101)]
    assert median_ci95(values) == (41.0, 61.0)  # ranks 50 -/+ 0.98*sqrt(100)
    rng = random.Random(5)
    noisy = [rng.gauss(23.0, 14.0) for _ in range(30)]
    lo30, hi30 = median_ci95(noisy)
    more = noisy + [rng.gauss(23.0, 14.0) for _ in range(270)]
    lo300, hi300 = median_ci95(more)
    assert lo30 <= summary(noisy)["median"] <= hi30
    assert hi300 - lo300 < hi30 - lo30


def test_the_interval_covers_the_true_median_about_95_times_in_100() -> None:
    rng = random.Random(7)
    covered = 0
    for _ in range(400):
        lo, hi = median_ci95([rng.gauss(0.0, 1.0) for _ in range(60)])
        covered += lo <= 0.0 <= hi
    assert 0.92 <= covered / 400 <= 0.99


def test_pairwise_differences_are_taken_run_by_run() -> None:
    stats = pairwise([10.0, 20.0, 30.0], [1.0, 2.0, 3.0], "diff")
    assert (stats["median"], stats["min"], stats["max"], stats["n"]) == (18.0, 9.0, 27.0, 3)
