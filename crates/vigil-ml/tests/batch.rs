//! Batched scoring (`score_samples`: blocks of rows, tree by tree, lanes in lock step, on
//! any number of threads) gives the same floats as scoring one row at a time, for random
//! forests and random rows, native and scikit-learn (`f32` inputs) forests alike.

use proptest::prelude::*;
use vigil_ml::sklearn::SklearnForest;
use vigil_ml::{ForestParams, IsolationForest, Matrix, MaxFeatures, MaxSamples};

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

fn check(forest: &IsolationForest, x: &Matrix) -> Result<(), TestCaseError> {
    let one_thread = pool(1).install(|| forest.score_samples(x)).unwrap();
    let three = pool(3).install(|| forest.score_samples(x)).unwrap();
    let serial = forest.score_samples_serial(x).unwrap();
    for (i, row) in x.rows().enumerate() {
        let alone = -forest.anomaly_score(row).unwrap();
        prop_assert_eq!(one_thread[i], alone, "row {}", i);
        prop_assert_eq!(three[i], alone, "row {}", i);
        prop_assert_eq!(serial[i], alone, "row {}", i);
    }
    Ok(())
}

fn matrix(d: usize, values: &[f64]) -> Matrix {
    let n = values.len() / d * d;
    Matrix::new(d, values[..n].to_vec()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn batched_scores_equal_row_by_row(
        d in 1usize..6,
        train in prop::collection::vec(-100.0f64..100.0, 6..1200),
        // Rows to score: a few block and lane boundaries (256, 16) are crossed.
        score in prop::collection::vec(-150.0f64..150.0, 6..3000),
        trees in 1usize..40,
        samples in 2usize..300,
        features in 0.1f64..1.0,
        seed in any::<u64>(),
    ) {
        let x = matrix(d, &train);
        prop_assume!(x.n_rows() >= 1);
        let params = ForestParams {
            n_estimators: trees,
            max_samples: MaxSamples::Count(samples),
            max_features: MaxFeatures::Fraction(features),
            seed,
            ..Default::default()
        };
        let forest = IsolationForest::fit(&x, &params).unwrap();
        let rows = matrix(d, &score);
        prop_assume!(rows.n_rows() >= 1);
        check(&forest, &rows)?;
        // Training rows too: values exactly at thresholds.
        check(&forest, &x)?;
    }

    #[test]
    fn batched_scores_of_a_sklearn_forest_equal_row_by_row(
        score in prop::collection::vec(-8.0f64..8.0, 5..2000),
    ) {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sklearn_forest_b.json"),
        )
        .unwrap();
        let forest = SklearnForest::from_json(&text).unwrap().into_forest().unwrap();
        let rows = matrix(forest.n_features, &score);
        prop_assume!(rows.n_rows() >= 1);
        check(&forest, &rows)?;
    }
}
