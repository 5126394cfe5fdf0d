//! `vigil rules lint|test`: checking Sigma rules. The work is `vigil_hunt::rules`'; this
//! parses arguments and prints.
//!
//! Exit codes: 0 clean, 1 problems (lint errors, or warnings with `--deny-warnings`; failed
//! tests or rules that do not load), 2 error (a directory that cannot be read, a bad
//! `--pipeline`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use vigil_hunt::rules::{self, RuleOutcome, RuleSource};

/// `writeln!` into the output String (which cannot fail).
macro_rules! wl {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

#[derive(Subcommand)]
pub enum RulesCmd {
    /// Load every rule of the directories as `vigil hunt` would (with the built-in pack, so
    /// filters and correlations may name its rules) and report each problem: rules the
    /// engine rejects (with the reason), duplicate ids (errors); missing id, level, tags or
    /// description, malformed ids and tags, logsources no pipeline maps (warnings).
    Lint {
        /// Rule directories (searched recursively for .yml/.yaml) or rule files; none for
        /// the built-in pack.
        #[arg(value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Check the directories on their own, without the built-in pack.
        #[arg(long)]
        no_builtin: bool,
        /// Exit 1 on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Processing pipelines to check logsources against: all, windows, linux, network
        /// or vigil.
        #[arg(long, default_value = "all")]
        pipeline: String,
    },
    /// Run each rule's own test events (`x-vigil-tests`: true positives, true negatives,
    /// correlation sequences) and report each rule's result. Without DIR: the built-in pack.
    Test {
        /// Rule directories or files; none for the built-in pack.
        #[arg(value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Test the directories on their own, without the built-in pack.
        #[arg(long)]
        no_builtin: bool,
        /// List the rules without tests too.
        #[arg(long, short = 'v')]
        verbose: bool,
        /// Processing pipelines the rules are mapped through (as for lint).
        #[arg(long, default_value = "all")]
        pipeline: String,
    },
}

pub fn main(cmd: RulesCmd) -> ExitCode {
    let mut out = String::new();
    let result = run(cmd, &mut out);
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The rules to check and their context.
struct Checked {
    /// The files of `dirs`, or the built-in pack when none is given.
    sources: Vec<RuleSource>,
    /// Loaded with them but not checked: the built-in pack, for directories.
    context: Vec<RuleSource>,
    /// Files that could not be read (reported).
    unreadable: usize,
}

/// The sources of `dirs` (the built-in pack when empty), with unreadable files reported.
fn sources(
    dirs: &[PathBuf],
    no_builtin: bool,
    out: &mut String,
) -> Result<Checked, vigil_hunt::Error> {
    if dirs.is_empty() {
        return Ok(Checked {
            sources: rules::builtin_sources(),
            context: Vec::new(),
            unreadable: 0,
        });
    }
    let (sources, unreadable) = rules::read_sources(dirs)?;
    for e in &unreadable {
        wl!(out, "error: {e}");
    }
    Ok(Checked {
        sources,
        context: match no_builtin {
            true => Vec::new(),
            false => rules::builtin_sources(),
        },
        unreadable: unreadable.len(),
    })
}

/// Whether everything was clean.
fn run(cmd: RulesCmd, out: &mut String) -> Result<bool, vigil_hunt::Error> {
    match cmd {
        RulesCmd::Lint {
            dirs,
            no_builtin,
            deny_warnings,
            pipeline,
        } => {
            let pipelines = vigil_hunt::pipelines(&pipeline)?;
            let checked = sources(&dirs, no_builtin, out)?;
            let unreadable = checked.unreadable;
            let report = rules::lint(&checked.sources, &checked.context, &pipelines);
            for finding in &report.findings {
                wl!(out, "{finding}");
            }
            let errors = report.errors() + unreadable;
            wl!(
                out,
                "{} files, {} documents: {} rules, {} correlations, {} filters loaded; \
                 {errors} errors, {} warnings",
                report.files + unreadable,
                report.documents,
                report.rules,
                report.correlations,
                report.filters,
                report.warnings()
            );
            Ok(errors == 0 && (!deny_warnings || report.warnings() == 0))
        }
        RulesCmd::Test {
            dirs,
            no_builtin,
            verbose,
            pipeline,
        } => {
            let pipelines = vigil_hunt::pipelines(&pipeline)?;
            let checked = sources(&dirs, no_builtin, out)?;
            let unreadable = checked.unreadable;
            let report = rules::test(&checked.sources, &checked.context, &pipelines);
            for e in &report.load_errors {
                wl!(out, "error: {e}");
            }
            for rule in &report.rules {
                let path = rule.path.display();
                match &rule.outcome {
                    RuleOutcome::Passed => {
                        wl!(out, "ok    {path}: {} ({} cases)", rule.rule, rule.cases)
                    }
                    RuleOutcome::Failed(failures) => {
                        wl!(out, "FAIL  {path}: {}", rule.rule);
                        for f in failures {
                            wl!(out, "        {f}");
                        }
                    }
                    RuleOutcome::NoTests if verbose => {
                        wl!(out, "--    {path}: {} (no tests)", rule.rule)
                    }
                    RuleOutcome::NoTests => {}
                }
            }
            let not_loaded = report.load_errors.len() + unreadable;
            wl!(
                out,
                "{} passed, {} failed, {} without tests; {not_loaded} rule documents did not load",
                report.passed(),
                report.failed(),
                report.untested()
            );
            Ok(report.failed() == 0 && not_loaded == 0)
        }
    }
}
