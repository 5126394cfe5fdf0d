//! Data sets from CSV files: a header row of names, then one row of numbers per sample
//! (RFC 4180 quoting allowed). One column may hold labels for evaluation: the one named, or
//! else the column named [`DEFAULT_LABEL_COLUMN`] when the header has one, so that training
//! and scoring the same file agree on what is a feature.

use std::path::Path;

use crate::forest::Matrix;
use crate::{Error, Result};

/// The label column used when none is named: never a feature, in training or scoring.
pub const DEFAULT_LABEL_COLUMN: &str = "label";

/// Feature columns, and labels when the file has a label column.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub feature_names: Vec<String>,
    pub x: Matrix,
    /// `true` = anomalous.
    pub labels: Option<Vec<bool>>,
}

/// Splits one CSV record; `"` quotes, `""` inside quotes is a quote.
fn split_record(line: &str, line_no: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err(Error::Csv {
            line: line_no,
            message: "unterminated quoted field".into(),
        });
    }
    out.push(cur);
    Ok(out)
}

/// Reads a label: `1`/`true`/`anomaly`/`outlier`/`-1` are anomalous (scikit-learn's
/// `predict` marks outliers -1), `0`/`false`/`normal`/`inlier` are not.
fn parse_label(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "true" | "anomaly" | "anomalous" | "outlier" | "-1" | "attack" => Some(true),
        "0" | "0.0" | "false" | "normal" | "inlier" | "benign" => Some(false),
        _ => None,
    }
}

impl Dataset {
    /// Parses CSV text; `label_column` (which must exist), or else a column named
    /// [`DEFAULT_LABEL_COLUMN`] if there is one, becomes the labels.
    pub fn parse(text: &str, label_column: Option<&str>) -> Result<Self> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((hl, header)) = lines.next() else {
            return Err(Error::Csv {
                line: 1,
                message: "no header row".into(),
            });
        };
        let names: Vec<String> = split_record(header, hl)?
            .into_iter()
            .map(|s| s.trim().to_owned())
            .collect();
        let label_idx = match label_column {
            Some(l) => Some(
                names
                    .iter()
                    .position(|n| n == l)
                    .ok_or_else(|| Error::Csv {
                        line: hl,
                        message: format!("no column named '{l}' (columns: {})", names.join(", ")),
                    })?,
            ),
            None => names.iter().position(|n| n == DEFAULT_LABEL_COLUMN),
        };
        let feature_names: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != label_idx)
            .map(|(_, n)| n.clone())
            .collect();
        if feature_names.is_empty() {
            return Err(Error::Csv {
                line: hl,
                message: "no feature columns".into(),
            });
        }
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for (no, line) in lines {
            let fields = split_record(line, no)?;
            if fields.len() != names.len() {
                return Err(Error::Csv {
                    line: no,
                    message: format!("{} fields, the header has {}", fields.len(), names.len()),
                });
            }
            for (i, f) in fields.iter().enumerate() {
                if Some(i) == label_idx {
                    labels.push(parse_label(f).ok_or_else(|| Error::Csv {
                        line: no,
                        message: format!("label '{f}' is not 0/1, true/false or normal/anomaly"),
                    })?);
                    continue;
                }
                let v: f64 = f.trim().parse().map_err(|_| Error::Csv {
                    line: no,
                    message: format!("column '{}': '{f}' is not a number", names[i]),
                })?;
                if !v.is_finite() {
                    return Err(Error::Csv {
                        line: no,
                        message: format!("column '{}': '{f}' is not finite", names[i]),
                    });
                }
                data.push(v);
            }
        }
        if data.is_empty() {
            return Err(Error::Csv {
                line: hl,
                message: "no data rows".into(),
            });
        }
        let x = Matrix::new(feature_names.len(), data)?;
        Ok(Self {
            feature_names,
            x,
            labels: label_idx.map(|_| labels),
        })
    }

    /// Reads and parses a CSV file.
    pub fn read(path: &Path, label_column: Option<&str>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, label_column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_features_and_labels() {
        let d =
            Dataset::parse("a,\"b, quoted\",label\r\n1,2,0\n\n3,4.5,1\n", Some("label")).unwrap();
        assert_eq!(d.feature_names, ["a", "b, quoted"]);
        assert_eq!(d.x.row(1), [3.0, 4.5]);
        assert_eq!(d.labels, Some(vec![false, true]));
    }

    #[test]
    fn the_default_label_column_is_never_a_feature() {
        let d = Dataset::parse("a,label,b\n1,1,2\n3,0,4\n", None).unwrap();
        assert_eq!(d.feature_names, ["a", "b"]);
        assert_eq!(d.labels, Some(vec![true, false]));
        let d = Dataset::parse("a,b\n1,2\n", None).unwrap();
        assert_eq!((d.feature_names.len(), d.labels), (2, None));
    }

    #[test]
    fn bad_rows_name_the_line() {
        let e = Dataset::parse("a,b\n1,2\n1,x\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("'x'"), "{e}");
        let e = Dataset::parse("a,b\n1\n", None).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = Dataset::parse("a,b\n1,2\n", Some("y"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column named 'y'"), "{e}");
        let e = Dataset::parse("a,y\n1,maybe\n", Some("y"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 'maybe'"), "{e}");
        assert!(Dataset::parse("a\nNaN\n", None).is_err());
        assert!(Dataset::parse("a\n", None).is_err());
    }
}
