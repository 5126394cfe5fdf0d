#!/usr/bin/env python3
"""The scikit-learn side of the `vigil ml score` figure (docs/PERFORMANCE.md): reading a CSV
with pandas and scoring every row with IsolationForest.score_samples, as one process.

Usage (numpy, pandas and scikit-learn in a venv outside the repository):
  python3 scripts/bench_ml_score.py gen  DATA.csv [ROWS]      # ROWS x 8 features, header row
  python3 scripts/bench_ml_score.py fit  DATA.csv MODEL.pkl   # 100 trees, max_samples 256
  python3 scripts/bench_ml_score.py score MODEL.pkl DATA.csv [N_JOBS]
`score` prints the read and score times to stderr; time the whole process with hyperfine
next to `vigil ml score --model M --csv DATA.csv -j N > /dev/null`.
"""
import os
import pickle
import sys
import time

N_JOBS = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[1] == "score" else 1
if N_JOBS == 1:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402

FEATURES = [f"f{i}" for i in range(8)]


def gen(path, rows):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 8))
    # 1% anomalies: a few features far out.
    idx = rng.choice(rows, rows // 100, replace=False)
    x[idx, : 3] += rng.uniform(4, 8, size=(len(idx), 3))
    pd.DataFrame(x, columns=FEATURES).to_csv(path, index=False)


def fit(data, out):
    x = pd.read_csv(data).to_numpy()
    forest = IsolationForest(random_state=0, n_jobs=1).fit(x)
    with open(out, "wb") as f:
        pickle.dump(forest, f)


def score(model, data, n_jobs):
    t0 = time.perf_counter()
    with open(model, "rb") as f:
        forest = pickle.load(f)
    forest.n_jobs = n_jobs
    x = pd.read_csv(data).to_numpy()
    t1 = time.perf_counter()
    s = forest.score_samples(x)
    t2 = time.perf_counter()
    print(f"rows {len(s)} read {t1 - t0:.3f} s score {t2 - t1:.3f} s n_jobs {n_jobs}",
          file=sys.stderr)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000)
    elif cmd == "fit":
        fit(sys.argv[2], sys.argv[3])
    elif cmd == "score":
        score(sys.argv[2], sys.argv[3], N_JOBS)
    else:
        sys.exit(__doc__)
