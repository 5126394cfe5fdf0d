#!/usr/bin/env python3
"""Time scikit-learn's IsolationForest (defaults: 100 trees, max_samples=256) on the rows
vigil-ml's criterion bench wrote, single-threaded (n_jobs=1, OMP/BLAS threads 1), to put
next to `cargo bench -p vigil-ml --bench forest`.

Usage: cargo bench -p vigil-ml --bench forest   # writes target/ml-bench/data.csv
       python3 scripts/bench_sklearn.py target/ml-bench/data.csv
"""
import os
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402


def best_of(n, fn):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), sorted(times)[len(times) // 2]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "target/ml-bench/data.csv"
    x = np.loadtxt(path, delimiter=",", skiprows=1)
    forest = IsolationForest(random_state=0, n_jobs=1).fit(x)
    fit_best, fit_med = best_of(5, lambda: IsolationForest(random_state=0, n_jobs=1).fit(x))
    score_best, score_med = best_of(5, lambda: forest.score_samples(x))
    n = x.shape[0]
    print(f"sklearn fit   100 trees, {n} rows: best {fit_best * 1e3:.1f} ms, median {fit_med * 1e3:.1f} ms")
    print(f"sklearn score {n} rows: best {score_best * 1e3:.1f} ms, median {score_med * 1e3:.1f} ms "
          f"({n / score_best / 1e6:.3f} M rows/s)")


if __name__ == "__main__":
    main()
