//! Parity with scikit-learn 1.9 through the fixtures `scripts/export_sklearn_iforest.py`
//! wrote (CI has no scikit-learn; the fixtures are committed).

use std::path::PathBuf;

use serde_json::Value as Json;
use vigil_ml::csv::Dataset;
use vigil_ml::eval::{average_precision, roc_auc};
use vigil_ml::sklearn::SklearnForest;
use vigil_ml::{ForestParams, IsolationForest, Matrix, Model, forest::percentile};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn data() -> Dataset {
    Dataset::read(&fixture("data.csv"), Some("label")).unwrap()
}

fn expected() -> Json {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn floats(v: &Json) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn sklearn_forest(name: &str) -> IsolationForest {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    SklearnForest::from_json(&text)
        .unwrap()
        .into_forest()
        .unwrap()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn sklearn_forest_scores_match_score_samples_to_1e_12() {
    let d = data();
    let e = expected();
    for (file, key) in [
        ("sklearn_forest_a.json", "score_samples_a"),
        ("sklearn_forest_b.json", "score_samples_b"),
    ] {
        let forest = sklearn_forest(file);
        let want = floats(&e[key]);
        let parallel = forest.score_samples(&d.x).unwrap();
        let serial = forest.score_samples_serial(&d.x).unwrap();
        let diff = max_abs_diff(&parallel, &want);
        assert!(diff <= 1e-12, "{file}: max |ours - sklearn| = {diff:e}");
        assert_eq!(
            parallel, serial,
            "parallel and serial scoring agree exactly"
        );
    }
}

#[test]
fn sklearn_feature_subsets_offset_and_predict_match() {
    let d = data();
    let e = expected();
    let b = sklearn_forest("sklearn_forest_b.json");
    // The export's offset_ is kept...
    assert_eq!(b.offset, e["offset_b"].as_f64().unwrap());
    // ...and our contamination rule recomputes it from the training scores.
    let scores = b.score_samples(&d.x).unwrap();
    let ours = percentile(&scores, 100.0 * 0.05);
    assert!((ours - b.offset).abs() <= 1e-12, "{ours} vs {}", b.offset);
    let want: Vec<bool> = e["predict_b"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64() == Some(-1))
        .collect();
    assert_eq!(b.predict(&d.x).unwrap(), want);
    let flagged = want.iter().filter(|p| **p).count();
    assert!(
        (49..=51).contains(&flagged),
        "{flagged} of 1000 at contamination 0.05"
    );
}

#[test]
fn an_imported_forest_survives_both_model_encodings() {
    let d = data();
    let forest = sklearn_forest("sklearn_forest_a.json");
    let model = Model {
        format: "vigil-iforest".into(),
        version: 1,
        feature_names: d.feature_names.clone(),
        sample_count: d.x.n_rows() as u64,
        baseline: vigil_ml::Baseline::of(&d.x),
        forest,
    };
    let want = model.forest.score_samples(&d.x).unwrap();
    for bytes in [model.to_bytes(), model.to_json().into_bytes()] {
        let back = Model::from_bytes(&bytes).unwrap();
        assert_eq!(back.forest.score_samples(&d.x).unwrap(), want);
    }
}

#[test]
fn our_training_matches_sklearn_roc_auc_and_average_precision_within_0_01() {
    let d = data();
    let e = expected();
    let labels = d.labels.clone().unwrap();
    let seeds = e["defaults_by_seed"].as_array().unwrap().len();
    let (mut auc, mut ap) = (0.0, 0.0);
    for seed in 0..seeds as u64 {
        let f = IsolationForest::fit(
            &d.x,
            &ForestParams {
                seed,
                ..Default::default()
            },
        )
        .unwrap();
        let s: Vec<f64> = f.score_samples(&d.x).unwrap().iter().map(|v| -v).collect();
        auc += roc_auc(&s, &labels).unwrap();
        ap += average_precision(&s, &labels).unwrap();
    }
    auc /= seeds as f64;
    ap /= seeds as f64;
    let sk_auc = e["roc_auc_mean"].as_f64().unwrap();
    let sk_ap = e["average_precision_mean"].as_f64().unwrap();
    eprintln!("ROC AUC ours {auc:.4} sklearn {sk_auc:.4}; AP ours {ap:.4} sklearn {sk_ap:.4}");
    assert!((auc - sk_auc).abs() <= 0.01, "AUC {auc} vs {sk_auc}");
    assert!((ap - sk_ap).abs() <= 0.01, "AP {ap} vs {sk_ap}");
}

#[test]
fn roc_auc_is_the_probability_an_anomaly_outscores_a_normal_row() {
    // The Mann-Whitney definition, ties counted half, on the scores of forest b (which
    // has ties: 10 small trees).
    let d = data();
    let labels = d.labels.clone().unwrap();
    let b = sklearn_forest("sklearn_forest_b.json");
    let s: Vec<f64> = b.score_samples(&d.x).unwrap().iter().map(|v| -v).collect();
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (i, li) in labels.iter().enumerate() {
        for (j, lj) in labels.iter().enumerate() {
            if *li && !*lj {
                pairs += 1.0;
                wins += if s[i] > s[j] {
                    1.0
                } else if s[i] == s[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    assert!((roc_auc(&s, &labels).unwrap() - wins / pairs).abs() < 1e-12);
}

#[test]
fn a_broken_export_is_an_error() {
    let text = std::fs::read_to_string(fixture("sklearn_forest_b.json")).unwrap();
    let mut v: Json = serde_json::from_str(&text).unwrap();
    v["estimators"][0]["children_left"][0] = Json::from(0);
    let bad = SklearnForest::from_json(&v.to_string())
        .unwrap()
        .into_forest();
    assert!(bad.is_err());
    let mut v: Json = serde_json::from_str(&text).unwrap();
    v["estimators"][0]["features"][0] = Json::from(99);
    assert!(
        SklearnForest::from_json(&v.to_string())
            .unwrap()
            .into_forest()
            .is_err()
    );
    assert!(SklearnForest::from_json("{\"format\":\"other\"}").is_err());
    let m = Matrix::new(5, vec![0.0; 5]).unwrap();
    assert_eq!(
        sklearn_forest("sklearn_forest_a.json")
            .score_samples(&m)
            .unwrap()
            .len(),
        1
    );
}
