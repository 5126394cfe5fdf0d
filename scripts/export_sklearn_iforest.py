#!/usr/bin/env python3
"""Export scikit-learn IsolationForests and their expected scores as fixtures for
vigil-ml's parity tests (crates/vigil-ml/tests/parity.rs).

Writes into crates/vigil-ml/tests/fixtures/ (or the directory given):
  data.csv            1000 rows, 5 features f0..f4 and a `label` column (1 = anomaly),
                      generated with a fixed seed: two Gaussian clusters + 5 % uniform noise
  sklearn_forest_a.json  IsolationForest(n_estimators=50, max_samples=128, random_state=42)
  sklearn_forest_b.json  IsolationForest(n_estimators=10, max_samples=64, max_features=0.6,
                         contamination=0.05, random_state=7)  (feature subsets, an offset)
  expected.json       score_samples of both forests on data.csv, offset_ of b, and the
                      ROC AUC / average precision of IsolationForest() defaults for seeds 0..19

Usage: pip install scikit-learn numpy; python3 scripts/export_sklearn_iforest.py [DIR]
"""
import json
import os
import sys

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score


def dataset():
    rng = np.random.default_rng(20261201)
    n_normal, n_anom, d = 950, 50, 5
    a = rng.normal(0.0, 1.0, size=(n_normal // 2, d))
    b = rng.normal(3.0, 0.7, size=(n_normal - n_normal // 2, d))
    anom = rng.uniform(-2.5, 5.0, size=(n_anom, d))
    x = np.vstack([a, b, anom]).round(6)
    y = np.array([0] * n_normal + [1] * n_anom)
    order = rng.permutation(len(y))
    return x[order], y[order]


def export(forest):
    trees = []
    for est, feats in zip(forest.estimators_, forest.estimators_features_):
        t = est.tree_
        trees.append({
            "features": [int(f) for f in feats],
            "children_left": t.children_left.tolist(),
            "children_right": t.children_right.tolist(),
            "feature": t.feature.tolist(),
            "threshold": t.threshold.tolist(),
            "n_node_samples": t.n_node_samples.tolist(),
        })
    return {
        "format": "sklearn-isolation-forest",
        "sklearn_version": sklearn.__version__,
        "n_features_in": int(forest.n_features_in_),
        "max_samples": int(forest.max_samples_),
        "offset": float(forest.offset_),
        "estimators": trees,
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "crates", "vigil-ml", "tests", "fixtures")
    os.makedirs(out, exist_ok=True)
    x, y = dataset()
    with open(os.path.join(out, "data.csv"), "w") as f:
        f.write("f0,f1,f2,f3,f4,label\n")
        for row, label in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{label}\n")

    fa = IsolationForest(n_estimators=50, max_samples=128, random_state=42).fit(x)
    fb = IsolationForest(n_estimators=10, max_samples=64, max_features=0.6,
                         contamination=0.05, random_state=7).fit(x)
    for name, forest in [("a", fa), ("b", fb)]:
        with open(os.path.join(out, f"sklearn_forest_{name}.json"), "w") as f:
            json.dump(export(forest), f, separators=(",", ":"))

    seeds = []
    for seed in range(20):
        s = -IsolationForest(random_state=seed).fit(x).score_samples(x)
        seeds.append({"seed": seed, "roc_auc": roc_auc_score(y, s),
                      "average_precision": average_precision_score(y, s)})
    expected = {
        "sklearn_version": sklearn.__version__,
        "score_samples_a": fa.score_samples(x).tolist(),
        "score_samples_b": fb.score_samples(x).tolist(),
        "predict_b": fb.predict(x).tolist(),
        "offset_b": float(fb.offset_),
        "defaults_by_seed": seeds,
        "roc_auc_mean": float(np.mean([s["roc_auc"] for s in seeds])),
        "average_precision_mean": float(np.mean([s["average_precision"] for s in seeds])),
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=0)
    print(f"wrote fixtures to {out}: AUC {expected['roc_auc_mean']:.4f} "
          f"AP {expected['average_precision_mean']:.4f}")


if __name__ == "__main__":
    main()
