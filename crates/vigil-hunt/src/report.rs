//! Rendering a [`Hunt`]: a table for people (coloured on a terminal), JSON lines or CSV for
//! programs, and a summary.

use std::io::{self, Write};

use vigil_detect::Level;

use crate::{Hit, Hunt, level_name};

/// Matches to write: [`Hunt::hits`], or a [`HitStream`](crate::HitStream).
fn held<'a, 'r>(hunt: &'a Hunt<'r>) -> impl Iterator<Item = io::Result<Hit<'r>>> + 'a {
    hunt.hits.iter().cloned().map(Ok)
}

/// A table of more rows than this is written in blocks of this many rows, each aligned on its
/// own, so a hunt with millions of matches is not held in memory to be printed.
const TABLE_BLOCK: usize = 10_000;

/// Column widths of the table; longer values are cut with `…`.
const TITLE_WIDTH: usize = 48;
const WHERE_WIDTH: usize = 40;
const DETAILS_WIDTH: usize = 100;

/// `text` cut to at most `width` characters, ending in `…` when cut; line breaks and tabs
/// become spaces so a row stays one line.
pub fn truncate(text: &str, width: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= width {
        return flat;
    }
    let mut out: String = flat.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A text table for people: each column padded to its widest cell, by display width (a CJK
/// character or an emoji takes two columns), one space between columns, the last column
/// not padded. Cells are one line: control characters become spaces.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
    /// (row, column, ANSI colour) of coloured cells; the colour wraps the padded cell so it
    /// adds no width.
    colours: Vec<(usize, usize, &'static str)>,
}

impl Table {
    /// A table with this header row.
    pub fn new(header: &[&str]) -> Self {
        let mut t = Self::default();
        t.row(header.iter().map(|h| h.to_string()).collect());
        t
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| {
                    if c.contains(char::is_control) {
                        c.chars()
                            .map(|ch| if ch.is_control() { ' ' } else { ch })
                            .collect()
                    } else {
                        c
                    }
                })
                .collect(),
        );
    }

    /// Colours `column` of the last row added.
    pub fn colour_last(&mut self, column: usize, colour: &'static str) {
        if let Some(row) = self.rows.len().checked_sub(1) {
            self.colours.push((row, column, colour));
        }
    }

    /// Writes the table.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        use unicode_width::UnicodeWidthStr;
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.width());
            }
        }
        let mut line = String::new();
        for (r, row) in self.rows.iter().enumerate() {
            line.clear();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push(' ');
                }
                let colour = self
                    .colours
                    .iter()
                    .find(|(cr, cc, _)| (*cr, *cc) == (r, c))
                    .map(|(_, _, colour)| *colour);
                if let Some(colour) = colour {
                    line.push_str(colour);
                }
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[c] - cell.width()));
                }
                if colour.is_some() {
                    line.push_str("\x1b[0m");
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// The ANSI colour of a level in the table.
fn level_colour(level: Level) -> &'static str {
    match level {
        Level::Critical => "\x1b[1;31m",
        Level::High => "\x1b[31m",
        Level::Medium => "\x1b[33m",
        Level::Low => "\x1b[36m",
        Level::Informational => "\x1b[2m",
    }
}

/// The end of `location` when longer than the column.
fn location_cell(location: &str) -> String {
    let count = location.chars().count();
    if count > WHERE_WIDTH {
        let tail: String = location.chars().skip(count - (WHERE_WIDTH - 1)).collect();
        format!("…{tail}")
    } else {
        location.to_string()
    }
}

/// [`write_table_with`] without colour.
pub fn write_table(hunt: &Hunt<'_>, out: &mut dyn Write) -> io::Result<()> {
    write_table_with(hunt, false, out)
}

/// One row per hit, sorted as [`Hunt::hits`] is (by time): time, level, rule title, rule id,
/// file:record (the end of the path when long), and a few key fields; then one row per
/// correlation match (its last event's place, `+N` more). `colour` colours the level
/// (ANSI escapes: for terminals only).
pub fn write_table_with(hunt: &Hunt<'_>, colour: bool, out: &mut dyn Write) -> io::Result<()> {
    write_table_from(hunt, held(hunt), colour, out)
}

/// [`write_table_with`] with the matches from `hits` (a [`HitStream`](crate::HitStream)):
/// past [`TABLE_BLOCK`] rows, each block of rows is aligned on its own.
pub fn write_table_from<'r>(
    hunt: &Hunt<'r>,
    hits: impl IntoIterator<Item = io::Result<Hit<'r>>>,
    colour: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    const HEADER: [&str; 6] = ["TIME", "LEVEL", "RULE", "RULE ID", "FILE:RECORD", "DETAILS"];
    let mut table = Table::new(&HEADER);
    let level_cell = |table: &mut Table, level: Level| {
        if colour {
            table.colour_last(1, level_colour(level));
        }
    };
    for (rows, hit) in hits.into_iter().enumerate() {
        let hit = hit?;
        if rows > 0 && rows % TABLE_BLOCK == 0 {
            table.write(out)?;
            table = Table::default();
        }
        let rule = hit.rule.rule();
        let details = hit
            .key_fields()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        table.row(vec![
            truncate(hit.time.as_deref().unwrap_or("-"), 28),
            level_name(hit.level()).to_string(),
            truncate(&rule.title, TITLE_WIDTH),
            rule.id.as_deref().unwrap_or("-").to_string(),
            location_cell(&hit.location.to_string()),
            truncate(&details, DETAILS_WIDTH),
        ]);
        level_cell(&mut table, hit.level());
    }
    for c in &hunt.correlations {
        let mut location = c.events.last().map(|l| l.to_string()).unwrap_or_default();
        if c.events.len() > 1 {
            location = format!("{} +{}", location_cell(&location), c.events.len() - 1);
        }
        table.row(vec![
            c.last.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            level_name(c.level).to_string(),
            truncate(&c.title, TITLE_WIDTH),
            c.id.as_deref().unwrap_or("-").to_string(),
            location,
            truncate(&c.details(), DETAILS_WIDTH),
        ]);
        level_cell(&mut table, c.level);
    }
    table.write(out)
}

/// The columns of [`write_csv`].
pub const CSV_HEADER: [&str; 8] = [
    "time",
    "level",
    "rule_title",
    "rule_id",
    "kind",
    "file",
    "record",
    "details",
];

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break, quotes
/// doubled.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A header, then one row per hit and per correlation match ([`CSV_HEADER`]); `details`
/// holds the key fields as `name=value` separated by spaces (the correlation's count and
/// group for correlation matches).
pub fn write_csv(hunt: &Hunt<'_>, out: &mut dyn Write) -> io::Result<()> {
    write_csv_from(hunt, held(hunt), out)
}

/// [`write_csv`] with the matches from `hits` (a [`HitStream`](crate::HitStream)).
pub fn write_csv_from<'r>(
    hunt: &Hunt<'r>,
    hits: impl IntoIterator<Item = io::Result<Hit<'r>>>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut row = |fields: [&str; 8]| -> io::Result<()> {
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.write_all(line.join(",").as_bytes())?;
        out.write_all(b"\r\n")
    };
    row(CSV_HEADER)?;
    for hit in hits {
        let hit = hit?;
        let rule = hit.rule.rule();
        let details = hit
            .key_fields()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        row([
            hit.time.as_deref().unwrap_or(""),
            level_name(hit.level()),
            &rule.title,
            rule.id.as_deref().unwrap_or(""),
            "detection",
            &hit.location.path.display().to_string(),
            &hit.location.record.to_string(),
            &details,
        ])?;
    }
    for c in &hunt.correlations {
        let last = c.events.last();
        row([
            &c.last.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            level_name(c.level),
            &c.title,
            c.id.as_deref().unwrap_or(""),
            "correlation",
            &last
                .map(|l| l.path.display().to_string())
                .unwrap_or_default(),
            &last.map(|l| l.record.to_string()).unwrap_or_default(),
            &c.details(),
        ])?;
    }
    Ok(())
}

/// One JSON object per hit and line ([`Hit::write_json`]: the event as its text was read).
pub fn write_json_lines(hunt: &Hunt<'_>, out: &mut dyn Write) -> io::Result<()> {
    write_json_lines_from(hunt, held(hunt), out)
}

/// [`write_json_lines`] with the matches from `hits` (a [`HitStream`](crate::HitStream)).
pub fn write_json_lines_from<'r>(
    hunt: &Hunt<'r>,
    hits: impl IntoIterator<Item = io::Result<Hit<'r>>>,
    out: &mut dyn Write,
) -> io::Result<()> {
    for hit in hits {
        hit?.write_json(out)?;
        out.write_all(b"\n")?;
    }
    for c in &hunt.correlations {
        serde_json::to_writer(&mut *out, &c.to_json())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// What the rules were: loaded, rejected, and how many the pipelines could not map.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleCounts {
    pub loaded: usize,
    pub rejected: usize,
    pub unmapped: usize,
}

/// ` (57 below --min-level low hidden: informational 57; --min-level informational shows
/// them)`, or nothing when the level filter left nothing out: so a hunt whose findings are
/// all low or informational does not read as a clean one.
fn hidden_note(hunt: &Hunt<'_>) -> String {
    let (Some(min), hidden) = (hunt.min_level, hunt.hidden()) else {
        return String::new();
    };
    if hidden == 0 {
        return String::new();
    }
    let levels: Vec<String> = hunt
        .below_min_level
        .iter()
        .map(|(level, n)| format!("{} {n}", level_name(*level)))
        .collect();
    let lowest = hunt.below_min_level.last().map_or(min, |(level, _)| *level);
    format!(
        " ({hidden} below --min-level {} hidden: {}; --min-level {} shows them)",
        level_name(min),
        levels.join(", "),
        level_name(lowest)
    )
}

/// Files, events, hits by level, the top rules, the rules, and problems met.
pub fn write_summary(hunt: &Hunt<'_>, rules: RuleCounts, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "Summary")?;
    writeln!(
        out,
        "  files: {} ({:.1} MiB, {} threads), events: {}, matches: {}{}, correlations: {}",
        hunt.files,
        hunt.bytes as f64 / (1024.0 * 1024.0),
        hunt.threads,
        hunt.events,
        hunt.matches,
        hidden_note(hunt),
        hunt.correlations.len()
    )?;
    if hunt.out_of_range > 0 {
        writeln!(
            out,
            "  outside --from/--to (or without a time): {} events",
            hunt.out_of_range
        )?;
    }
    if hunt.untimed_for_correlation > 0 {
        writeln!(
            out,
            "  not correlated (no event time): {} events",
            hunt.untimed_for_correlation
        )?;
    }
    let by_level = hunt.by_level();
    if !by_level.is_empty() {
        let levels: Vec<String> = by_level
            .iter()
            .map(|(level, n)| format!("{} {n}", level_name(*level)))
            .collect();
        writeln!(out, "  by level: {}", levels.join(", "))?;
    }
    let top = hunt.top_rules(10);
    if !top.is_empty() {
        writeln!(out, "  top rules:")?;
        for (title, id, n) in top {
            writeln!(out, "    {n:6}  {title} ({})", id.as_deref().unwrap_or("-"))?;
        }
    }
    writeln!(
        out,
        "  rules: {} loaded, {} rejected, {} with a logsource no pipeline maps (never evaluated)",
        rules.loaded, rules.rejected, rules.unmapped
    )?;
    if !hunt.errors.is_empty() {
        writeln!(
            out,
            "  skipped: {} bad files, lines or records",
            hunt.errors.len()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_as_wide_as_their_widest_cell_in_display_width() {
        let mut t = Table::new(&["NAME", "ROLE", "NOTE"]);
        t.row(vec![
            "a-much-longer-name".into(),
            "admin".into(),
            "x".into(),
        ]);
        t.row(vec!["日本語".into(), "viewer".into(), "two\nlines".into()]);
        t.colour_last(1, "\x1b[31m");
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME               ROLE   NOTE\n\
             a-much-longer-name admin  x\n\
             日本語             \x1b[31mviewer\x1b[0m two lines\n"
        );
    }
}
