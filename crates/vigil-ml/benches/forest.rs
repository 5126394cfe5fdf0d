//! Isolation Forest fit and score throughput, on data also written to
//! `target/ml-bench/data.csv` so `scripts/bench_sklearn.py` times scikit-learn on exactly
//! the same rows: `cargo bench -p vigil-ml --bench forest` then
//! `python3 scripts/bench_sklearn.py target/ml-bench/data.csv`.
//!
//! Measured back to back, three times, on the 2-core VM with nothing else running (load
//! ~1.2; see `docs/ML.md`): scoring 20,000 rows on 1 thread 5.72 / 5.93 / 5.71 ms against
//! scikit-learn's 62.5 / 61.9 / 60.6 ms (10.9x / 10.4x / 10.6x); fitting 1.98 / 2.07 /
//! 2.03 ms against 96.7 / 93.1 / 91.0 ms (49x / 45x / 45x).

use std::io::Write;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vigil_ml::{ForestParams, IsolationForest, Matrix};

const ROWS: usize = 20_000;
const FEATURES: usize = 8;

fn data() -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut v = Vec::with_capacity(ROWS * FEATURES);
    for i in 0..ROWS {
        for _ in 0..FEATURES {
            // Mostly a sum-of-uniforms bell, 2 % wide uniform noise.
            let x = if i % 50 == 0 {
                rng.gen_range(-8.0..8.0)
            } else {
                (0..4).map(|_| rng.r#gen::<f64>()).sum::<f64>() - 2.0
            };
            v.push((x * 1e6f64).round() / 1e6);
        }
    }
    Matrix::new(FEATURES, v).expect("finite data")
}

fn write_csv(x: &Matrix) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ml-bench");
    let _ = std::fs::create_dir_all(&dir);
    let Ok(mut f) = std::fs::File::create(dir.join("data.csv")) else {
        return;
    };
    let header: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    let _ = writeln!(f, "{}", header.join(","));
    for r in x.rows() {
        let row: Vec<String> = r.iter().map(|v| format!("{v}")).collect();
        let _ = writeln!(f, "{}", row.join(","));
    }
}

fn bench(c: &mut Criterion) {
    let x = data();
    write_csv(&x);
    let params = ForestParams::default();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let forest = IsolationForest::fit(&x, &params).expect("fit");
    let mut g = c.benchmark_group("iforest");
    g.sample_size(10);
    g.bench_function("fit_100_trees_1_thread", |b| {
        b.iter(|| one.install(|| IsolationForest::fit(&x, &params).expect("fit")))
    });
    g.bench_function("fit_100_trees_all_threads", |b| {
        b.iter(|| IsolationForest::fit(&x, &params).expect("fit"))
    });
    g.throughput(criterion::Throughput::Elements(ROWS as u64));
    g.bench_function("score_20k_rows_1_thread", |b| {
        b.iter(|| forest.score_samples_serial(&x).expect("score"))
    });
    g.bench_function("score_20k_rows_all_threads", |b| {
        b.iter(|| forest.score_samples(&x).expect("score"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
