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
//! Files are read a block of lines at a time ([`CsvBlocks`], ~4 MiB of text per thread):
//! `vigil ml score` scores and writes each block before reading the next, so its memory
//! does not grow with the file; [`Dataset::read`] collects the blocks.

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

/// What every row is checked against, and where its values go.
#[derive(Debug, Clone)]
struct Layout {
    names: Vec<String>,
    label_idx: Option<usize>,
    /// Where column `i`'s value goes in a row (unused for the label column).
    slot: Vec<usize>,
    /// Values per row.
    width: usize,
}

impl Layout {
    /// Columns in file order, the label column left out.
    fn new(names: Vec<String>, label_idx: Option<usize>) -> Self {
        let mut next = 0;
        let slot = (0..names.len())
            .map(|i| {
                let s = next;
                next += usize::from(Some(i) != label_idx);
                s
            })
            .collect();
        Self {
            width: names.len() - usize::from(label_idx.is_some()),
            names,
            label_idx,
            slot,
        }
    }

    fn wrong_count(&self, line: usize, fields: usize) -> Error {
        Error::Csv {
            line,
            message: format!("{fields} fields, the header has {}", self.names.len()),
        }
    }

    /// Field `i` of row `no`: a label, or a finite number written into the row.
    fn field(
        &self,
        no: usize,
        i: usize,
        f: &str,
        row: &mut [f64],
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
        row[self.slot[i]] = v;
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
        let start = data.len();
        data.resize(start + self.width, 0.0);
        let row = &mut data[start..];
        if !line.is_ascii() || line.contains(&b'"') {
            let line = std::str::from_utf8(line).map_err(|_| not_utf8(no))?;
            let fields = split_record(line, no)?;
            if fields.len() != self.names.len() {
                return Err(self.wrong_count(no, fields.len()));
            }
            for (i, f) in fields.iter().enumerate() {
                self.field(no, i, f, row, labels)?;
            }
            return Ok(());
        }
        // ASCII, so UTF-8.
        let line = std::str::from_utf8(line).map_err(|_| not_utf8(no))?;
        let mut n = 0;
        for (i, f) in line.split(',').enumerate() {
            if i >= self.names.len() {
                return Err(self.wrong_count(no, line.split(',').count()));
            }
            self.field(no, i, f, row, labels)?;
            n = i + 1;
        }
        if n != self.names.len() {
            return Err(self.wrong_count(no, n));
        }
        Ok(())
    }

    /// Rows of `bytes` (whole lines), the first numbered `first_no`.
    fn rows(&self, bytes: &[u8], first_no: usize) -> Result<(Vec<f64>, Vec<bool>)> {
        // Room for every line, counted (a vectorized pass): the buffer never grows.
        let lines_in = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        let mut data = Vec::with_capacity(lines_in * self.width);
        let mut labels = Vec::with_capacity(if self.label_idx.is_some() {
            lines_in
        } else {
            0
        });
        for (no, line) in lines(bytes, first_no) {
            self.row(no, line, &mut data, &mut labels)?;
        }
        Ok((data, labels))
    }

    /// Rows of `bytes` (whole lines) on the current rayon pool's threads: one range of
    /// lines per thread, joined in order.
    fn rows_parallel(&self, bytes: &[u8], first_no: usize) -> Result<(Vec<f64>, Vec<bool>)> {
        let threads = rayon::current_num_threads();
        // Small inputs are not worth a thread each.
        if threads == 1 || bytes.len() < 1 << 18 {
            return self.rows(bytes, first_no);
        }
        let parts: Vec<(Vec<f64>, Vec<bool>)> = split_at_lines(bytes, threads, first_no)
            .into_par_iter()
            .map(|(c, no)| self.rows(c, no))
            .collect::<Result<_>>()?;
        let values = parts.iter().map(|(d, _)| d.len()).sum();
        let mut data = Vec::with_capacity(values);
        let mut labels = Vec::new();
        for (d, l) in parts {
            data.extend_from_slice(&d);
            labels.extend_from_slice(&l);
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

/// The header of a CSV text whose first non-blank line is `header` (line `hl`): the layout
/// of its rows and the feature names.
fn layout_of(header: &[u8], hl: usize, label_column: Option<&str>) -> Result<Layout> {
    let header = std::str::from_utf8(header).map_err(|_| not_utf8(hl))?;
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
    if names.len() == usize::from(label_idx.is_some()) {
        return Err(Error::Csv {
            line: hl,
            message: "no feature columns".into(),
        });
    }
    Ok(Layout::new(names, label_idx))
}

/// Where the line after `line` (a slice of `bytes`) starts.
fn after_line(bytes: &[u8], line: &[u8]) -> usize {
    let end = line.as_ptr() as usize - bytes.as_ptr() as usize + line.len();
    bytes[end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| end + p + 1)
}

fn no_data(line: usize) -> Error {
    Error::Csv {
        line,
        message: "no data rows".into(),
    }
}

impl Layout {
    fn feature_names(&self) -> Vec<String> {
        let mut out = vec![String::new(); self.width];
        for (i, n) in self.names.iter().enumerate() {
            if Some(i) != self.label_idx {
                out[self.slot[i]] = n.clone();
            }
        }
        out
    }
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
        let layout = layout_of(header, hl, label_column)?;
        let body = &bytes[after_line(bytes, header)..];
        let (data, labels) = layout.rows_parallel(body, hl + 1)?;
        if data.is_empty() {
            return Err(no_data(hl));
        }
        Ok(Self {
            feature_names: layout.feature_names(),
            x: Matrix::new(layout.width, data)?,
            labels: layout.label_idx.map(|_| labels),
        })
    }

    /// Reads and parses a CSV file, a block at a time ([`CsvBlocks`]): the file's text is
    /// never held whole.
    pub fn read(path: &Path, label_column: Option<&str>) -> Result<Self> {
        let mut blocks = CsvBlocks::open(path, label_column)?;
        let file_len = std::fs::metadata(path).map_or(0, |m| m.len() as usize);
        let width = blocks.layout.width;
        let (mut data, mut labels) = (Vec::new(), Vec::new());
        while let Some(b) = blocks.next_block()? {
            if data.is_empty() && blocks.bytes_read > 0 {
                // Room for the whole file at the first block's bytes per row (+2 %).
                let rows = b.x.n_rows() as f64 * file_len as f64 / blocks.bytes_read as f64;
                data.reserve((rows * 1.02) as usize * width);
            }
            data.extend_from_slice(b.x.as_slice());
            labels.extend(b.labels.into_iter().flatten());
        }
        Ok(Self {
            feature_names: blocks.feature_names(),
            x: Matrix::new(width, data)?,
            labels: blocks.layout.label_idx.map(|_| labels),
        })
    }
}

/// Bytes of text parsed per thread in one [`CsvBlocks::next_block`].
const BLOCK_BYTES_PER_THREAD: usize = 4 << 20;

/// Rows read from a file of any size a block at a time, so memory stays bounded: the header
/// first, then blocks of whole lines (about 4 MiB of text per thread of the current rayon
/// pool), each parsed in parallel into one row-major buffer. Errors name the line.
pub struct CsvBlocks<R> {
    reader: R,
    /// For error messages.
    path: String,
    layout: Layout,
    /// Text read but not parsed yet: whole lines from `next_no` on, then a partial one.
    buf: Vec<u8>,
    next_no: usize,
    header_line: usize,
    eof: bool,
    rows: usize,
    /// Bytes of text parsed so far.
    bytes_read: usize,
    /// Bytes of text per thread in a block.
    block_bytes: usize,
}

/// Rows of a [`CsvBlocks`].
#[derive(Debug, Clone)]
pub struct Block {
    /// Features in the order of [`CsvBlocks::feature_names`].
    pub x: Matrix,
    /// `true` = anomalous; when the file has a label column.
    pub labels: Option<Vec<bool>>,
}

impl CsvBlocks<std::fs::File> {
    /// Opens a CSV file and reads its header.
    pub fn open(path: &Path, label_column: Option<&str>) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(file, path.display().to_string(), label_column)
    }
}

impl<R: std::io::Read> CsvBlocks<R> {
    /// Reads the header from `reader` (`path` names it in errors).
    pub fn new(reader: R, path: String, label_column: Option<&str>) -> Result<Self> {
        let mut me = Self {
            reader,
            path,
            layout: Layout::new(vec![String::new()], None),
            buf: Vec::new(),
            next_no: 1,
            header_line: 1,
            eof: false,
            rows: 0,
            bytes_read: 0,
            block_bytes: BLOCK_BYTES_PER_THREAD,
        };
        loop {
            let complete = me.complete_lines();
            let found = lines(&me.buf[..complete], 1)
                .next()
                .map(|(hl, header)| {
                    layout_of(header, hl, label_column)
                        .map(|l| (hl, l, after_line(&me.buf, header)))
                })
                .transpose()?;
            if let Some((hl, layout, body)) = found {
                me.layout = layout;
                me.buf.drain(..body);
                (me.header_line, me.next_no) = (hl, hl + 1);
                return Ok(me);
            }
            if me.eof {
                return Err(Error::Csv {
                    line: 1,
                    message: "no header row".into(),
                });
            }
            me.fill(me.block_bytes)?;
        }
    }

    /// Feature names in the order rows give them (file order, or [`set_order`](Self::set_order)'s).
    pub fn feature_names(&self) -> Vec<String> {
        self.layout.feature_names()
    }

    /// Whether rows come with labels.
    pub fn has_labels(&self) -> bool {
        self.layout.label_idx.is_some()
    }

    /// Puts the features in another order: `order[k]` is the index, among the feature
    /// names in file order, of the `k`-th value of every row. Must be a permutation.
    pub fn set_order(&mut self, order: &[usize]) -> Result<()> {
        let identity = Layout::new(self.layout.names.clone(), self.layout.label_idx);
        let mut seen = vec![false; identity.width];
        if order.len() != identity.width
            || order
                .iter()
                .any(|&f| f >= seen.len() || std::mem::replace(&mut seen[f], true))
        {
            return Err(Error::param("order", "not a permutation of the features"));
        }
        let mut slot = identity.slot.clone();
        for (i, s) in slot.iter_mut().enumerate() {
            if Some(i) != identity.label_idx {
                // Position `k` holds file feature `order[k]`.
                *s = order
                    .iter()
                    .position(|&f| f == identity.slot[i])
                    .unwrap_or(*s);
            }
        }
        self.layout = Layout { slot, ..identity };
        Ok(())
    }

    /// The next block of rows; None after the last. A file without rows is an error.
    pub fn next_block(&mut self) -> Result<Option<Block>> {
        let want = rayon::current_num_threads() * self.block_bytes;
        loop {
            while !self.eof && self.buf.len() < want {
                self.fill(want - self.buf.len())?;
            }
            let mut end = self.complete_lines();
            while end == 0 && !self.eof {
                // One line longer than a block.
                self.fill(want)?;
                end = self.complete_lines();
            }
            if end == 0 {
                return if self.rows == 0 {
                    Err(no_data(self.header_line))
                } else {
                    Ok(None)
                };
            }
            let text = &self.buf[..end];
            let (data, labels) = self.layout.rows_parallel(text, self.next_no)?;
            self.next_no += text.iter().filter(|&&b| b == b'\n').count();
            self.bytes_read += end;
            self.buf.drain(..end);
            if data.is_empty() {
                // Only blank lines.
                continue;
            }
            let x = Matrix::new(self.layout.width, data)?;
            self.rows += x.n_rows();
            return Ok(Some(Block {
                x,
                labels: self.has_labels().then_some(labels),
            }));
        }
    }

    /// Bytes of `buf` that are whole lines (all of it at the end of the input).
    fn complete_lines(&self) -> usize {
        if self.eof {
            self.buf.len()
        } else {
            self.buf
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
        }
    }

    /// Reads up to `n` more bytes.
    fn fill(&mut self, n: usize) -> Result<()> {
        let len = self.buf.len();
        self.buf.resize(len + n.max(1), 0);
        let got = loop {
            match self.reader.read(&mut self.buf[len..]) {
                Ok(g) => break g,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    self.buf.truncate(len);
                    return Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        };
        self.buf.truncate(len + got);
        self.eof |= got == 0;
        Ok(())
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

    /// Blocks of `block_bytes` text per thread over `text`.
    fn blocks(text: &str, label: Option<&str>, block_bytes: usize) -> Result<Vec<Block>> {
        let mut b = CsvBlocks::new(text.as_bytes(), "t.csv".into(), label)?;
        b.block_bytes = block_bytes;
        std::iter::from_fn(|| b.next_block().transpose()).collect()
    }

    #[test]
    fn blocks_give_the_rows_of_a_whole_parse_in_any_block_size() {
        let text = big(3_000);
        let whole = Dataset::parse(&text, None).unwrap();
        for size in [1, 7, 100, 4096, 1 << 20] {
            let blocks = blocks(&text, None, size).unwrap();
            let rows: Vec<f64> = blocks
                .iter()
                .flat_map(|b| b.x.as_slice().to_vec())
                .collect();
            let labels: Vec<bool> = blocks
                .iter()
                .flat_map(|b| b.labels.clone().unwrap())
                .collect();
            assert_eq!(rows, whole.x.as_slice(), "block size {size}");
            assert_eq!(Some(labels), whole.labels);
        }
        // A bad value in a later block names its line.
        let bad = format!("{text}1,oops,0\n");
        let lines = bad.lines().count();
        let e = blocks(&bad, None, 100).unwrap_err().to_string();
        assert!(e.contains(&format!("line {lines}")), "{e}");
        // No header, no rows.
        for (t, want) in [
            ("", "no header"),
            ("\n \n", "no header"),
            ("a,b\n", "no data"),
            ("a,b\n\n\n", "no data"),
        ] {
            let e = blocks(t, None, 1).unwrap_err().to_string();
            assert!(e.contains(want), "{t:?}: {e}");
        }
    }

    #[test]
    fn blocks_put_the_columns_in_the_order_asked() {
        let mut b =
            CsvBlocks::new(&b"x,label,y,z\n1,0,2,3\n4,1,5,6"[..], "t.csv".into(), None).unwrap();
        assert_eq!(b.feature_names(), ["x", "y", "z"]);
        assert!(b.set_order(&[0, 0, 1]).is_err() && b.set_order(&[0, 1]).is_err());
        b.set_order(&[2, 0, 1]).unwrap();
        assert_eq!(b.feature_names(), ["z", "x", "y"]);
        let block = b.next_block().unwrap().unwrap();
        assert_eq!(block.x.as_slice(), [3.0, 1.0, 2.0, 6.0, 4.0, 5.0]);
        assert_eq!(block.labels, Some(vec![false, true]));
        assert!(b.next_block().unwrap().is_none());
    }
}
