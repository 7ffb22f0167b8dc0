//! `POST /login`, `POST /logout`, `GET /me`.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Authenticated, ClientIp, JsonBody};
use super::{ApiError, AppState, rfc3339};
use crate::model::Identity;
use crate::secret::Secret;

/// The session routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: Secret,
}

fn identity_json(identity: &Identity) -> Value {
    match identity {
        Identity::User {
            name,
            groups,
            is_admin,
        } => json!({"kind": "user", "name": name, "groups": groups, "is_admin": is_admin}),
        Identity::System {
            key_id,
            key_name,
            connectors,
        } => {
            json!({"kind": "system", "key_id": key_id, "name": key_name, "connectors": connectors})
        }
    }
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<Value>, ApiError> {
    if request.username.is_empty() {
        return Err(ApiError::InvalidRequest("username is empty".into()));
    }
    let auth = &state.service.auth;
    let (token, identity) = auth
        .login(&request.username, &request.password, ip.as_deref())
        .await?;
    let expires = SystemTime::now() + auth.sessions().ttl();
    Ok(Json(json!({
        "token": token.expose(),
        "expires": rfc3339(expires),
        "user": identity_json(&identity),
    })))
}

async fn logout(State(state): State<AppState>, who: Authenticated) -> Result<StatusCode, ApiError> {
    let token = who.session_token.ok_or_else(|| {
        ApiError::InvalidRequest("logout ends a session: send its token as Bearer".into())
    })?;
    state.service.auth.logout(&token)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(who: Authenticated) -> Json<Value> {
    Json(identity_json(&who.caller.identity))
}
