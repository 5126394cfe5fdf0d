//! `vigil agent-token ...` and `vigil api-key ...`: secrets for agents and log shippers,
//! minted from the command line on the server host. Each secret is printed once.

use anyhow::Context;
use clap::Subcommand;
use vigil_core::ApiScope;
use vigil_hunt::report::Table;
use vigil_server::config::Config;

#[derive(Subcommand)]
pub enum AgentTokenCmd {
    /// Create a one-time enrollment token; an agent trades it for its own credential
    /// (`vigil-agent --enrollment-token ...`).
    Create {
        #[arg(long, default_value = "default")]
        org: String,
        /// Hours until the token expires (1 to 720).
        #[arg(long, default_value_t = 24)]
        expires_in_hours: u32,
        #[arg(long)]
        description: Option<String>,
    },
    /// List enrollment tokens (never the secrets).
    List {
        #[arg(long, default_value = "default")]
        org: String,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCmd {
    /// Create an API key (e.g. for Promtail or Grafana Alloy pushing to /loki/api/v1/push).
    Create {
        name: String,
        #[arg(long, default_value = "default")]
        org: String,
        /// Scopes, comma-separated: ingest.
        #[arg(long, default_value = "ingest", value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// List API keys (never the secrets).
    List {
        #[arg(long, default_value = "default")]
        org: String,
    },
}

async fn org_id(store: &vigil_store::DynStore, name: &str) -> anyhow::Result<uuid::Uuid> {
    Ok(store
        .get_org_by_name(name)
        .await?
        .with_context(|| format!("no organization named '{name}'"))?
        .id)
}

fn flat(e: vigil_server::error::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}

pub async fn agent_token(cfg: Config, cmd: AgentTokenCmd) -> anyhow::Result<()> {
    let store = crate::open_store(&cfg, false).await?;
    match cmd {
        AgentTokenCmd::Create {
            org,
            expires_in_hours,
            description,
        } => {
            let org = org_id(&store, &org).await?;
            let (secret, t) = vigil_server::api::agents::issue_enrollment_token(
                &store,
                org,
                description,
                expires_in_hours,
                "cli",
            )
            .await
            .map_err(flat)?;
            println!(
                "enrollment token (shown once, valid until {}):",
                t.expires_at.to_rfc3339()
            );
            println!("{secret}");
        }
        AgentTokenCmd::List { org } => {
            let org = org_id(&store, &org).await?;
            let mut table = Table::new(&["ID", "EXPIRES", "STATE", "DESCRIPTION"]);
            for t in store.list_enrollment_tokens(org).await? {
                let state = if t.used_at.is_some() {
                    "used"
                } else if t.expires_at < vigil_core::now() {
                    "expired"
                } else {
                    "unused"
                };
                table.row(vec![
                    t.id.to_string(),
                    t.expires_at.to_rfc3339(),
                    state.into(),
                    t.description.unwrap_or_default(),
                ]);
            }
            table.write(&mut std::io::stdout().lock())?;
        }
    }
    store.close().await;
    Ok(())
}

pub async fn api_key(cfg: Config, cmd: ApiKeyCmd) -> anyhow::Result<()> {
    let store = crate::open_store(&cfg, false).await?;
    match cmd {
        ApiKeyCmd::Create { name, org, scopes } => {
            let org = org_id(&store, &org).await?;
            let scopes = scopes
                .iter()
                .map(|s| s.parse::<ApiScope>())
                .collect::<Result<Vec<_>, _>>()?;
            let (secret, k) =
                vigil_server::api::keys::issue_api_key(&store, org, &name, scopes, "cli")
                    .await
                    .map_err(flat)?;
            println!("API key '{}' (id {}), shown once:", k.name, k.id);
            println!("{secret}");
        }
        ApiKeyCmd::List { org } => {
            let org = org_id(&store, &org).await?;
            let mut table = Table::new(&["ID", "NAME", "SCOPES", "STATE"]);
            for k in store.list_api_keys(org).await? {
                let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                table.row(vec![
                    k.id.to_string(),
                    k.name,
                    scopes.join(","),
                    state.into(),
                ]);
            }
            table.write(&mut std::io::stdout().lock())?;
        }
    }
    store.close().await;
    Ok(())
}
