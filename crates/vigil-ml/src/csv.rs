//! Data sets from CSV files: a header row of names, then one row of numbers per sample
//! (RFC 4180 quoting allowed). One column may hold labels for evaluation: the one named, or
//! else the column named [`DEFAULT_LABEL_COLUMN`] when the header has one, so that training
//! and scoring the same file agree on what is a feature.
//!
//! Rows are read straight from the file's bytes into one row-major `f64` buffer: a line of
//! ASCII without quotes (every line of a machine-written file) is split on commas in place
//! and its numbers parsed from the slices, so a row allocates nothing. A line with a quote
//! or a non-ASCII byte takes the general path (`split_record`), with the same result. With
//! more than one thread in the current rayon pool the body is cut at line ends into one
//! range per thread, parsed in parallel and joined in order; errors still name the line.

use std::path::Path;

use rayon::prelude::*;

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
    const ANOMALOUS: [&str; 8] = [
        "1",
        "1.0",
        "true",
        "anomaly",
        "anomalous",
        "outlier",
        "-1",
        "attack",
    ];
    const NORMAL: [&str; 6] = ["0", "0.0", "false", "normal", "inlier", "benign"];
    let s = s.trim();
    if ANOMALOUS.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(true)
    } else if NORMAL.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(false)
    } else {
        None
    }
}

/// `str::trim` for ASCII bytes: the ASCII characters with Unicode's White_Space property
/// (`trim_ascii` leaves the vertical tab, `str::trim` removes it).
fn trim(mut b: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    while let [first, rest @ ..] = b
        && ws(first)
    {
        b = rest;
    }
    while let [rest @ .., last] = b
        && ws(last)
    {
        b = rest;
    }
    b
}

/// The lines of `bytes` as `str::lines` gives them, then without one more trailing `\r`
/// (as the header and rows were always read), each with its 1-based number counted from
/// `first_no`; blank lines are left out.
fn lines(bytes: &[u8], first_no: usize) -> impl Iterator<Item = (usize, &[u8])> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut no = first_no;
    // An empty input has no lines (`"".lines()` is empty), not one empty line.
    (!bytes.is_empty())
        .then(|| body.split(|&b| b == b'\n'))
        .into_iter()
        .flatten()
        .filter_map(move |l| {
            let n = no;
            no += 1;
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            (!is_blank(l)).then_some((n, l))
        })
}

/// Whether a line is blank as `str::trim` sees it.
fn is_blank(l: &[u8]) -> bool {
    if l.is_ascii() {
        trim(l).is_empty()
    } else {
        std::str::from_utf8(l).is_ok_and(|s| s.trim().is_empty())
    }
}

fn not_utf8(line: usize) -> Error {
    Error::Csv {
        line,
        message: "not UTF-8 text".into(),
    }
}

/// What every row is checked against.
struct Layout<'a> {
    names: &'a [String],
    label_idx: Option<usize>,
}

impl Layout<'_> {
    fn wrong_count(&self, line: usize, fields: usize) -> Error {
        Error::Csv {
            line,
            message: format!("{fields} fields, the header has {}", self.names.len()),
        }
    }

    /// One field of row `no`: a label, or a finite number appended to `data`.
    fn field(
        &self,
        no: usize,
        i: usize,
        f: &str,
        data: &mut Vec<f64>,
        labels: &mut Vec<bool>,
    ) -> Result<()> {
        if Some(i) == self.label_idx {
            labels.push(parse_label(f).ok_or_else(|| Error::Csv {
                line: no,
                message: format!("label '{f}' is not 0/1, true/false or normal/anomaly"),
            })?);
            return Ok(());
        }
        let v: f64 = f.trim().parse().map_err(|_| Error::Csv {
            line: no,
            message: format!("column '{}': '{f}' is not a number", self.names[i]),
        })?;
        if !v.is_finite() {
            return Err(Error::Csv {
                line: no,
                message: format!("column '{}': '{f}' is not finite", self.names[i]),
            });
        }
        data.push(v);
        Ok(())
    }

    /// One row: split in place when it is ASCII without quotes, else by `split_record`.
    fn row(
        &self,
        no: usize,
        line: &[u8],
        data: &mut Vec<f64>,
        labels: &mut Vec<bool>,
    ) -> Result<()> {
        if !line.is_ascii() || line.contains(&b'"') {
            let line = std::str::from_utf8(line).map_err(|_| not_utf8(no))?;
            let fields = split_record(line, no)?;
            if fields.len() != self.names.len() {
                return Err(self.wrong_count(no, fields.len()));
            }
            for (i, f) in fields.iter().enumerate() {
                self.field(no, i, f, data, labels)?;
            }
            return Ok(());
        }
        let mut n = 0;
        for (i, f) in line.split(|&b| b == b',').enumerate() {
            if i >= self.names.len() {
                return Err(self.wrong_count(no, line.split(|&b| b == b',').count()));
            }
            // ASCII, so UTF-8.
            let f = std::str::from_utf8(f).map_err(|_| not_utf8(no))?;
            self.field(no, i, f, data, labels)?;
            n = i + 1;
        }
        if n != self.names.len() {
            return Err(self.wrong_count(no, n));
        }
        Ok(())
    }

    /// Rows of `bytes` (whole lines), the first numbered `first_no`.
    fn rows(&self, bytes: &[u8], first_no: usize) -> Result<(Vec<f64>, Vec<bool>)> {
        let features = self.names.len() - usize::from(self.label_idx.is_some());
        // A guess at the row count from the first line's length, to grow the buffer rarely;
        // never more rows than the bytes could hold (a digit and a separator per field).
        let most = bytes.len() / (2 * self.names.len()) + 1;
        let guess = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(1, |l| bytes.len() / (l + 1) + 1)
            .min(most);
        let mut data = Vec::with_capacity(guess.saturating_mul(features));
        let mut labels = Vec::with_capacity(if self.label_idx.is_some() { guess } else { 0 });
        for (no, line) in lines(bytes, first_no) {
            self.row(no, line, &mut data, &mut labels)?;
        }
        Ok((data, labels))
    }
}

/// `bytes` cut into up to `n` ranges of whole lines, each with the number of its first line.
fn split_at_lines(bytes: &[u8], n: usize, first_no: usize) -> Vec<(&[u8], usize)> {
    let mut out = Vec::with_capacity(n);
    let (mut rest, mut no) = (bytes, first_no);
    let step = bytes.len() / n.max(1) + 1;
    while !rest.is_empty() {
        let end = if out.len() + 1 >= n || rest.len() <= step {
            rest.len()
        } else {
            rest[step..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |p| step + p + 1)
        };
        let (chunk, tail) = rest.split_at(end);
        out.push((chunk, no));
        no += chunk.iter().filter(|&&b| b == b'\n').count();
        rest = tail;
    }
    out
}

impl Dataset {
    /// Parses CSV text; `label_column` (which must exist), or else a column named
    /// [`DEFAULT_LABEL_COLUMN`] if there is one, becomes the labels.
    pub fn parse(text: &str, label_column: Option<&str>) -> Result<Self> {
        Self::parse_bytes(text.as_bytes(), label_column)
    }

    /// [`parse`](Self::parse) on the bytes of a file: lines must be UTF-8, the rest is not
    /// looked at. Parses on the current rayon pool's threads.
    pub fn parse_bytes(bytes: &[u8], label_column: Option<&str>) -> Result<Self> {
        let Some((hl, header)) = lines(bytes, 1).next() else {
            return Err(Error::Csv {
                line: 1,
                message: "no header row".into(),
            });
        };
        let header_str = std::str::from_utf8(header).map_err(|_| not_utf8(hl))?;
        let names: Vec<String> = split_record(header_str, hl)?
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
        // The body starts after the header's line end.
        let header_end = header.as_ptr() as usize - bytes.as_ptr() as usize + header.len();
        let body_start = bytes[header_end..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| header_end + p + 1);
        let body = &bytes[body_start..];
        let layout = Layout {
            names: &names,
            label_idx,
        };
        let threads = rayon::current_num_threads();
        // Small inputs are not worth a thread each.
        let chunks = if threads > 1 && body.len() > 1 << 20 {
            split_at_lines(body, threads, hl + 1)
        } else {
            vec![(body, hl + 1)]
        };
        let mut parts: Vec<(Vec<f64>, Vec<bool>)> = if chunks.len() > 1 {
            chunks
                .into_par_iter()
                .map(|(c, no)| layout.rows(c, no))
                .collect::<Result<_>>()?
        } else {
            chunks
                .into_iter()
                .map(|(c, no)| layout.rows(c, no))
                .collect::<Result<_>>()?
        };
        let (data, labels) = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            let rows: usize = parts.iter().map(|(d, _)| d.len()).sum();
            let mut data = Vec::with_capacity(rows);
            let mut labels = Vec::new();
            for (d, l) in parts {
                data.extend_from_slice(&d);
                labels.extend_from_slice(&l);
            }
            (data, labels)
        };
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
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_bytes(&bytes, label_column)
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

    /// A file of `rows` rows over 1 MiB, with CRLF, blank and quoted lines among them.
    fn big(rows: usize) -> String {
        let mut t = String::from("a,b,label\n");
        for i in 0..rows {
            match i % 97 {
                0 => t.push_str(&format!("\"{i}\",{}.25,1\r\n", i * 3)),
                1 => t.push_str("\n  \n"),
                _ => t.push_str(&format!("{i}, {}e-3 ,0\n", i * 7)),
            }
        }
        t
    }

    #[test]
    fn parallel_parse_equals_serial_parse_and_names_the_right_line() {
        let text = big(120_000);
        assert!(text.len() > 1 << 20);
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let serial = pool(1).install(|| Dataset::parse(&text, None)).unwrap();
        let parallel = pool(4).install(|| Dataset::parse(&text, None)).unwrap();
        assert_eq!(serial.x, parallel.x);
        assert_eq!(serial.labels, parallel.labels);
        assert_eq!(serial.x.n_rows(), 120_000 - 120_000 / 97 - 1);
        assert_eq!(serial.x.row(1), [2.0, 14e-3]);
        assert_eq!(serial.x.row(96), [97.0, 291.25]);
        // A bad value near the end: its line number counts every line before it.
        let bad = format!("{text}1,2,0\n1,oops,0\n");
        let lines = bad.lines().count();
        for n in [1, 4] {
            let e = pool(n).install(|| Dataset::parse(&bad, None)).unwrap_err();
            assert!(e.to_string().contains(&format!("line {lines}")), "{e}");
        }
    }

    #[test]
    fn the_fast_path_reads_rows_as_the_general_path_does() {
        // The same rows with and without quotes (the quoted ones go through split_record).
        let plain = Dataset::parse("a,b\n 1.5 ,\x0b2\n-3,4e2\n", None).unwrap();
        let quoted = Dataset::parse("a,b\n\" 1.5 \",\"\x0b2\"\n\"-3\",4e2\n", None).unwrap();
        assert_eq!(plain.x, quoted.x);
        assert_eq!(plain.x.row(0), [1.5, 2.0]);
        for bad in ["a,b\n1,2,3\n", "a,b\n1,2,\n", "a,b\n1\n", "a,b\n,\n"] {
            assert!(Dataset::parse(bad, None).is_err(), "{bad:?}");
        }
        let e = Dataset::parse("a,b\n1,2,3\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 fields, the header has 2"), "{e}");
        assert!(Dataset::parse_bytes(b"a,b\n1,\xff\n", None).is_err());
        assert!(Dataset::parse("", None).is_err());
    }
}
