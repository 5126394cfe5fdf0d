//! Files in the state directory: the credential (mode 0600), the agent identity, and the
//! atomic-write helper the offset store and the disk buffer use.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vigil_core::event::RegisterAgentRequest;

use crate::config::{AgentConfig, Secret};
use crate::error::{Error, Result};

/// File holding the credential the server issued at registration.
pub const CREDENTIAL_FILE: &str = "credential";
/// File holding the agent and organization ids.
pub const IDENTITY_FILE: &str = "identity.json";

/// Who this agent is to the server.
#[derive(Debug, Clone)]
pub struct Identity {
    pub agent_id: Uuid,
    pub org_id: Uuid,
    pub credential: Secret,
}

#[derive(Serialize, Deserialize)]
struct IdentityFile {
    agent_id: Uuid,
    org_id: Uuid,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync,
/// rename, fsync of the directory. `mode` is the new file's permission bits.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io("creating", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("writing", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming into", path, e))?;
    sync_dir(dir);
    Ok(())
}

/// Best-effort fsync of a directory so a rename or unlink in it is durable.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Loads the stored identity, or registers with the enrollment token and stores it.
///
/// The credential is written with mode 0600 and reused on every later start; the enrollment
/// token is not needed again.
pub async fn load_or_enroll(
    config: &AgentConfig,
    state_dir: &Path,
    hostname: &str,
) -> Result<Identity> {
    if let Some(id) = load_identity(state_dir)? {
        return Ok(id);
    }
    if config.enrollment_token.is_empty() {
        return Err(Error::Enroll(format!(
            "no credential in {} and no enrollment_token configured \
             (set enrollment_token in the config file or VIGIL_AGENT_ENROLLMENT_TOKEN)",
            state_dir.display()
        )));
    }
    let request = RegisterAgentRequest {
        enrollment_token: config.enrollment_token.expose().to_owned(),
        hostname: hostname.to_owned(),
        os: Some(std::env::consts::OS.to_owned()),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        ip: None,
    };
    let timeout = Duration::from_secs(config.shipper.request_timeout_secs);
    let resp = crate::transport::register(&config.server_url, &request, timeout).await?;
    let ident = serde_json::to_vec_pretty(&IdentityFile {
        agent_id: resp.agent_id,
        org_id: resp.org_id,
    })?;
    atomic_write(&state_dir.join(IDENTITY_FILE), &ident, 0o644)?;
    atomic_write(
        &state_dir.join(CREDENTIAL_FILE),
        resp.credential.as_bytes(),
        0o600,
    )?;
    tracing::info!(agent_id = %resp.agent_id, "enrolled; credential stored");
    Ok(Identity {
        agent_id: resp.agent_id,
        org_id: resp.org_id,
        credential: Secret::new(resp.credential),
    })
}

/// The stored identity, if both files exist.
pub fn load_identity(state_dir: &Path) -> Result<Option<Identity>> {
    let cred_path = state_dir.join(CREDENTIAL_FILE);
    let ident_path: PathBuf = state_dir.join(IDENTITY_FILE);
    let credential = match std::fs::read_to_string(&cred_path) {
        Ok(c) => c.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", cred_path, e)),
    };
    let text = std::fs::read(&ident_path).map_err(|e| Error::io("reading", &ident_path, e))?;
    let ident: IdentityFile = serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
        what: "identity file",
        path: ident_path.clone(),
        reason: e.to_string(),
    })?;
    if credential.is_empty() {
        return Err(Error::Corrupt {
            what: "credential file",
            path: cred_path,
            reason: "empty".into(),
        });
    }
    Ok(Some(Identity {
        agent_id: ident.agent_id,
        org_id: ident.org_id,
        credential: Secret::new(credential),
    }))
}
