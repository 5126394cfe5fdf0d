//! `vigil ml fit|score`: train an Isolation Forest on a CSV file and score another one, to
//! evaluate the detector on one's own data. The work is `vigil_ml`'s: `score` reads the CSV
//! a block of lines at a time (`CsvBlocks`: straight into a row-major buffer, columns put in
//! the model's order as they are parsed), scores each block with the forest's batched
//! `score_samples` and writes it before reading the next, so memory does not grow with the
//! file; all on `-j` threads (a rayon pool of that size; `-j 1` is one thread).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use rayon::prelude::*;
use vigil_ml::csv::{CsvBlocks, Dataset};
use vigil_ml::eval::{average_precision, roc_auc};
use vigil_ml::{Contamination, ForestParams, MaxFeatures, MaxSamples, Model};

#[derive(Subcommand)]
pub enum MlCmd {
    /// Train a model on the numeric columns of a CSV file (header row of names).
    Fit(FitArgs),
    /// Score every row of a CSV file: prints `row,score,anomalous` as CSV, and ROC AUC and
    /// average precision on standard error when the label column is present.
    Score(ScoreArgs),
}

#[derive(Args)]
pub struct FitArgs {
    /// Training data: CSV with a header row; every column but the label column is a feature.
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// A column of labels (1/0, true/false, anomaly/normal) left out of the features; the
    /// fit then reports ROC AUC and average precision on the training data. Default: the
    /// column `label` when present (as in `vigil ml score`).
    #[arg(long, value_name = "NAME")]
    label_column: Option<String>,
    /// Where to write the model (`.json` for JSON, anything else the compact binary).
    #[arg(long, value_name = "MODEL")]
    out: PathBuf,
    /// Trees in the forest.
    #[arg(long, default_value_t = 100)]
    n_estimators: usize,
    /// Rows per tree: `auto` (min(256, rows)), a count, or a fraction in (0, 1].
    #[arg(long, default_value = "auto")]
    max_samples: MaxSamples,
    /// Features per tree: a count or a fraction in (0, 1].
    #[arg(long, default_value = "1.0")]
    max_features: MaxFeatures,
    /// Threshold rule: the fraction in (0, 0.5] of training rows that are anomalous, or
    /// `auto` (anomaly score above 0.5). The default is the server's `[ml] contamination`.
    #[arg(long, default_value = vigil_ml::DEFAULT_CONTAMINATION)]
    contamination: Contamination,
    /// Seed: the same data and seed give the same model.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads for reading the CSV and growing trees (default: one per core). The model is
    /// the same whatever the number.
    #[arg(long, short = 'j', value_name = "N")]
    threads: Option<usize>,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// A model written by `vigil ml fit`.
    #[arg(long, value_name = "MODEL")]
    model: PathBuf,
    /// Rows to score: CSV with the model's feature columns (any order; extra columns other
    /// than the label column are an error).
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// Label column for ROC AUC / average precision (default: `label` when present).
    #[arg(long, value_name = "NAME")]
    label_column: Option<String>,
    /// Threads for reading the CSV, scoring and writing (default: one per core). Scores
    /// are the same floats whatever the number.
    #[arg(long, short = 'j', value_name = "N")]
    threads: Option<usize>,
}

pub fn run(cmd: MlCmd) -> anyhow::Result<()> {
    let threads = match &cmd {
        MlCmd::Fit(a) => a.threads,
        MlCmd::Score(a) => a.threads,
    };
    if threads == Some(0) {
        anyhow::bail!("--threads must be at least 1");
    }
    // 0 = rayon's default, one thread per core.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .thread_name(|i| format!("vigil-ml-{i}"))
        .build()
        .context("cannot start the worker threads")?;
    pool.install(|| match cmd {
        MlCmd::Fit(a) => fit(a),
        MlCmd::Score(a) => score(a),
    })
}

fn report(scores: &[f64], labels: Option<&Vec<bool>>) -> anyhow::Result<()> {
    if let Some(labels) = labels {
        let auc = roc_auc(scores, labels)?;
        let ap = average_precision(scores, labels)?;
        eprintln!("roc_auc {auc:.6}\naverage_precision {ap:.6}");
    }
    Ok(())
}

fn fit(a: FitArgs) -> anyhow::Result<()> {
    let data = Dataset::read(&a.csv, a.label_column.as_deref())?;
    let params = ForestParams {
        n_estimators: a.n_estimators,
        max_samples: a.max_samples,
        max_features: a.max_features,
        contamination: a.contamination,
        seed: a.seed,
    };
    let started = std::time::Instant::now();
    let model = Model::train(data.feature_names.clone(), &data.x, &params)?;
    let took = started.elapsed();
    let bytes = if a.out.extension().is_some_and(|e| e == "json") {
        model.to_json().into_bytes()
    } else {
        model.to_bytes()
    };
    std::fs::write(&a.out, &bytes).with_context(|| format!("cannot write {}", a.out.display()))?;
    eprintln!(
        "trained {} trees on {} rows x {} features in {:.3} s; threshold {:.6}; wrote {} ({} bytes)",
        model.forest.trees.len(),
        data.x.n_rows(),
        data.x.n_features(),
        took.as_secs_f64(),
        model.threshold(),
        a.out.display(),
        bytes.len()
    );
    if data.labels.is_some() {
        let scores: Vec<f64> = model
            .forest
            .score_samples(&data.x)?
            .into_iter()
            .map(|s| -s)
            .collect();
        report(&scores, data.labels.as_ref())?;
    }
    Ok(())
}

fn score(a: ScoreArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let model = Model::from_bytes(&bytes).with_context(|| format!("{}", a.model.display()))?;
    let csv = || format!("{}", a.csv.display());
    let mut blocks = CsvBlocks::open(&a.csv, a.label_column.as_deref()).with_context(csv)?;
    let columns = blocks.feature_names();
    // Columns by name, in the model's order.
    let order: Vec<usize> = model
        .feature_names
        .iter()
        .map(|n| {
            columns
                .iter()
                .position(|c| c == n)
                .with_context(|| format!("{}: no column '{n}' the model needs", a.csv.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    if let Some(extra) = columns.iter().find(|c| !model.feature_names.contains(c)) {
        anyhow::bail!(
            "{}: column '{extra}' is not a feature of the model ({})",
            a.csv.display(),
            model.feature_names.join(", ")
        );
    }
    blocks.set_order(&order).with_context(csv)?;
    let threshold = model.threshold();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    writeln!(out, "row,score,anomalous")?;
    // Scores are kept only for the evaluation at the end.
    let mut labelled: Option<(Vec<f64>, Vec<bool>)> = blocks.has_labels().then(Default::default);
    let mut first_row = 1;
    while let Some(block) = blocks.next_block().with_context(csv)? {
        // scikit-learn's `score_samples` is minus the anomaly score: negating it back gives
        // the very float `anomaly_score` gives for the row alone.
        let mut scores = model.forest.score_samples(&block.x)?;
        scores.par_iter_mut().for_each(|s| *s = -*s);
        write_scores(&mut out, first_row, &scores, threshold)?;
        first_row += scores.len();
        if let (Some((all, labels)), Some(l)) = (&mut labelled, block.labels) {
            all.extend_from_slice(&scores);
            labels.extend(l);
        }
    }
    out.flush()?;
    match labelled {
        Some((scores, labels)) => report(&scores, Some(&labels)),
        None => Ok(()),
    }
}

/// Rows formatted by one thread at a time.
const WRITE_CHUNK: usize = 16 * 1024;

/// Prints `row,score,anomalous` for rows `first..` of `scores`, formatting chunks of
/// rows in parallel and writing them in order.
fn write_scores(
    out: &mut impl Write,
    first: usize,
    scores: &[f64],
    threshold: f64,
) -> anyhow::Result<()> {
    let texts: Vec<Vec<u8>> = scores
        .par_chunks(WRITE_CHUNK)
        .enumerate()
        .map(|(c, chunk)| {
            let first = first + c * WRITE_CHUNK;
            let mut text = Vec::with_capacity(chunk.len() * 32);
            for (i, &s) in chunk.iter().enumerate() {
                // Writing to a Vec cannot fail.
                let _ = writeln!(text, "{},{s},{}", first + i, s > threshold);
            }
            text
        })
        .collect();
    for t in texts {
        out.write_all(&t)?;
    }
    Ok(())
}
