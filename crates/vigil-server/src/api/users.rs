//! `/api/v1/users`: user management for admins, always within the admin's organization.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use vigil_core::{Role, User, Username};
use vigil_store::{NewUser, UserUpdate};

use crate::auth::{AuthUser, hash_password};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(reset_password))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub password: String,
}

fn validate_email(e: &str) -> ApiResult<()> {
    if e.len() > 254 || !e.contains('@') || e.chars().any(char::is_whitespace) {
        return Err(ApiError::validation(format!(
            "invalid email '{}'",
            e.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// Users of your organization.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [User]), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<Vec<User>>> {
    user.require(Role::Admin)?;
    Ok(axum::Json(state.store.list_users(Some(user.org_id)).await?))
}

/// Create a user in your organization.
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "username taken"), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, axum::Json<User>)> {
    user.require(Role::Admin)?;
    let username = Username::parse(&req.username)?;
    vigil_core::validate_password(&req.password)?;
    if let Some(e) = &req.email {
        validate_email(e)?;
    }
    let hash = hash_password(req.password).await?;
    let created = state
        .store
        .create_user(NewUser {
            org_id: user.org_id,
            username: username.as_str().to_string(),
            email: req.email,
            password_hash: hash,
            role: req.role,
        })
        .await?;
    tracing::info!(admin = %user.username, created = %created.username, role = %created.role, "user created");
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// One user of your organization.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<User>> {
    user.require(Role::Admin)?;
    state
        .store
        .get_user(Some(user.org_id), id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("user"))
}

/// Change a user's role, email, or disable them (which ends their sessions).
#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<axum::Json<User>> {
    user.require(Role::Admin)?;
    if id == user.id && (req.disabled == Some(true) || req.role.is_some_and(|r| r != Role::Admin)) {
        return Err(ApiError::bad_request(
            "cannot_modify_self",
            "admins cannot disable or demote themselves; ask another admin",
        ));
    }
    if let Some(e) = &req.email {
        validate_email(e)?;
    }
    let updated = state
        .store
        .update_user(
            Some(user.org_id),
            id,
            UserUpdate {
                role: req.role,
                disabled: req.disabled,
                email: req.email.map(Some),
            },
        )
        .await
        .map_err(ApiError::from_store("user"))?;
    state.sessions.clear();
    tracing::info!(admin = %user.username, target = %updated.username, "user updated");
    Ok(axum::Json(updated))
}

/// Set a new password for a user; their sessions end.
#[utoipa::path(post, path = "/users/{id}/password", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ResetPasswordRequest,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ResetPasswordRequest>,
) -> ApiResult<StatusCode> {
    user.require(Role::Admin)?;
    vigil_core::validate_password(&req.password)?;
    let hash = hash_password(req.password).await?;
    state
        .store
        .set_password(Some(user.org_id), id, &hash)
        .await
        .map_err(ApiError::from_store("user"))?;
    state.sessions.clear();
    Ok(StatusCode::NO_CONTENT)
}
