//! Vigil's anomaly detection: an Isolation Forest written for this product (Liu, Ting &
//! Zhou 2008; scored exactly like scikit-learn's `score_samples`), feature vectors from
//! normalized events, and evaluation metrics. No server or database dependency.
//!
//! * [`forest`]: training (subsampling, height limit, feature subsets, a seed; trees
//!   grown in parallel), scoring (parallel or serial), contamination → threshold;
//! * [`model`]: a [`Model`] = forest + feature names + baseline statistics, in JSON or a
//!   compact binary encoding, and [`Verdict`]s that name the most unusual features;
//! * [`sklearn`]: forests exported from scikit-learn (`scripts/export_sklearn_iforest.py`);
//! * [`features`]: per-flow and per-window feature sets (defined in `docs/ML.md`);
//! * [`eval`]: ROC AUC and average precision; [`csv`]: data sets from CSV files.
//!
//! ```
//! use vigil_ml::{ForestParams, Matrix, Model};
//! // 200 normal rows around (0, 0), trained with a fixed seed.
//! let rows: Vec<Vec<f64>> = (0..200).map(|i| vec![(i % 10) as f64 / 10.0, (i % 7) as f64 / 7.0]).collect();
//! let x = Matrix::from_rows(2, &rows).unwrap();
//! let model = Model::train(vec!["a".into(), "b".into()], &x, &ForestParams { seed: 1, ..Default::default() }).unwrap();
//! let normal = model.verdict(&[0.5, 0.5], 2).unwrap();
//! let odd = model.verdict(&[0.5, 9.0], 2).unwrap();
//! assert!(odd.anomalous && odd.score > normal.score);
//! assert_eq!(odd.unusual[0].feature, "b");
//! // Same seed, same model, in either encoding.
//! assert_eq!(Model::from_bytes(&model.to_bytes()).unwrap(), model);
//! ```

pub mod csv;
mod error;
pub mod eval;
pub mod features;
pub mod forest;
pub mod model;
pub mod sklearn;

pub use error::{Error, Result};
pub use features::{FeatureSet, Sample, Windows};
pub use forest::{
    Contamination, DEFAULT_CONTAMINATION, ForestParams, IsolationForest, Matrix, MaxFeatures,
    MaxSamples, average_path_length,
};
pub use model::{Baseline, Deviation, Model, Verdict};
