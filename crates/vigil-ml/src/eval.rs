//! Evaluation against labels: ROC AUC and average precision, computed as scikit-learn's
//! `roc_auc_score` and `average_precision_score` do (tied scores form one threshold).

use crate::{Error, Result};

/// Cumulative (false positives, true positives) at each distinct score, highest first.
fn curve(scores: &[f64], labels: &[bool]) -> Result<(Vec<f64>, Vec<f64>, f64, f64)> {
    if scores.len() != labels.len() {
        return Err(Error::Labels(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if scores.iter().any(|s| !s.is_finite()) {
        return Err(Error::Labels("a score is not finite".into()));
    }
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Err(Error::Labels(
            "both classes (anomalous and normal) must be present".into(),
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut fps, mut tps) = (Vec::new(), Vec::new());
    let (mut fp, mut tp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_tie {
            fps.push(fp);
            tps.push(tp);
        }
    }
    Ok((fps, tps, pos, neg))
}

/// Area under the ROC curve of `scores` (higher = more anomalous) against `labels`
/// (true = anomalous).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<f64> {
    let (fps, tps, pos, neg) = curve(scores, labels)?;
    let (mut area, mut fp0, mut tp0) = (0.0, 0.0, 0.0);
    for (fp, tp) in fps.into_iter().zip(tps) {
        area += (fp - fp0) * (tp + tp0) / 2.0;
        fp0 = fp;
        tp0 = tp;
    }
    Ok(area / (pos * neg))
}

/// Average precision: `Σ (R_k - R_{k-1}) P_k` over the distinct thresholds.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Result<f64> {
    let (fps, tps, pos, _) = curve(scores, labels)?;
    let (mut ap, mut r0) = (0.0, 0.0);
    for (fp, tp) in fps.into_iter().zip(tps) {
        let recall = tp / pos;
        let precision = tp / (tp + fp);
        ap += (recall - r0) * precision;
        r0 = recall;
    }
    Ok(ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sklearn_on_small_cases() {
        // sklearn: roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.75,
        // average_precision_score(same) == 0.8333333333333333
        let y = [false, false, true, true];
        let s = [0.1, 0.4, 0.35, 0.8];
        assert!((roc_auc(&s, &y).unwrap() - 0.75).abs() < 1e-15);
        assert!((average_precision(&s, &y).unwrap() - 0.833_333_333_333_333_3).abs() < 1e-15);
        // ties: roc_auc_score([0,1,0,1],[0.5,0.5,0.2,0.9]) == 0.875,
        // average_precision_score(same) == 0.8333333333333333
        let y = [false, true, false, true];
        let s = [0.5, 0.5, 0.2, 0.9];
        assert!((roc_auc(&s, &y).unwrap() - 0.875).abs() < 1e-15);
        assert!((average_precision(&s, &y).unwrap() - 0.833_333_333_333_333_3).abs() < 1e-15);
    }

    #[test]
    fn one_class_is_an_error() {
        assert!(roc_auc(&[0.1, 0.2], &[true, true]).is_err());
        assert!(average_precision(&[0.1], &[true, false]).is_err());
    }
}
