//! Whole inputs: a JSON array (or several JSON values back to back), or lines — JSON
//! objects and text lines of any format, each through [`parse_line`](crate::parse_line).

use std::collections::VecDeque;
use std::io::BufRead;

use serde_json::Value as Json;

use crate::{Error, Format, LineContext, Result, finish, json, parse_line, parse_line_strict};

/// Reads events from `reader`: when the first non-blank byte is `[`, the input is JSON (an
/// array of event objects, or several values back to back); otherwise each non-empty line is
/// one event as [`parse_line`] makes it. Errors carry the line number: unreadable input,
/// malformed JSON (which ends the input), array elements that are not objects, and — when
/// `ctx.format` names a format — lines that are not in it.
pub fn parse_reader(reader: impl BufRead, ctx: &LineContext) -> impl Iterator<Item = Result<Json>> {
    Events {
        reader,
        ctx: ctx.clone(),
        line_no: 0,
        mode: Mode::Unknown,
        buf: Vec::new(),
    }
}

enum Mode {
    Unknown,
    Lines,
    Json(VecDeque<Result<Json>>),
    Done,
}

struct Events<'a, R> {
    reader: R,
    ctx: LineContext<'a>,
    line_no: u64,
    mode: Mode,
    buf: Vec<u8>,
}

impl<R: BufRead> Events<'_, R> {
    /// Skips leading blank space; true when the input starts with `[`.
    fn starts_with_bracket(&mut self) -> Result<bool> {
        loop {
            let chunk = self.reader.fill_buf().map_err(|source| Error::Io {
                line: self.line_no + 1,
                source,
            })?;
            if chunk.is_empty() {
                return Ok(false);
            }
            let blank = chunk
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .count();
            self.line_no += chunk[..blank].iter().filter(|&&b| b == b'\n').count() as u64;
            if blank < chunk.len() {
                let first = chunk[blank];
                self.reader.consume(blank);
                return Ok(first == b'[');
            }
            self.reader.consume(blank);
        }
    }

    fn read_json(&mut self) -> VecDeque<Result<Json>> {
        let mut out = VecDeque::new();
        let mut text = Vec::new();
        if let Err(source) = self.reader.read_to_end(&mut text) {
            out.push_back(Err(Error::Io {
                line: self.line_no + 1,
                source,
            }));
            return out;
        }
        let offset = self.line_no;
        let mut stream = serde_json::Deserializer::from_slice(&text).into_iter::<Json>();
        let mut index = 0usize;
        let mut push = |value: Json, line: u64, out: &mut VecDeque<Result<Json>>| {
            index += 1;
            out.push_back(if value.is_object() {
                Ok(finish(
                    json::with_timestamp(value, self.ctx.received),
                    &self.ctx,
                ))
            } else {
                Err(Error::Line {
                    line,
                    reason: format!("JSON value {index} is not an object"),
                })
            });
        };
        loop {
            let before = stream.byte_offset();
            let line = offset + 1 + text[..before].iter().filter(|&&b| b == b'\n').count() as u64;
            match stream.next() {
                None => break,
                Some(Ok(Json::Array(items))) => {
                    for item in items {
                        push(item, line, &mut out);
                    }
                }
                Some(Ok(value)) => push(value, line, &mut out),
                Some(Err(e)) => {
                    out.push_back(Err(Error::Line {
                        line: offset + e.line() as u64,
                        reason: format!("bad JSON: {e}"),
                    }));
                    break;
                }
            }
        }
        out
    }

    fn next_line(&mut self) -> Option<Result<Json>> {
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    self.mode = Mode::Done;
                    return Some(Err(Error::Io {
                        line: self.line_no + 1,
                        source,
                    }));
                }
            }
            self.line_no += 1;
            let line = String::from_utf8_lossy(&self.buf);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            let forced = self.ctx.format.is_some_and(|f| f != Format::Auto);
            if !forced {
                return Some(Ok(parse_line(line, &self.ctx)));
            }
            return Some(parse_line_strict(line, &self.ctx).map_err(|e| match e {
                Error::Line { reason, .. } => Error::Line {
                    line: self.line_no,
                    reason,
                },
                other => other,
            }));
        }
    }
}

impl<R: BufRead> Iterator for Events<'_, R> {
    type Item = Result<Json>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match &mut self.mode {
                Mode::Unknown => {
                    self.mode = match self.starts_with_bracket() {
                        Ok(true) => Mode::Json(self.read_json()),
                        Ok(false) => Mode::Lines,
                        Err(e) => {
                            self.mode = Mode::Done;
                            return Some(Err(e));
                        }
                    };
                }
                Mode::Lines => return self.next_line(),
                Mode::Json(queue) => return queue.pop_front(),
                Mode::Done => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> LineContext<'static> {
        LineContext::new("2026-11-23T12:00:00Z".parse().unwrap())
    }

    #[test]
    fn json_arrays_are_split_into_events() {
        let input = b"\n  [{\"a\":1,\"time\":\"2026-01-01T00:00:00Z\"},\n 2, {\"b\":2}]" as &[u8];
        let out: Vec<_> = parse_reader(input, &ctx().with_host("h")).collect();
        assert_eq!(out.len(), 3);
        let first = out[0].as_ref().unwrap();
        assert_eq!(first["@timestamp"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(first["host"]["name"], "h");
        let err = out[1].as_ref().unwrap_err().to_string();
        assert_eq!(err, "line 2: JSON value 2 is not an object");
        assert_eq!(out[2].as_ref().unwrap()["b"], 2);
    }

    #[test]
    fn broken_json_arrays_report_the_line() {
        let input = b"[\n{\"a\":1},\n{\"a\":" as &[u8];
        let out: Vec<_> = parse_reader(input, &ctx()).collect();
        assert_eq!(out.len(), 1);
        let err = out[0].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("line 3: bad JSON"), "{err}");
    }

    #[test]
    fn lines_of_mixed_formats() {
        let input = "{\"x\":1}\n\nNov 23 10:00:00 h sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2\r\nplain\n";
        let out: Vec<Json> = parse_reader(input.as_bytes(), &ctx())
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["x"], 1);
        assert_eq!(out[1]["event"]["dataset"], "auth");
        assert_eq!(out[2]["event"]["dataset"], "raw");
    }

    #[test]
    fn a_forced_format_reports_lines_that_are_not_in_it() {
        let input = "type=SYSCALL msg=audit(1700000000.1:2): syscall=59\nnot audit\n";
        let out: Vec<_> =
            parse_reader(input.as_bytes(), &ctx().with_format(Format::Auditd)).collect();
        assert!(out[0].is_ok());
        let err = out[1].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("line 2: not an auditd record"), "{err}");
    }
}
