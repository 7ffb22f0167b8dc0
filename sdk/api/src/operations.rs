//! Operations: `GET /healthz` and `GET /readyz`, for load balancers and orchestrators.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /healthz`: the process is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// `GET /readyz`: idfed can serve (its store can be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"status": "ready", "directory": "static", "sso": false}))]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// The directory people log in against: `static` or `crowd`.
    pub directory: String,
    /// Whether the web UI offers logging in from the directory's SSO cookie.
    pub sso: bool,
    /// Where the state is kept: `sled` (embedded) or `postgres` (answered only when the database is
    /// reachable now).
    pub store: String,
}
