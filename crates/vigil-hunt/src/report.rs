//! Rendering a [`Hunt`]: a table for people, JSON lines for programs, and a summary.

use std::io::{self, Write};

use crate::{Hunt, level_name};

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

/// One row per hit, sorted as [`Hunt::hits`] is (by time): time, level, rule title, rule id,
/// file:record (the end of the path when long), and a few key fields.
pub fn write_table(hunt: &Hunt<'_>, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<28} {:<13} {:<TITLE_WIDTH$} {:<36} {:<WHERE_WIDTH$} DETAILS",
        "TIME", "LEVEL", "RULE", "RULE ID", "FILE:RECORD"
    )?;
    for hit in &hunt.hits {
        let rule = hit.rule.rule();
        let location = hit.location.to_string();
        let count = location.chars().count();
        let location = if count > WHERE_WIDTH {
            let tail: String = location.chars().skip(count - (WHERE_WIDTH - 1)).collect();
            format!("…{tail}")
        } else {
            location
        };
        let details = hit
            .key_fields()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        writeln!(
            out,
            "{:<28} {:<13} {:<TITLE_WIDTH$} {:<36} {:<WHERE_WIDTH$} {}",
            truncate(hit.time.as_deref().unwrap_or("-"), 28),
            level_name(hit.level()),
            truncate(&rule.title, TITLE_WIDTH),
            rule.id.as_deref().unwrap_or("-"),
            location,
            truncate(&details, DETAILS_WIDTH),
        )?;
    }
    Ok(())
}

/// One JSON object per hit and line ([`Hit::to_json`](crate::Hit::to_json)).
pub fn write_json_lines(hunt: &Hunt<'_>, out: &mut dyn Write) -> io::Result<()> {
    for hit in &hunt.hits {
        serde_json::to_writer(&mut *out, &hit.to_json())?;
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

/// Files, events, hits by level, the top rules, the rules, and problems met.
pub fn write_summary(hunt: &Hunt<'_>, rules: RuleCounts, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "Summary")?;
    writeln!(
        out,
        "  files: {} ({:.1} MiB), events: {}, matches: {}",
        hunt.files,
        hunt.bytes as f64 / (1024.0 * 1024.0),
        hunt.events,
        hunt.hits.len()
    )?;
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
