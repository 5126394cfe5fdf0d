//! Forests trained by scikit-learn, read from the JSON `scripts/export_sklearn_iforest.py`
//! writes: per estimator its feature subset (`estimators_features_`) and the tree arrays
//! (`children_left`, `children_right`, `feature`, `threshold`, `n_node_samples`), plus
//! `max_samples_` and `offset_`.
//!
//! The trees are renumbered into this crate's layout (right child = left + 1, children
//! after parents); feature indices are mapped through the estimator's feature subset; each
//! leaf stores `(depth + 1) + c(n_node_samples)` exactly as scikit-learn adds it up; inputs
//! are rounded to `f32` as scikit-learn does before comparing.

use serde::Deserialize;

use crate::forest::{IsolationForest, LEAF, Node, Tree, leaf_value};
use crate::{Error, Result};

/// One exported estimator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SklearnTree {
    /// `estimators_features_[i]`: column of the input for each of the tree's features.
    pub features: Vec<usize>,
    pub children_left: Vec<i64>,
    pub children_right: Vec<i64>,
    pub feature: Vec<i64>,
    pub threshold: Vec<f64>,
    pub n_node_samples: Vec<u64>,
}

/// A whole exported `IsolationForest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SklearnForest {
    /// Always `"sklearn-isolation-forest"`.
    pub format: String,
    pub sklearn_version: String,
    pub n_features_in: usize,
    pub max_samples: usize,
    pub offset: f64,
    pub estimators: Vec<SklearnTree>,
}

impl SklearnForest {
    /// Parses an export.
    pub fn from_json(text: &str) -> Result<Self> {
        let f: SklearnForest = serde_json::from_str(text)?;
        if f.format != "sklearn-isolation-forest" {
            return Err(Error::model("format", format!("'{}'", f.format)));
        }
        Ok(f)
    }

    /// Converts into a forest this crate scores.
    pub fn into_forest(self) -> Result<IsolationForest> {
        let trees = self
            .estimators
            .iter()
            .enumerate()
            .map(|(i, t)| convert_tree(t, self.n_features_in, &format!("estimator {i}")))
            .collect::<Result<Vec<_>>>()?;
        let forest = IsolationForest::new(
            self.n_features_in,
            self.max_samples,
            self.offset,
            true,
            trees,
        );
        forest.validate()?;
        Ok(forest)
    }
}

fn convert_tree(t: &SklearnTree, n_features: usize, at: &str) -> Result<Tree> {
    let n = t.children_left.len();
    if n == 0
        || t.children_right.len() != n
        || t.feature.len() != n
        || t.threshold.len() != n
        || t.n_node_samples.len() != n
    {
        return Err(Error::model(
            at,
            "tree arrays differ in length or are empty",
        ));
    }
    if let Some(f) = t.features.iter().find(|f| **f >= n_features) {
        return Err(Error::model(at, format!("feature {f} of {n_features}")));
    }
    let mut nodes = vec![Node {
        feature: LEAF,
        left: 0,
        value: 0.0,
    }];
    // (sklearn node, our node, depth); breadth first so both children are adjacent.
    let mut queue = std::collections::VecDeque::from([(0usize, 0usize, 0usize)]);
    let mut visited = 0usize;
    while let Some((s, ours, depth)) = queue.pop_front() {
        visited += 1;
        if visited > n {
            return Err(Error::model(at, "nodes are reachable more than once"));
        }
        let (l, r) = (t.children_left[s], t.children_right[s]);
        if l < 0 || r < 0 {
            nodes[ours] = Node {
                feature: LEAF,
                left: 0,
                value: leaf_value(depth, t.n_node_samples[s] as usize),
            };
            continue;
        }
        let (l, r) = (l as usize, r as usize);
        if l >= n || r >= n {
            return Err(Error::model(at, format!("node {s}: child out of range")));
        }
        let local = usize::try_from(t.feature[s])
            .ok()
            .and_then(|f| t.features.get(f).copied())
            .ok_or_else(|| Error::model(at, format!("node {s}: feature {}", t.feature[s])))?;
        let left = nodes.len();
        let leaf = Node {
            feature: LEAF,
            left: 0,
            value: 0.0,
        };
        nodes.push(leaf);
        nodes.push(leaf);
        nodes[ours] = Node {
            feature: local as u32,
            left: left as u32,
            value: t.threshold[s],
        };
        queue.push_back((l, left, depth + 1));
        queue.push_back((r, left + 1, depth + 1));
    }
    let tree = Tree { nodes };
    tree.validate(n_features, at)?;
    Ok(tree)
}
