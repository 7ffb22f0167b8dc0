//! What a call can fail with: idfed's own refusal (with its stable code), or not reaching it at all.

use std::time::Duration;

use idfed_api::{ApprovalRequestBody, EcsErrorBody, ErrorBody, ErrorCode};

/// A failed call. Messages are one line and never hold a token or a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// idfed refused the request, with one of its stable codes (the README's "Error codes").
    #[error("{message} ({})", code.as_str())]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable code.
        code: ErrorCode,
        /// The message for people (one line).
        message: String,
        /// Where in a plugin configuration the problem is, when the plugin said.
        pointer: Option<String>,
        /// How long to wait before trying again, when the server said (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Not refused, not granted yet: a policy wants an approval first (`202`). Once a member of the
    /// request's group approved it ([`crate::Client::approval`] says), repeat the same request.
    #[error(
        "approval needed: a member of {:?} must approve this request ({}); it is request {}",
        .0.group, .0.reason, .0.id
    )]
    ApprovalPending(Box<ApprovalRequestBody>),
    /// The server answered an error that is not idfed's (a proxy in between, or not idfed at all).
    #[error("{server} answered {status}, not an idfed error")]
    Http {
        /// The server's base URL.
        server: String,
        /// The HTTP status.
        status: u16,
    },
    /// The server could not be reached, or the answer did not arrive whole.
    #[error("cannot reach {server}: {message}")]
    Unreachable {
        /// The server's base URL.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered something this client cannot read (another version of idfed?).
    #[error("unexpected answer from {server}: {message}")]
    Decode {
        /// The server's base URL.
        server: String,
        /// What did not fit.
        message: String,
    },
    /// The client is not set up right: a server URL, a CA file, a token file.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The stable code of an idfed refusal.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of an answer that was an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the same request may succeed later unchanged: the server was unreachable, busy, throttled
    /// or could not use one of its parts (429, 502, 503, 504).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Api { status, .. } | Error::Http { status, .. } => {
                matches!(status, 429 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    /// The error an error answer (`status`, `body`) is: idfed's `{"error": …}`, or the container
    /// endpoint's `{"Code", "Message"}`.
    pub(crate) fn from_answer(
        server: &str,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Error {
        if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) {
            return Error::Api {
                status,
                code: ErrorCode::parse(&error.code),
                message: one_line(&error.message),
                pointer: error.pointer,
                retry_after,
            };
        }
        if let Ok(ecs) = serde_json::from_slice::<EcsErrorBody>(body) {
            return Error::Api {
                status,
                code: ErrorCode::parse(&ecs.code),
                message: one_line(&ecs.message),
                pointer: None,
                retry_after,
            };
        }
        Error::Http {
            server: server.to_owned(),
            status,
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idfed_error_keeps_its_code_pointer_and_retry_after() {
        let body = br#"{"error": {"code": "plugin_config_refused", "message": "no\n  good", "pointer": "/hours"}}"#;
        let error = Error::from_answer("https://idfed", 422, Some(Duration::from_secs(3)), body);
        assert_eq!(error.code(), Some(&ErrorCode::PluginConfigRefused));
        assert_eq!(error.status(), Some(422));
        assert_eq!(error.to_string(), "no good (plugin_config_refused)");
        let Error::Api {
            pointer,
            retry_after,
            ..
        } = error
        else {
            panic!("not an API error")
        };
        assert_eq!(pointer.as_deref(), Some("/hours"));
        assert_eq!(retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn the_container_endpoints_shape_and_unknown_codes_are_read() {
        let error =
            Error::from_answer("s", 403, None, br#"{"Code": "forbidden", "Message": "no"}"#);
        assert_eq!(error.code(), Some(&ErrorCode::Forbidden));
        let error = Error::from_answer(
            "s",
            400,
            None,
            br#"{"error": {"code": "from_the_future", "message": "x"}}"#,
        );
        assert_eq!(
            error.code(),
            Some(&ErrorCode::Other("from_the_future".into()))
        );
    }

    #[test]
    fn another_servers_error_is_http_and_transience_follows_the_status() {
        let error = Error::from_answer("https://idfed", 502, None, b"<html>bad gateway</html>");
        assert!(matches!(error, Error::Http { status: 502, .. }));
        assert!(error.is_transient());
        let refused = Error::from_answer(
            "s",
            403,
            None,
            br#"{"error": {"code": "forbidden", "message": "no"}}"#,
        );
        assert!(!refused.is_transient());
    }
}
