//! `vigil hunt`: Sigma rules over files, offline. The work is `vigil_hunt`'s; this parses
//! arguments, shows progress and prints.
//!
//! Exit codes: 0 no findings, 1 findings, 2 error (bad arguments, an unreadable rule
//! directory, no rule loaded, no input file at all, output that cannot be written; a reader
//! that stops early, as `| head` does, is not an error). A file
//! or line that cannot be parsed is reported on standard error and skipped: it does not make
//! the exit code 2, so one corrupt file among thousands does not hide the findings. Nor does
//! an input that names nothing when other inputs give files: it is reported as a warning
//! (exit 2 only when no input gives a file).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use vigil_detect::{CompileOptions, Level};
use vigil_hunt::report::{self, RuleCounts};
use vigil_hunt::{Hunter, Progress};

#[derive(Args)]
pub struct HuntArgs {
    /// Directory of Sigma rules (searched recursively); repeat for several, e.g. a SigmaHQ
    /// checkout's rules/ and rules-emerging-threats/. Loaded with Vigil's built-in rule pack
    /// as one set, so their filters and correlations may name built-in rules.
    #[arg(long = "rules", short = 'r', value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Leave Vigil's built-in rule pack out: only the --rules directories.
    #[arg(long, requires = "rules")]
    no_builtin: bool,
    /// Processing pipelines mapping rule logsources to events: one built-in, or all of them.
    #[arg(long, value_enum, default_value_t = PipelineChoice::All)]
    pipeline: PipelineChoice,
    /// Only matches of rules at this level or above. The default, low, leaves out
    /// informational rules (one failed login, one root login attempt's context): the
    /// summary says how many matches that hid.
    #[arg(long, value_enum, default_value_t = MinLevel::Low)]
    min_level: MinLevel,
    /// Output: a table (default), JSON lines (one object per match, with the whole event)
    /// or CSV. With json and csv the summary goes to standard error.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
    /// The same as `--output json`.
    #[arg(long, conflicts_with = "output")]
    json: bool,
    /// Only events at or after this time: RFC 3339 (2024-05-01T09:00:00Z), a date
    /// (2024-05-01) or a duration back from now (30m, 24h, 7d). Events without a time are
    /// left out when --from or --to is given.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only events at or before this time (as --from).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Colour the table: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, value_enum, default_value_t = Colour::Auto)]
    color: Colour,
    /// Files read at once (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    threads: Option<usize>,
    /// Files, directories (searched recursively) or patterns (`logs/*.evtx`) to hunt:
    /// .evtx, .json (one event or an array), .jsonl/.ndjson, .pcap/.pcapng/.cap (network
    /// flow, DNS, HTTP and TLS events), and anything else as text lines.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum Colour {
    Auto,
    Always,
    Never,
}

/// Progress is drawn only on a terminal, and only for inputs this large (smaller ones are
/// done before a bar is worth reading).
const PROGRESS_MIN_BYTES: u64 = 8 << 20;

#[derive(Clone, Copy, ValueEnum)]
enum PipelineChoice {
    Windows,
    Linux,
    Network,
    Vigil,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum MinLevel {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl From<MinLevel> for Level {
    fn from(l: MinLevel) -> Self {
        match l {
            MinLevel::Informational => Level::Informational,
            MinLevel::Low => Level::Low,
            MinLevel::Medium => Level::Medium,
            MinLevel::High => Level::High,
            MinLevel::Critical => Level::Critical,
        }
    }
}

/// Runs the hunt and prints; the exit code as the module documentation says.
pub fn main(args: HuntArgs) -> ExitCode {
    match run(args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The number of findings, or what stopped the hunt.
fn run(args: HuntArgs) -> anyhow::Result<usize> {
    let output = if args.json { Output::Json } else { args.output };
    let range =
        vigil_hunt::TimeRange::parse(args.from.as_deref(), args.to.as_deref(), chrono::Utc::now())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pipeline = match args.pipeline {
        PipelineChoice::Windows => "windows",
        PipelineChoice::Linux => "linux",
        PipelineChoice::Network => "network",
        PipelineChoice::Vigil => "vigil",
        PipelineChoice::All => "all",
    };
    // These errors already name their cause; `{:#}` would repeat it.
    let flat = |e: vigil_hunt::Error| anyhow::anyhow!("{e}");
    let pipelines = vigil_hunt::pipelines(pipeline).map_err(flat)?;
    let tty = std::io::stderr().is_terminal();
    let spinner = if tty {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    spinner.set_message("loading rules");
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let loaded = vigil_hunt::load_rules(!args.no_builtin, &args.rules, &CompileOptions::default());
    spinner.finish_and_clear();
    let loaded = loaded.map_err(flat)?;
    let mut counts = RuleCounts {
        loaded: loaded.rules.len(),
        rejected: loaded.errors.len(),
        unmapped: 0,
    };
    for (reason, errors) in loaded.rejection_reasons() {
        eprintln!("warning: {} rules rejected: {reason}", errors.len());
    }
    let correlations = loaded.correlations.clone();
    let ruleset = loaded.into_ruleset_with(&pipelines);
    counts.unmapped = ruleset.unmapped().count();

    let (files, errors) = vigil_hunt::expand_inputs(&args.inputs);
    if files.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        anyhow::bail!("no input files");
    }

    let bytes: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let bar = if tty && bytes >= PROGRESS_MIN_BYTES {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, eta {eta}) {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let hunter = Hunter::new(&ruleset)
        .time_range(range)
        .threads(args.threads.unwrap_or(0))
        .correlations(correlations)
        .map_err(flat)?
        .min_level(args.min_level.into());
    let (mut done, mut total) = (0, 0);
    // Matches come as a stream in time order, merged from memory and from sorted runs on
    // disk: memory stays bounded whatever the input size.
    let (hunt, hits) = hunter.hunt_stream(&args.inputs, |p| match p {
        Progress::Planned { files, bytes } => {
            total = files;
            bar.set_length(bytes);
        }
        Progress::FileStarted { path } => {
            // The end of the path: a message wider than the terminal breaks the bar.
            let path = path.display().to_string();
            let tail: String = path
                .chars()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bar.set_message(format!("{}/{total} {tail}", done + 1));
        }
        Progress::FileDone { bytes, .. } => {
            done += 1;
            bar.inc(bytes);
        }
    });
    bar.finish_and_clear();
    for e in &hunt.errors {
        eprintln!("warning: skipped {e}");
    }

    let stdout = std::io::stdout();
    let colour = match args.color {
        Colour::Always => true,
        Colour::Never => false,
        Colour::Auto => vigil_core::colour_allowed(&stdout),
    };
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = (|| -> std::io::Result<()> {
        match output {
            Output::Json | Output::Csv => {
                if output == Output::Json {
                    report::write_json_lines_from(&hunt, hits, &mut out)?;
                } else {
                    report::write_csv_from(&hunt, hits, &mut out)?;
                }
                out.flush()?;
                report::write_summary(&hunt, counts, &mut std::io::stderr())
            }
            Output::Table => {
                report::write_table_from(&hunt, hits, colour, &mut out)?;
                writeln!(out)?;
                report::write_summary(&hunt, counts, &mut out)?;
                out.flush()
            }
        }
    })();
    match written {
        // The reader went away (`vigil hunt ... | head`): what it wanted was printed.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("writing results")?,
    }
    Ok(hunt.findings())
}
