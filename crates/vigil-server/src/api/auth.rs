//! `/api/v1/auth/*`: login (OAuth2 password form or JSON), refresh with rotation and reuse
//! detection, logout, the current user, and changing one's own password.

use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_core::User;
use vigil_store::RefreshOutcome;

use crate::auth::{AuthUser, hash_password, random_token, token_hash, verify_password};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::metrics::LOGINS;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
}

/// Credentials, as JSON or as an OAuth2 password-grant form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// OAuth2 form field; when present it must be `password`.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// OAuth2 form fields accepted and ignored.
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// Issued tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque; single use — each refresh returns a new one.
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub user: User,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Login body: JSON or `application/x-www-form-urlencoded`.
pub struct LoginBody(LoginRequest);

impl FromRequest<AppState> for LoginBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let axum::Form(f) = axum::Form::<LoginRequest>::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
            Ok(LoginBody(f))
        } else {
            let ApiJson(j) = ApiJson::<LoginRequest>::from_request(req, state).await?;
            Ok(LoginBody(j))
        }
    }
}

async fn issue_tokens(state: &AppState, user: User) -> ApiResult<TokenResponse> {
    let now = vigil_core::now();
    let cfg = &state.config.auth;
    let refresh = random_token();
    let refresh_exp = now + chrono::Duration::seconds(cfg.refresh_token_ttl_secs as i64);
    let sid = state
        .store
        .create_session(user.id, &token_hash(&refresh), refresh_exp, now)
        .await?;
    let (access, _) = state.jwt.issue(&user, sid, cfg.access_token_ttl_secs)?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "bearer".into(),
        expires_in: cfg.access_token_ttl_secs,
        refresh_token: refresh,
        refresh_expires_in: cfg.refresh_token_ttl_secs,
        user,
    })
}

fn bad_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "username or password is wrong, or the account is disabled",
    )
}

/// Log in with username and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body(content = LoginRequest, content_type = "application/json",
        description = "JSON, or the same fields as an OAuth2 password-grant form (application/x-www-form-urlencoded)"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, body = ErrorBody, description = "wrong credentials or disabled account"),
        (status = 429, body = ErrorBody, description = "too many attempts; see Retry-After"),
    ))]
async fn login(
    State(state): State<AppState>,
    LoginBody(req): LoginBody,
) -> ApiResult<impl IntoResponse> {
    if let Some(g) = &req.grant_type
        && g != "password"
    {
        return Err(ApiError::bad_request(
            "unsupported_grant_type",
            "grant_type must be 'password'",
        ));
    }
    if req.username.len() > 256 || req.password.len() > vigil_core::PASSWORD_MAX * 4 {
        return Err(bad_credentials());
    }
    let creds = state.store.get_credentials(&req.username).await?;
    let (user, hash) = match creds {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    let ok = verify_password(req.password, hash).await?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            metrics::counter!(LOGINS, "outcome" => "failure").increment(1);
            tracing::warn!(username = %req.username.chars().take(64).collect::<String>(), "failed login");
            return Err(bad_credentials());
        }
    };
    metrics::counter!(LOGINS, "outcome" => "success").increment(1);
    let now = vigil_core::now();
    state.store.record_login(user.id, now).await?;
    let mut user = user;
    user.last_login_at = Some(now);
    tracing::info!(user = %user.username, "login");
    Ok(axum::Json(issue_tokens(&state, user).await?))
}

/// Exchange a refresh token for a new token pair. Each refresh token works once; presenting
/// a spent one revokes its whole session (all tokens descended from the same login).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, body = ErrorBody, description = "invalid, expired, revoked or reused token"),
    ))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<impl IntoResponse> {
    let now = vigil_core::now();
    let cfg = &state.config.auth;
    let new_refresh = random_token();
    let exp = now + chrono::Duration::seconds(cfg.refresh_token_ttl_secs as i64);
    match state
        .store
        .rotate_refresh_token(
            &token_hash(&req.refresh_token),
            &token_hash(&new_refresh),
            exp,
            now,
        )
        .await?
    {
        RefreshOutcome::Rotated {
            user_id,
            session_id,
        } => {
            let user = state
                .store
                .get_user(None, user_id)
                .await?
                .ok_or_else(|| ApiError::unauthorized("user no longer exists"))?;
            let (access, _) = state
                .jwt
                .issue(&user, session_id, cfg.access_token_ttl_secs)?;
            Ok(axum::Json(TokenResponse {
                access_token: access,
                token_type: "bearer".into(),
                expires_in: cfg.access_token_ttl_secs,
                refresh_token: new_refresh,
                refresh_expires_in: cfg.refresh_token_ttl_secs,
                user,
            }))
        }
        RefreshOutcome::Reused { session_id } => {
            tracing::warn!(session = %session_id, "refresh token reuse: session revoked");
            state.sessions.clear();
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "this refresh token was already used; the session has been revoked, log in again",
            ))
        }
        RefreshOutcome::Invalid => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
            "refresh token is invalid, expired or revoked",
        )),
    }
}

/// End the current session: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> ApiResult<StatusCode> {
    state
        .store
        .revoke_session(user.session_id, vigil_core::now())
        .await?;
    state.sessions.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// The current user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<axum::Json<User>> {
    let u = state
        .store
        .get_user(Some(user.org_id), user.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("user no longer exists"))?;
    Ok(axum::Json(u))
}

/// Change your own password; every session, this one included, is ended.
#[utoipa::path(post, path = "/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let (_, hash) = state
        .store
        .get_credentials(&user.username)
        .await?
        .ok_or_else(|| ApiError::unauthorized("user no longer exists"))?;
    if !verify_password(req.current_password, Some(hash)).await? {
        return Err(bad_credentials());
    }
    vigil_core::validate_password(&req.new_password)?;
    let new_hash = hash_password(req.new_password).await?;
    state
        .store
        .set_password(Some(user.org_id), user.id, &new_hash)
        .await?;
    state.sessions.clear();
    Ok(StatusCode::NO_CONTENT)
}
