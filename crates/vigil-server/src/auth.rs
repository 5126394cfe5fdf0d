//! Authentication: argon2id passwords, short-lived JWT access tokens, opaque rotating refresh
//! tokens (stored as SHA-256 hashes), and the [`AuthUser`] extractor that enforces them.

use std::path::Path;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use vigil_core::{Role, User};

use crate::error::ApiError;
use crate::state::AppState;

/// Hashes a password with argon2id (OWASP parameters), off the async runtime.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// A hash of a random password, verified against when the user does not exist so that
/// unknown and known usernames take the same time.
fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(random_token().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Verifies a password against a stored hash (or the dummy hash), off the async runtime.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash().to_string());
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        real && ok
    })
    .await
    .map_err(ApiError::internal)
}

/// 32 random bytes, URL-safe base64: refresh tokens, generated passwords and secrets.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 of a token: what the database keeps instead of the token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    pub org: Uuid,
    pub role: Role,
    pub name: String,
    /// Session (refresh token family); logout revokes it and with it this token.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub typ: String,
}

const ISSUER: &str = "vigil";

/// Signing and verification keys for access tokens (HS256).
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(&self, user: &User, sid: Uuid, ttl_secs: u64) -> Result<(String, i64), ApiError> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + ttl_secs as i64;
        let claims = Claims {
            sub: user.id,
            org: user.org_id,
            role: user.role,
            name: user.username.clone(),
            sid,
            iat: now,
            exp,
            iss: ISSUER.into(),
            typ: "access".into(),
        };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((t, exp))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "token_expired",
                    "access token has expired; refresh it",
                ),
                _ => ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "access token is not valid",
                ),
            })?;
        if data.claims.typ != "access" {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_token",
                "not an access token",
            ));
        }
        Ok(data.claims)
    }
}

/// The JWT secret: configured, or read from `<data_dir>/jwt-secret`, or generated there
/// once with mode 0600.
pub fn load_or_create_jwt_secret(configured: &str, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!(
            "{} is shorter than 32 bytes; delete it to regenerate",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
    std::fs::create_dir_all(data_dir)?;
    let mut b = [0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let secret = hex::encode(b);
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(secret.into_bytes())
}

/// Writes a file only its owner can read (0600), failing if it already exists.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The authenticated caller of a request. Extracting it checks the bearer token's
/// signature, expiry and that its session is still active (not logged out or revoked).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    pub username: String,
    pub session_id: Uuid,
}

impl AuthUser {
    /// 403 unless the caller's role includes `required`.
    pub fn require(&self, required: Role) -> Result<(), ApiError> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {required} role; you are {}",
                self.role
            )))
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let reject = |e: ApiError| {
            use axum::response::IntoResponse;
            let challenge = e.status == axum::http::StatusCode::UNAUTHORIZED;
            let mut r = e.into_response();
            if challenge {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"vigil\""),
                );
            }
            r
        };
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(reject(ApiError::unauthorized(
                "missing Authorization: Bearer token",
            )));
        }
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            reject(ApiError::unauthorized(
                "Authorization must be 'Bearer <token>'",
            ))
        })?;
        authenticate(state, token).await.map_err(reject)
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The caller behind an access token: checks its signature, expiry and that its session is
/// still active (the extractor above, and the stream's `Sec-WebSocket-Protocol` token).
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let claims = state.jwt.verify(token)?;
    if !session_active(state, claims.sid).await? {
        return Err(session_ended());
    }
    Ok(AuthUser {
        id: claims.sub,
        org_id: claims.org,
        role: claims.role,
        username: claims.name,
        session_id: claims.sid,
    })
}

/// The 401 for a token or ticket whose session is over.
pub fn session_ended() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "session_revoked",
        "this session has ended (logged out, revoked or expired); log in again",
    )
}

/// Whether a session is active and its user enabled: from the session cache, else the
/// database (and then remembered).
pub async fn session_active(state: &AppState, sid: Uuid) -> Result<bool, ApiError> {
    if state.sessions.is_known_active(sid) {
        return Ok(true);
    }
    let generation = state.sessions.generation();
    let active = state.store.session_active(sid, vigil_core::now()).await?;
    if active {
        state.sessions.remember_active(sid, generation);
    }
    Ok(active)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse battery".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse battery".into(), Some(h))
                .await
                .unwrap()
        );
        assert!(!verify_password("anything".into(), None).await.unwrap());
    }

    #[test]
    fn tokens_are_signed_and_checked() {
        let keys = JwtKeys::new(&[7u8; 64]);
        let user = User {
            id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            username: "amy".into(),
            email: None,
            role: Role::Analyst,
            disabled: false,
            created_at: vigil_core::now(),
            last_login_at: None,
        };
        let sid = Uuid::new_v4();
        let (t, _) = keys.issue(&user, sid, 60).unwrap();
        let c = keys.verify(&t).unwrap();
        assert_eq!((c.sub, c.sid, c.role), (user.id, sid, Role::Analyst));
        let other = JwtKeys::new(&[8u8; 64]);
        assert_eq!(other.verify(&t).unwrap_err().code, "invalid_token");
        let (old, _) = keys.issue(&user, sid, 0).unwrap();
        // exp == iat is within leeway; forge an expired one explicitly.
        let mut claims = keys.verify(&old).unwrap();
        claims.exp -= 3600;
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&expired).unwrap_err().code, "token_expired");
        // alg=none and tampering are rejected.
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[2] = "";
        assert!(keys.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn jwt_secret_is_generated_once_with_0600() {
        let dir = std::env::temp_dir().join(format!("vigil-jwt-{}", Uuid::new_v4()));
        let a = load_or_create_jwt_secret("", &dir).unwrap();
        let b = load_or_create_jwt_secret("", &dir).unwrap();
        assert_eq!(a, b);
        assert!(a.len() >= 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("jwt-secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
