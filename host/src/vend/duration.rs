//! How long vended credentials last: the caller's duration, else the connector's default, else AWS's
//! default for the principal type; capped at the connector's maximum and at AWS's.

use crate::model::Connector;
use crate::sts::validate::{self, ValidationError};

/// The duration decided for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationChoice {
    /// Seconds.
    pub seconds: u32,
    /// Whether it was cut down to a maximum.
    pub capped: bool,
}

/// Decides the duration for a request to `connector` asking for `requested` seconds.
pub fn resolve_duration(
    connector: &Connector,
    requested: Option<u32>,
) -> Result<DurationChoice, ValidationError> {
    let principal = connector.principal.principal_type();
    let range = validate::duration_range(principal);
    if let Some(asked) = requested
        && asked < *range.start()
    {
        return Err(ValidationError {
            field: "duration_seconds".into(),
            rule: format!("must be at least {} seconds (STS's minimum)", range.start()),
        });
    }
    let wanted = requested
        .or(connector.default_duration_seconds)
        .unwrap_or_else(|| validate::aws_default_duration(principal));
    let max = connector
        .max_duration_seconds
        .map_or(*range.end(), |max| max.min(*range.end()));
    Ok(if wanted > max {
        DurationChoice {
            seconds: max,
            capped: true,
        }
    } else {
        DurationChoice {
            seconds: wanted,
            capped: false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Principal;

    fn connector(principal: Principal, default: Option<u32>, max: Option<u32>) -> Connector {
        Connector {
            id: uuid::Uuid::nil(),
            name: "c".into(),
            description: String::new(),
            account: "a".into(),
            principal,
            policy: None,
            policy_arns: vec![],
            default_duration_seconds: default,
            max_duration_seconds: max,
            groups: vec![],
            system_scope: false,
            enabled: true,
            credential_cache: false,
            bindings: vec![],
        }
    }

    fn role() -> Principal {
        Principal::AssumedRole {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            external_id: None,
            session_tags: vec![],
            source_identity: false,
        }
    }

    #[test]
    fn requested_then_default_then_aws_default() {
        let c = connector(Principal::FederatedUser, Some(7200), None);
        assert_eq!(
            resolve_duration(&c, Some(1800)).unwrap(),
            DurationChoice {
                seconds: 1800,
                capped: false
            }
        );
        assert_eq!(
            resolve_duration(&c, None).unwrap(),
            DurationChoice {
                seconds: 7200,
                capped: false
            }
        );
        let bare = connector(Principal::FederatedUser, None, None);
        assert_eq!(resolve_duration(&bare, None).unwrap().seconds, 43_200);
        assert_eq!(
            resolve_duration(&connector(role(), None, None), None)
                .unwrap()
                .seconds,
            3600
        );
    }

    #[test]
    fn capped_at_the_connector_maximum_and_at_aws_maximum() {
        let c = connector(Principal::IamUser, None, Some(3600));
        assert_eq!(
            resolve_duration(&c, Some(7200)).unwrap(),
            DurationChoice {
                seconds: 3600,
                capped: true
            }
        );
        assert_eq!(
            resolve_duration(&c, None).unwrap(),
            DurationChoice {
                seconds: 3600,
                capped: true
            }
        );
        let r = connector(role(), None, None);
        assert_eq!(
            resolve_duration(&r, Some(86_400)).unwrap(),
            DurationChoice {
                seconds: 43_200,
                capped: true
            }
        );
    }

    #[test]
    fn below_the_sts_minimum_is_refused_with_the_field_named() {
        let err = resolve_duration(&connector(role(), None, None), Some(60)).unwrap_err();
        assert_eq!(err.field, "duration_seconds");
    }
}
