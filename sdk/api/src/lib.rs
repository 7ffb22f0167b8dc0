//! idfed's wire types: every request and response of its HTTP API (`/api/v1`), defined once. The server
//! writes and reads them, its OpenAPI document is derived from them (`utoipa::ToSchema`), and clients —
//! `idfed-client`, the `idfed` command line, add-ons — read and write the same types, so the three can
//! never disagree about a field.
//!
//! Types holding a secret (credentials, session tokens, API keys, registry passwords) have no `Debug` and
//! zero their strings when dropped.
//!
//! ```
//! use idfed_api::{CredentialsRequest, Format};
//!
//! let request = CredentialsRequest { duration_seconds: Some(900), ..CredentialsRequest::default() };
//! assert_eq!(serde_json::to_value(&request).unwrap(), serde_json::json!({"duration_seconds": 900}));
//! assert_eq!(Format::default(), Format::Json);
//! ```

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod connectors;
pub mod error;
pub mod identity;
pub mod operations;
pub mod service_tokens;

pub use approvals::{
    ApprovalDecision, ApprovalList, ApprovalPending, ApprovalRequestBody, ApprovalStatus,
};
pub use connectors::{
    CallerIdentityBody, ConnectorBody, ConnectorList, ConsoleRequest, ConsoleUrlBody,
    ContainerCredentials, CredentialProcessBody, CredentialsBody, CredentialsRequest, Format,
    PrincipalType,
};
pub use error::{EcsErrorBody, ErrorBody, ErrorCode, ErrorDetail};
pub use identity::{IdentityBody, LoginRequest, LoginResponse, WebLogin, WebSessionBody};
pub use operations::{Health, Readiness};
pub use service_tokens::{CodeArtifactToken, EcrLogin, ServiceTokenRequest};
