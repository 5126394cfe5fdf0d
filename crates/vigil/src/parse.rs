//! `vigil parse`: log lines into normalized events (`docs/EVENTS.md`), one JSON object per
//! line on standard output. The work is `vigil_parse`'s; this opens the input and prints.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use vigil_parse::{Format, LineContext, parse_reader};

#[derive(Args)]
pub struct ParseArgs {
    /// Line format: auto, syslog, auth, auditd, nginx, apache, firewall or json. With auto
    /// each line's format is detected from its shape and the file name; with any other, lines
    /// not in that format are reported on standard error.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    format: Format,
    /// Host name for events whose line names none.
    #[arg(long)]
    host: Option<String>,
    /// The file to read (a JSON array, JSON lines or text lines), or `-` for standard input.
    #[arg(value_name = "FILE")]
    input: PathBuf,
}

/// Prints one event per line; unparsable lines go to standard error with their line number
/// and do not change the exit status. Only an unreadable input is an error.
pub fn run(args: ParseArgs) -> anyhow::Result<()> {
    let stdin = args.input.as_os_str() == "-";
    let reader: Box<dyn BufRead> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        Box::new(BufReader::new(file))
    };
    let path = (!stdin).then(|| args.input.to_string_lossy().into_owned());
    let label = path.as_deref().unwrap_or("<stdin>");
    let ctx = LineContext {
        path: path.as_deref(),
        host: args.host.as_deref(),
        received: chrono::Utc::now(),
        format: Some(args.format),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut bad = 0u64;
    for item in parse_reader(reader, &ctx) {
        match item {
            Ok(event) => {
                let written = serde_json::to_writer(&mut out, &event)
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                match written {
                    Ok(()) => {}
                    // `vigil parse big.log | head` is not an error.
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => return Err(e).context("cannot write to standard output"),
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("{label}: {e}");
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write to standard output");
        }
        _ => {}
    }
    if bad > 0 {
        eprintln!(
            "{label}: {bad} line(s) could not be parsed as {}",
            args.format
        );
    }
    Ok(())
}
