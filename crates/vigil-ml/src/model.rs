//! A detector: the forest, the names of its features, and the baseline statistics of the
//! data it was trained on (to say which features of an anomaly are unusual).
//!
//! Two encodings, told apart by their first bytes:
//!
//! * JSON (`{...}`): `{"format": "vigil-iforest", "version": 1, "feature_names", "baseline",
//!   "sample_count", "forest": {n_features, max_samples, offset, f32_inputs, trees:
//!   [{nodes: [{feature, left, value}]}]}}`;
//! * compact binary (`VGML`, little endian): version `u16`; feature names (`u32` count, each
//!   `u32` length + UTF-8); sample count `u64`; baseline (median, mad, mean, std as `f64`
//!   per feature); forest header (`u32` n_features, `u64` max_samples, `f64` offset, `u8`
//!   flags bit 0 = f32 inputs, `u32` trees); per tree `u32` nodes, then per node `u32`
//!   feature, `u32` left, `f64` value. 16 bytes a node: a default 100-tree forest is about
//!   800 KB.
//!
//! Every decoded model is validated (see [`IsolationForest::validate`]) before use.

use serde::{Deserialize, Serialize};

use crate::forest::{IsolationForest, Matrix, Node, Tree, check_vector};
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"VGML";
const VERSION: u16 = 1;

/// Per-feature statistics of the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub median: Vec<f64>,
    /// Median absolute deviation from the median.
    pub mad: Vec<f64>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Baseline {
    /// Statistics of every column of `x`.
    pub fn of(x: &Matrix) -> Self {
        let d = x.n_features();
        let n = x.n_rows().max(1) as f64;
        let mut b = Baseline {
            median: Vec::with_capacity(d),
            mad: Vec::with_capacity(d),
            mean: Vec::with_capacity(d),
            std: Vec::with_capacity(d),
        };
        for f in 0..d {
            let mut col: Vec<f64> = x.rows().map(|r| r[f]).collect();
            let mean = col.iter().sum::<f64>() / n;
            let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            col.sort_by(f64::total_cmp);
            let median = median_sorted(&col);
            let mut dev: Vec<f64> = col.iter().map(|v| (v - median).abs()).collect();
            dev.sort_by(f64::total_cmp);
            b.median.push(median);
            b.mad.push(median_sorted(&dev));
            b.mean.push(mean);
            b.std.push(var.sqrt());
        }
        b
    }

    /// How far `value` of feature `f` is from the baseline, in robust standard deviations
    /// (`1.4826 MAD`, else the standard deviation, else 1 % of the median's magnitude).
    pub fn deviation(&self, f: usize, value: f64) -> f64 {
        let scale = if self.mad[f] > 0.0 {
            1.4826 * self.mad[f]
        } else if self.std[f] > 0.0 {
            self.std[f]
        } else {
            0.01 * self.median[f].abs().max(1.0)
        };
        (value - self.median[f]) / scale
    }
}

fn median_sorted(a: &[f64]) -> f64 {
    match a.len() {
        0 => 0.0,
        n if n % 2 == 1 => a[n / 2],
        n => (a[n / 2 - 1] + a[n / 2]) / 2.0,
    }
}

/// Isolation Forest scores saturate outside the training data: a vector beyond every
/// training value lands in the leaves of the most extreme training vector and gets exactly
/// its score (and a contamination threshold is often that very score). A vector scoring
/// at the threshold is therefore anomalous too when some feature is at least this many
/// robust standard deviations from the baseline (see [`Baseline::deviation`]).
pub const OUT_OF_RANGE_DEVIATION: f64 = 10.0;

/// One feature of a scored vector next to its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deviation {
    pub feature: String,
    pub value: f64,
    /// The baseline's median of this feature.
    pub baseline_median: f64,
    /// Robust z-score, see [`Baseline::deviation`].
    pub deviation: f64,
}

/// A scored vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Anomaly score in (0, 1].
    pub score: f64,
    pub threshold: f64,
    pub anomalous: bool,
    /// Features ordered by how unusual they are (largest |deviation| first).
    pub unusual: Vec<Deviation>,
}

/// A trained detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// `"vigil-iforest"`.
    pub format: String,
    pub version: u16,
    pub feature_names: Vec<String>,
    /// Rows the model was trained on.
    pub sample_count: u64,
    pub baseline: Baseline,
    pub forest: IsolationForest,
}

impl Model {
    /// Trains a forest and the baseline on `x`.
    pub fn train(
        feature_names: Vec<String>,
        x: &Matrix,
        params: &crate::ForestParams,
    ) -> Result<Self> {
        if feature_names.len() != x.n_features() {
            return Err(Error::Dimension {
                expected: x.n_features(),
                got: feature_names.len(),
            });
        }
        let forest = IsolationForest::fit(x, params)?;
        Ok(Self {
            format: "vigil-iforest".into(),
            version: VERSION,
            feature_names,
            sample_count: x.n_rows() as u64,
            baseline: Baseline::of(x),
            forest,
        })
    }

    pub fn threshold(&self) -> f64 {
        self.forest.threshold()
    }

    /// Scores one vector and explains it: the `top` most unusual features.
    pub fn verdict(&self, x: &[f64], top: usize) -> Result<Verdict> {
        check_vector(self.forest.n_features, x)?;
        let score = self.forest.anomaly_score_unchecked(x);
        Ok(self.explain(x, score, top))
    }

    /// [`verdict`](Self::verdict) for every row of `x`, scored in one batch on the calling
    /// thread (the forest's block scoring: the same scores as one row at a time).
    pub fn verdicts(&self, x: &Matrix, top: usize) -> Result<Vec<Verdict>> {
        let scores = self.forest.score_samples_serial(x)?;
        Ok(x.rows()
            .zip(scores)
            // `score_samples` is minus the anomaly score.
            .map(|(row, s)| self.explain(row, -s, top))
            .collect())
    }

    /// The verdict on `x` given its anomaly score.
    fn explain(&self, x: &[f64], score: f64, top: usize) -> Verdict {
        let mut unusual: Vec<Deviation> = x
            .iter()
            .enumerate()
            .map(|(f, &value)| Deviation {
                feature: self.feature_names[f].clone(),
                value,
                baseline_median: self.baseline.median[f],
                deviation: self.baseline.deviation(f, value),
            })
            .collect();
        unusual.sort_by(|a, b| b.deviation.abs().total_cmp(&a.deviation.abs()));
        let far = unusual
            .first()
            .is_some_and(|d| d.deviation.abs() >= OUT_OF_RANGE_DEVIATION);
        unusual.truncate(top);
        let threshold = self.threshold();
        Verdict {
            score,
            threshold,
            anomalous: score > threshold || (score >= threshold && far),
            unusual,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.format != "vigil-iforest" {
            return Err(Error::model("format", format!("'{}'", self.format)));
        }
        if self.version != VERSION {
            return Err(Error::model("version", format!("{}", self.version)));
        }
        self.forest.validate()?;
        let d = self.forest.n_features;
        let b = &self.baseline;
        if self.feature_names.len() != d
            || b.median.len() != d
            || b.mad.len() != d
            || b.mean.len() != d
            || b.std.len() != d
        {
            return Err(Error::model(
                "baseline",
                "feature names or baseline do not match n_features",
            ));
        }
        Ok(())
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The compact binary encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let f = &self.forest;
        let nodes: usize = f.trees.iter().map(|t| t.nodes.len()).sum();
        let mut out = Vec::with_capacity(64 + nodes * 16 + self.feature_names.len() * 48);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.feature_names.len() as u32).to_le_bytes());
        for n in &self.feature_names {
            out.extend_from_slice(&(n.len() as u32).to_le_bytes());
            out.extend_from_slice(n.as_bytes());
        }
        out.extend_from_slice(&self.sample_count.to_le_bytes());
        for col in [
            &self.baseline.median,
            &self.baseline.mad,
            &self.baseline.mean,
            &self.baseline.std,
        ] {
            for v in col {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.extend_from_slice(&(f.n_features as u32).to_le_bytes());
        out.extend_from_slice(&(f.max_samples as u64).to_le_bytes());
        out.extend_from_slice(&f.offset.to_le_bytes());
        out.push(u8::from(f.f32_inputs));
        out.extend_from_slice(&(f.trees.len() as u32).to_le_bytes());
        for t in &f.trees {
            out.extend_from_slice(&(t.nodes.len() as u32).to_le_bytes());
            for n in &t.nodes {
                out.extend_from_slice(&n.feature.to_le_bytes());
                out.extend_from_slice(&n.left.to_le_bytes());
                out.extend_from_slice(&n.value.to_le_bytes());
            }
        }
        out
    }

    /// Decodes either encoding and validates the model.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let model = if bytes.starts_with(MAGIC) {
            decode_binary(bytes)?
        } else {
            let m: Model = serde_json::from_slice(bytes)?;
            m
        };
        model.validate()?;
        Ok(model)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| {
                Error::model(format!("byte {}", self.pos), format!("truncated {what}"))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(a))
    }
    fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_bits(self.u64(what)?))
    }
    /// A count of items of at least `min_size` bytes each, checked against what is left,
    /// so a corrupt count cannot make us allocate.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_size) > self.bytes.len() - self.pos {
            return Err(Error::model(
                format!("byte {}", self.pos),
                format!("{what} count {n} exceeds the data"),
            ));
        }
        Ok(n)
    }
}

fn decode_binary(bytes: &[u8]) -> Result<Model> {
    let mut r = Reader { bytes, pos: 4 };
    let version = r.u16("version")?;
    if version != VERSION {
        return Err(Error::model(
            "version",
            format!("{version} is not {VERSION}"),
        ));
    }
    let n_names = r.count(4, "feature names")?;
    let mut feature_names = Vec::with_capacity(n_names);
    for _ in 0..n_names {
        let len = r.count(1, "feature name")?;
        let s = std::str::from_utf8(r.take(len, "feature name")?)
            .map_err(|_| Error::model("feature names", "not UTF-8"))?;
        feature_names.push(s.to_owned());
    }
    let sample_count = r.u64("sample count")?;
    let mut cols = Vec::with_capacity(4);
    for _ in 0..4 {
        let mut c = Vec::with_capacity(n_names);
        for _ in 0..n_names {
            c.push(r.f64("baseline")?);
        }
        cols.push(c);
    }
    let std = cols.pop().unwrap_or_default();
    let mean = cols.pop().unwrap_or_default();
    let mad = cols.pop().unwrap_or_default();
    let median = cols.pop().unwrap_or_default();
    let n_features = r.u32("n_features")? as usize;
    let max_samples = usize::try_from(r.u64("max_samples")?)
        .map_err(|_| Error::model("max_samples", "too large"))?;
    let offset = r.f64("offset")?;
    let flags = r.u8("flags")?;
    let n_trees = r.count(20, "trees")?;
    let mut trees = Vec::with_capacity(n_trees);
    for _ in 0..n_trees {
        let n = r.count(16, "nodes")?;
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(Node {
                feature: r.u32("node")?,
                left: r.u32("node")?,
                value: r.f64("node")?,
            });
        }
        trees.push(Tree { nodes });
    }
    if r.pos != bytes.len() {
        return Err(Error::model(
            format!("byte {}", r.pos),
            "trailing bytes after the last tree",
        ));
    }
    Ok(Model {
        format: "vigil-iforest".into(),
        version,
        feature_names,
        sample_count,
        baseline: Baseline {
            median,
            mad,
            mean,
            std,
        },
        forest: IsolationForest::new(n_features, max_samples, offset, flags & 1 == 1, trees),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ForestParams;

    fn model() -> Model {
        let rows: Vec<Vec<f64>> = (0..300)
            .map(|i| vec![(i % 17) as f64, (i % 5) as f64 * 2.0])
            .collect();
        let x = Matrix::from_rows(2, &rows).unwrap();
        let p = ForestParams {
            n_estimators: 10,
            ..Default::default()
        };
        Model::train(vec!["a".into(), "b".into()], &x, &p).unwrap()
    }

    #[test]
    fn both_encodings_round_trip() {
        let m = model();
        assert_eq!(Model::from_bytes(&m.to_bytes()).unwrap(), m);
        assert_eq!(Model::from_bytes(m.to_json().as_bytes()).unwrap(), m);
        // binary is smaller than JSON
        assert!(m.to_bytes().len() < m.to_json().len() / 2);
    }

    #[test]
    fn corrupt_binary_is_an_error_not_a_panic() {
        let bytes = model().to_bytes();
        for cut in [5, 10, 40, bytes.len() / 2, bytes.len() - 1] {
            assert!(Model::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Model::from_bytes(&extra).is_err());
        // a child index pointing backwards would loop: rejected
        let m = model();
        let mut bad = m.clone();
        let t = &mut bad.forest.trees[0];
        let internal = t
            .nodes
            .iter()
            .position(|n| n.feature != crate::forest::LEAF)
            .unwrap();
        t.nodes[internal].left = 0;
        assert!(Model::from_bytes(&bad.to_bytes()).is_err());
        // every single flipped byte either decodes to a valid model or errors
        for i in 0..bytes.len().min(400) {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = Model::from_bytes(&b);
        }
    }

    #[test]
    fn verdict_names_the_unusual_feature() {
        let m = model();
        let v = m.verdict(&[8.0, 400.0], 1).unwrap();
        assert!(v.anomalous, "{v:?}");
        // Far outside on a feature: at least as anomalous as the most extreme training row.
        let edge = m.verdict(&[16.0, 8.0], 1).unwrap();
        let beyond = m.verdict(&[16.0, 8000.0], 1).unwrap();
        assert!(beyond.score >= edge.score && beyond.anomalous);
        assert_eq!(v.unusual[0].feature, "b");
        assert!(m.verdict(&[1.0], 1).is_err());
    }

    #[test]
    fn verdicts_of_a_batch_equal_one_verdict_per_row() {
        let m = model();
        let rows: Vec<Vec<f64>> = (0..700)
            .map(|i| match i % 3 {
                // Rows like the training data, and rows far from it.
                0 => vec![(i % 17) as f64, (i % 5) as f64 * 2.0],
                _ => vec![(i * 7 % 40) as f64 - 10.0, (i % 13) as f64 * 31.0],
            })
            .collect();
        let x = Matrix::from_rows(2, &rows).unwrap();
        let batch = m.verdicts(&x, 2).unwrap();
        assert_eq!(batch.len(), rows.len());
        for (r, v) in rows.iter().zip(&batch) {
            assert_eq!(&m.verdict(r, 2).unwrap(), v);
        }
        assert!(batch.iter().any(|v| v.anomalous) && batch.iter().any(|v| !v.anomalous));
        assert!(
            m.verdicts(&Matrix::from_rows(1, &[vec![1.0]]).unwrap(), 1)
                .is_err()
        );
    }
}
