//! `/api/v1/api-keys` (admin): keys for machines such as log shippers. The secret is shown
//! once at creation; the server keeps its SHA-256.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use vigil_core::{ApiKey, ApiScope, Role};
use vigil_store::NewApiKey;

use crate::auth::{AuthUser, token_hash};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::ingest::auth::{API_KEY_PREFIX, new_secret};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: String,
    pub scopes: Vec<ApiScope>,
}

/// A new key: `key` is shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub info: ApiKey,
}

/// Creates an API key (shared by the API and `vigil api-key create`).
pub async fn issue_api_key(
    store: &vigil_store::DynStore,
    org: Uuid,
    name: &str,
    scopes: Vec<ApiScope>,
    created_by: &str,
) -> Result<(String, ApiKey), ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name must be 1 to 100 printable characters",
        ));
    }
    if scopes.is_empty() {
        return Err(ApiError::validation("give at least one scope"));
    }
    let key = new_secret(API_KEY_PREFIX);
    let info = store
        .create_api_key(NewApiKey {
            org_id: org,
            name: name.to_owned(),
            key_hash: token_hash(&key),
            scopes,
            created_by: created_by.to_owned(),
        })
        .await?;
    Ok((key, info))
}

/// Create an API key (admin).
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", security(("bearer" = [])), request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_key(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedKey>)> {
    user.require(Role::Admin)?;
    let (key, info) = issue_api_key(
        &state.store,
        user.org_id,
        &req.name,
        req.scopes,
        &user.username,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedKey { key, info })))
}

/// API keys of your organization (admin); never the secrets.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, body = [ApiKey]), (status = 403, body = ErrorBody)))]
async fn list_keys(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<Vec<ApiKey>>> {
    user.require(Role::Admin)?;
    Ok(axum::Json(state.store.list_api_keys(user.org_id).await?))
}

/// Revoke an API key (admin).
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ApiKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<ApiKey>> {
    user.require(Role::Admin)?;
    let key = state
        .store
        .revoke_api_key(user.org_id, id, vigil_core::now())
        .await
        .map_err(ApiError::from_store("API key"))?;
    Ok(axum::Json(key))
}
