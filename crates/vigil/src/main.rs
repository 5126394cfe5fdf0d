//! `vigil`: the server and its command line. Thin: parses arguments and calls the libraries.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vigil_core::{Role, Username};
use vigil_server::config::{Config, Secret};
use vigil_store::{NewUser, UserUpdate};

/// mimalloc: ingestion allocates many small JSON values per event; glibc malloc spent a
/// fifth of the ingest benchmark's time in malloc/free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod analyze;
mod bench;
mod bench_ingest;
mod bench_jobs;
mod bench_stream;
mod hunt;
mod keys;
mod ml;
mod parse;
mod rules;
mod worker;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Vigil: self-hosted security monitoring and incident response"
)]
struct Cli {
    /// Configuration file (default: ./vigil.toml when present). Also VIGIL_CONFIG.
    #[arg(long, global = true, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the all-in-one server (API, auth, storage).
    Serve,
    /// Run background jobs (webhook delivery, retention, ML retraining, AI auto-triage)
    /// from the Redis queue, next to `vigil serve` replicas; needs `[redis] url`.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Print the version.
    Version,
    /// Measure performance.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Hunt offline: run Sigma rules over EVTX, JSON, JSON lines and text log files.
    /// Exit code 0: no findings, 1: findings, 2: error.
    Hunt(hunt::HuntArgs),
    /// Check Sigma rules: lint a directory, or run the rules' own test events.
    #[command(subcommand)]
    Rules(rules::RulesCmd),
    /// Enrollment tokens for new agents.
    #[command(subcommand)]
    AgentToken(keys::AgentTokenCmd),
    /// API keys for log shippers and other machines.
    #[command(subcommand)]
    ApiKey(keys::ApiKeyCmd),
    /// Parse log lines (syslog, auth, auditd, nginx/apache, firewall, JSON) into normalized
    /// events, one JSON object per line.
    Parse(parse::ParseArgs),
    /// Anomaly detection: train an Isolation Forest on a CSV file, score another.
    #[command(subcommand)]
    Ml(ml::MlCmd),
    /// Analyse the last N minutes of events (deterministic counts and findings, plus the
    /// model's analysis when `[ollama]` is configured), as `POST /api/v1/analyze` does.
    Analyze(analyze::AnalyzeArgs),
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user; the organization is created when missing. The password is read from
    /// VIGIL_USER_PASSWORD, or generated and printed once.
    Create {
        username: String,
        #[arg(long, default_value = "analyst")]
        role: String,
        #[arg(long, default_value = "default")]
        org: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// List users of all organizations.
    List,
    /// Change a user's role; their sessions end so the new role applies at once.
    SetRole { username: String, role: String },
    /// Set a new password (VIGIL_USER_PASSWORD or generated) and end the user's sessions.
    ResetPassword { username: String },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate the configuration and print it with secrets redacted.
    Check,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Offline and synchronous, with their own exit codes (2 for errors).
    let cli = match cli.command {
        Command::Hunt(args) => return hunt::main(args),
        Command::Rules(cmd) => return rules::main(cmd),
        command => Cli { command, ..cli },
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    };
    // Dropping the runtime would wait without bound for blocking tasks (a file read, a
    // detection pass); the drain is over by now, so they are not waited for long.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    code
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(Config::load(path.map(PathBuf::as_path))?)
}

/// Opens the configured database for a command, saying which one on stderr. Only `migrate`
/// (`create`) may make a new one: an admin command run from another directory must not
/// quietly work on a fresh, empty `./vigil-data`.
async fn open_store(cfg: &Config, create: bool) -> anyhow::Result<vigil_store::DynStore> {
    let url = cfg.database_url();
    let shown = database_name(&url);
    eprintln!("database: {shown}");
    let store = if create {
        vigil_store::connect(&url, cfg.database.max_connections).await
    } else {
        vigil_store::connect_existing(&url, cfg.database.max_connections).await
    };
    let store = store.map_err(|e| match e {
        e @ vigil_store::Error::NoDatabase(_) => anyhow::anyhow!(
            "{e}. Run this where `vigil serve` runs (its data_dir), \
             point --config / VIGIL_DATA_DIR / VIGIL_DATABASE__URL at it, or create one with \
             `vigil migrate`"
        ),
        e => anyhow::Error::new(e).context(format!("database {shown}")),
    })?;
    store.migrate().await?;
    Ok(store)
}

/// The database a URL names, for people: a SQLite file as an absolute path, any other URL
/// with its password hidden.
fn database_name(url: &str) -> String {
    let Some(path) = url.strip_prefix("sqlite://") else {
        return vigil_store::redact_url(url);
    };
    let file = path.split('?').next().unwrap_or(path);
    let abs = std::path::absolute(file).unwrap_or_else(|_| PathBuf::from(file));
    format!("sqlite://{}", abs.display())
}

/// The password from `VIGIL_USER_PASSWORD`, or a generated one that is printed.
fn password_from_env() -> anyhow::Result<(String, bool)> {
    match std::env::var("VIGIL_USER_PASSWORD") {
        Ok(p) if !p.is_empty() => {
            vigil_core::validate_password(&p)
                .map_err(|e| anyhow::anyhow!("VIGIL_USER_PASSWORD: {e}"))?;
            Ok((p, false))
        }
        _ => Ok((vigil_server::auth::random_token(), true)),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("vigil {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Config(ConfigCmd::Check) => {
            let cfg = load_config(cli.config.as_ref())?;
            println!("# configuration is valid; effective values (secrets redacted):");
            print!("{}", cfg.redacted_toml());
            Ok(())
        }
        Command::Migrate => {
            let cfg = load_config(cli.config.as_ref())?;
            open_store(&cfg, true).await?;
            println!(
                "migrations applied to {}",
                vigil_store::redact_url(&cfg.database_url())
            );
            Ok(())
        }
        Command::Serve => serve(load_config(cli.config.as_ref())?).await,
        Command::Worker => worker::run(load_config(cli.config.as_ref())?).await,
        Command::User(cmd) => user(load_config(cli.config.as_ref())?, cmd).await,
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Hunt(_) | Command::Rules(_) => anyhow::bail!("handled before the runtime starts"),
        Command::AgentToken(cmd) => keys::agent_token(load_config(cli.config.as_ref())?, cmd).await,
        Command::ApiKey(cmd) => keys::api_key(load_config(cli.config.as_ref())?, cmd).await,
        Command::Parse(args) => parse::run(args),
        Command::Ml(cmd) => ml::run(cmd),
        Command::Analyze(args) => analyze::run(load_config(cli.config.as_ref())?, args).await,
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    vigil_server::telemetry::init(&cfg.log);
    // First, so a SIGTERM during startup stops the server cleanly once it runs.
    let stop = vigil_server::shutdown_signal();
    let admin_password = std::env::var("VIGIL_ADMIN_PASSWORD").ok().map(Secret::new);
    let app = vigil_server::Application::build(cfg, admin_password).await?;
    if let Some(b) = app.bootstrap() {
        match &b.generated_password {
            Some(p) => println!(
                "\nFirst start: created user '{}' (role admin, org '{}') with password:\n\n    {p}\n\n\
                 It is shown only this once. Log in and change it (POST /api/v1/auth/password).\n",
                b.username, b.org
            ),
            None => println!(
                "First start: created user '{}' (role admin, org '{}') with the password from VIGIL_ADMIN_PASSWORD.",
                b.username, b.org
            ),
        }
    }
    let addr = app.local_addr()?;
    tracing::info!(%addr, "listening");
    println!("Vigil listening on http://{addr} (API docs: http://{addr}/api/v1/docs)");
    app.run_until_stopped(stop).await
}

async fn user(cfg: Config, cmd: UserCmd) -> anyhow::Result<()> {
    let store = open_store(&cfg, false).await?;
    let find = |name: String| {
        let store = store.clone();
        async move {
            store
                .get_user_by_username(&name)
                .await?
                .with_context(|| format!("no user named '{name}'"))
        }
    };
    match cmd {
        UserCmd::Create {
            username,
            role,
            org,
            email,
        } => {
            let username = Username::parse(&username)?;
            let role: Role = role.parse()?;
            let org = match store.get_org_by_name(&org).await? {
                Some(o) => o,
                None => store.create_org(&org).await?,
            };
            let (password, generated) = password_from_env()?;
            let hash = vigil_server::auth::hash_password(password.clone())
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let u = store
                .create_user(NewUser {
                    org_id: org.id,
                    username: username.as_str().into(),
                    email,
                    password_hash: hash,
                    role,
                })
                .await?;
            println!(
                "created user '{}' (role {}, org '{}', id {})",
                u.username, u.role, org.name, u.id
            );
            if generated {
                println!("password (shown once): {password}");
            }
        }
        UserCmd::List => {
            let orgs = store.list_orgs().await?;
            let mut table = vigil_hunt::report::Table::new(&[
                "USERNAME",
                "ROLE",
                "ORG",
                "STATUS",
                "LAST LOGIN",
            ]);
            for u in store.list_users(None).await? {
                let org = orgs
                    .iter()
                    .find(|o| o.id == u.org_id)
                    .map_or("?", |o| o.name.as_str());
                table.row(vec![
                    u.username.to_string(),
                    u.role.to_string(),
                    org.to_string(),
                    if u.disabled { "disabled" } else { "active" }.into(),
                    u.last_login_at
                        .map_or("never".to_string(), |t| t.to_rfc3339()),
                ]);
            }
            table.write(&mut std::io::stdout().lock())?;
        }
        UserCmd::SetRole { username, role } => {
            let role: Role = role.parse()?;
            let u = find(username).await?;
            let u = store
                .update_user(
                    None,
                    u.id,
                    UserUpdate {
                        role: Some(role),
                        ..Default::default()
                    },
                )
                .await?;
            println!("'{}' is now {}", u.username, u.role);
        }
        UserCmd::ResetPassword { username } => {
            let u = find(username).await?;
            let (password, generated) = password_from_env()?;
            let hash = vigil_server::auth::hash_password(password.clone())
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            store.set_password(None, u.id, &hash).await?;
            println!(
                "password of '{}' changed; their sessions have ended",
                u.username
            );
            if generated {
                println!("password (shown once): {password}");
            }
        }
    }
    store.close().await;
    Ok(())
}
