//! [`AwsIssuer`]: the [`CredentialIssuer`] that calls AWS STS (or any STS at an account's endpoint) with
//! aws-sdk-sts.
//!
//! - Every request passes [`validate::check_issue_request`] first; a refused request makes no connection.
//! - One client per account, cached under the account's name with a salted SHA-256 fingerprint of its access key
//!   id, secret, region and endpoint: a changed account gets a new client, and the secret is never kept in the key.
//! - Static keys go in as `aws_credential_types::Credentials`; [`AccountCredentials::HostChain`] uses aws-config's
//!   default chain (environment, profile, web identity, ECS, IMDS), built once, on first use.
//! - The SDK's standard retry mode (exponential backoff with jitter on throttling and transient errors) with
//!   [`IssuerSettings::max_attempts`]; a connect timeout and a timeout for the whole operation, retries included.
//! - SDK errors become [`StsErrorKind`]s by error code (or HTTP status where no code can be read); messages are
//!   cut short and any secret of the call is masked in them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::Client;
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sts::types::{PolicyDescriptorType, Tag};
use aws_smithy_types::retry::ErrorKind;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::{
    AccountAccess, BoxFuture, CallerIdentity, CredentialIssuer, IssueKind, IssueRequest,
    IssuedCredentials, SessionTag, StsError, StsErrorKind, ValidationError, validate,
};
use crate::model::AccountCredentials;
use crate::secret::Secret;

/// How long a throttled caller is told to wait (STS sends no `Retry-After`).
const THROTTLED_RETRY_AFTER: Duration = Duration::from_secs(2);
/// The longest error message kept from STS or the SDK.
const MAX_DETAIL_CHARS: usize = 400;

/// How [`AwsIssuer`] talks to STS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerSettings {
    /// How long to wait for a TCP (and TLS) connection. Default 3 s.
    pub connect_timeout: Duration,
    /// How long a whole operation may take, retries included. Default 10 s.
    pub operation_timeout: Duration,
    /// How many attempts an operation gets (1 = no retries). Default 3.
    pub max_attempts: u32,
    /// The region for accounts that name none. Default `us-east-1`.
    pub default_region: String,
}

impl Default for IssuerSettings {
    fn default() -> Self {
        IssuerSettings {
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(10),
            max_attempts: 3,
            default_region: "us-east-1".to_owned(),
        }
    }
}

struct CachedClient {
    fingerprint: [u8; 32],
    client: Client,
}

/// The [`CredentialIssuer`] that calls STS with aws-sdk-sts. Cheap to share (`Arc`); holds a client per account.
pub struct AwsIssuer {
    settings: IssuerSettings,
    /// Salts the account fingerprints, so that no stored hash can be checked against a guessed secret elsewhere.
    salt: [u8; 32],
    clients: Mutex<HashMap<String, CachedClient>>,
    host_chain: OnceCell<SharedCredentialsProvider>,
}

impl std::fmt::Debug for AwsIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsIssuer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AwsIssuer {
    /// An issuer with `settings` (a `max_attempts` of 0 counts as 1).
    pub fn new(settings: IssuerSettings) -> Self {
        let mut salt = [0u8; 32];
        // Without randomness the fingerprints are merely unsalted; they never leave the process.
        let _ = getrandom::fill(&mut salt);
        AwsIssuer {
            settings,
            salt,
            clients: Mutex::new(HashMap::new()),
            host_chain: OnceCell::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &IssuerSettings {
        &self.settings
    }

    /// How many account clients are cached.
    pub fn cached_clients(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn region(&self, access: &AccountAccess) -> String {
        access
            .region
            .clone()
            .unwrap_or_else(|| self.settings.default_region.clone())
    }

    fn fingerprint(&self, access: &AccountAccess, region: &str) -> [u8; 32] {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(&self.salt);
        match &access.credentials {
            AccountCredentials::Static {
                access_key_id,
                secret_access_key,
            } => {
                field(b"static");
                field(access_key_id.as_bytes());
                field(secret_access_key.expose().as_bytes());
            }
            AccountCredentials::HostChain => field(b"host-chain"),
        }
        field(region.as_bytes());
        field(access.endpoint.as_deref().unwrap_or("").as_bytes());
        hash.finalize().into()
    }

    async fn credentials_provider(&self, access: &AccountAccess) -> SharedCredentialsProvider {
        match &access.credentials {
            AccountCredentials::Static {
                access_key_id,
                secret_access_key,
            } => SharedCredentialsProvider::new(Credentials::new(
                access_key_id,
                secret_access_key.expose(),
                None,
                None,
                "idfed-account",
            )),
            AccountCredentials::HostChain => self
                .host_chain
                .get_or_init(|| async {
                    SharedCredentialsProvider::new(DefaultCredentialsChain::builder().build().await)
                })
                .await
                .clone(),
        }
    }

    /// The account's client: the cached one if the account is unchanged, else a new one (replacing the old).
    async fn client(&self, access: &AccountAccess) -> Client {
        let region = self.region(access);
        let fingerprint = self.fingerprint(access, &region);
        {
            let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(cached) = clients.get(&access.account_name)
                && cached.fingerprint == fingerprint
            {
                return cached.client.clone();
            }
        }
        let mut config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(self.credentials_provider(access).await)
            .retry_config(
                RetryConfig::standard().with_max_attempts(self.settings.max_attempts.max(1)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.settings.connect_timeout)
                    .operation_timeout(self.settings.operation_timeout)
                    .build(),
            );
        if let Some(endpoint) = &access.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let client = Client::from_conf(config.build());
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                access.account_name.clone(),
                CachedClient {
                    fingerprint,
                    client: client.clone(),
                },
            );
        client
    }

    async fn issue_checked(&self, request: &IssueRequest) -> Result<IssuedCredentials, StsError> {
        validate::check_issue_request(request)?;
        let access = &request.access;
        let client = self.client(access).await;
        let call = Call::new(self, access, request.kind.operation(), &[]);
        let duration = i32::try_from(request.duration_seconds)
            .map_err(|_| call.invalid("duration_seconds", "is too large"))?;
        match &request.kind {
            IssueKind::FederationToken {
                name,
                policy,
                policy_arns,
                tags,
            } => {
                let out = client
                    .get_federation_token()
                    .name(name)
                    .duration_seconds(duration)
                    .set_policy(policy.clone())
                    .set_policy_arns(policy_descriptors(policy_arns))
                    .set_tags(sts_tags(tags).map_err(|e| call.invalid("tags", &e))?)
                    .send()
                    .await
                    .map_err(|e| call.sdk_error(e))?;
                let arn = out.federated_user().map(|u| u.arn().to_owned());
                #[allow(deprecated)] // older STS stand-ins (moto) send only PackedPolicySize
                let packed = out.session_token_utilization.or(out.packed_policy_size);
                call.issued(out.credentials, arn, packed)
            }
            IssueKind::SessionToken => {
                let out = client
                    .get_session_token()
                    .duration_seconds(duration)
                    .send()
                    .await
                    .map_err(|e| call.sdk_error(e))?;
                call.issued(out.credentials, None, None)
            }
            IssueKind::AssumeRole {
                role_arn,
                session_name,
                external_id,
                policy,
                policy_arns,
                tags,
                source_identity,
            } => {
                let out = client
                    .assume_role()
                    .role_arn(role_arn)
                    .role_session_name(session_name)
                    .duration_seconds(duration)
                    .set_external_id(external_id.clone())
                    .set_policy(policy.clone())
                    .set_policy_arns(policy_descriptors(policy_arns))
                    .set_tags(sts_tags(tags).map_err(|e| call.invalid("tags", &e))?)
                    .set_source_identity(source_identity.clone())
                    .send()
                    .await
                    .map_err(|e| call.sdk_error(e))?;
                let arn = out.assumed_role_user().map(|u| u.arn().to_owned());
                #[allow(deprecated)] // older STS stand-ins (moto) send only PackedPolicySize
                let packed = out.session_token_utilization.or(out.packed_policy_size);
                call.issued(out.credentials, arn, packed)
            }
        }
    }

    async fn caller_identity_checked(
        &self,
        access: &AccountAccess,
        credentials: &IssuedCredentials,
    ) -> Result<CallerIdentity, StsError> {
        validate::check_access(access)?;
        let client = self.client(access).await;
        let secrets = [
            credentials.secret_access_key.expose(),
            credentials.session_token.expose(),
        ];
        let call = Call::new(self, access, "GetCallerIdentity", &secrets);
        // The account's client (region, endpoint, HTTP connections, timeouts, retries) with the vended
        // credentials for this one operation; the SDK gives an overriding provider its own short-lived cache.
        let vended = Credentials::new(
            &credentials.access_key_id,
            credentials.secret_access_key.expose(),
            Some(credentials.session_token.expose().to_owned()),
            None,
            "idfed-vended",
        );
        let out = client
            .get_caller_identity()
            .customize()
            .config_override(aws_sdk_sts::Config::builder().credentials_provider(vended))
            .send()
            .await
            .map_err(|e| call.sdk_error(e))?;
        Ok(CallerIdentity {
            account: out.account.unwrap_or_default(),
            arn: out.arn.unwrap_or_default(),
            user_id: out.user_id.unwrap_or_default(),
        })
    }
}

impl CredentialIssuer for AwsIssuer {
    fn issue<'a>(
        &'a self,
        request: &'a IssueRequest,
    ) -> BoxFuture<'a, Result<IssuedCredentials, StsError>> {
        Box::pin(self.issue_checked(request))
    }

    fn caller_identity<'a>(
        &'a self,
        access: &'a AccountAccess,
        credentials: &'a IssuedCredentials,
    ) -> BoxFuture<'a, Result<CallerIdentity, StsError>> {
        Box::pin(self.caller_identity_checked(access, credentials))
    }
}

fn policy_descriptors(arns: &[String]) -> Option<Vec<PolicyDescriptorType>> {
    (!arns.is_empty()).then(|| {
        arns.iter()
            .map(|arn| PolicyDescriptorType::builder().arn(arn).build())
            .collect()
    })
}

fn sts_tags(tags: &[SessionTag]) -> Result<Option<Vec<Tag>>, String> {
    if tags.is_empty() {
        return Ok(None);
    }
    tags.iter()
        .map(|t| {
            Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// One STS operation's context, for turning its outcome into idfed's types and messages.
struct Call<'a> {
    operation: &'static str,
    account: &'a str,
    region: String,
    endpoint: Option<&'a str>,
    operation_timeout: Duration,
    /// Strings masked in every message: the account's secret and, for calls with vended credentials, theirs.
    secrets: Vec<&'a str>,
}

impl<'a> Call<'a> {
    fn new(
        issuer: &AwsIssuer,
        access: &'a AccountAccess,
        operation: &'static str,
        extra_secrets: &[&'a str],
    ) -> Self {
        let mut secrets = extra_secrets.to_vec();
        if let AccountCredentials::Static {
            secret_access_key, ..
        } = &access.credentials
        {
            secrets.push(secret_access_key.expose());
        }
        Call {
            operation,
            account: &access.account_name,
            region: issuer.region(access),
            endpoint: access.endpoint.as_deref(),
            operation_timeout: issuer.settings.operation_timeout,
            secrets,
        }
    }

    fn prefix(&self) -> String {
        format!("STS {} for account {:?}", self.operation, self.account)
    }

    fn where_(&self) -> String {
        match self.endpoint {
            Some(endpoint) => format!("at {endpoint}"),
            None => format!("in {}", self.region),
        }
    }

    /// `text` cut to [`MAX_DETAIL_CHARS`], with every secret of the call masked.
    fn clean(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if !secret.is_empty() {
                text = text.replace(secret, "***");
            }
        }
        if text.chars().count() > MAX_DETAIL_CHARS {
            text = text.chars().take(MAX_DETAIL_CHARS).collect::<String>() + "…";
        }
        text
    }

    fn error(&self, kind: StsErrorKind, what: &str) -> StsError {
        let message = self.clean(&format!("{}: {what}", self.prefix()));
        StsError::new(kind, message)
    }

    fn invalid(&self, field: &str, rule: &str) -> StsError {
        StsError::invalid(ValidationError::new(field, self.clean(rule)))
    }

    fn issued(
        &self,
        credentials: Option<aws_sdk_sts::types::Credentials>,
        principal_arn: Option<String>,
        packed_policy_size: Option<i32>,
    ) -> Result<IssuedCredentials, StsError> {
        let Some(credentials) = credentials else {
            return Err(self.error(StsErrorKind::Other, "STS answered without credentials"));
        };
        let expiration = SystemTime::try_from(credentials.expiration).map_err(|_| {
            self.error(
                StsErrorKind::Other,
                "STS answered with an expiration time out of range",
            )
        })?;
        Ok(IssuedCredentials {
            access_key_id: credentials.access_key_id,
            secret_access_key: Secret::new(credentials.secret_access_key),
            session_token: Secret::new(credentials.session_token),
            expiration,
            principal_arn,
            packed_policy_size,
        })
    }

    fn sdk_error<E>(&self, err: SdkError<E>) -> StsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                self.service_error(e.code(), e.message(), status)
            }
            SdkError::TimeoutError(_) => self.error(
                StsErrorKind::Unavailable,
                &format!(
                    "STS {} did not answer within {:?}",
                    self.where_(),
                    self.operation_timeout
                ),
            ),
            SdkError::DispatchFailure(failure) => {
                let detail = DisplayErrorContext(&err).to_string();
                let transient = matches!(
                    failure.as_other(),
                    Some(ErrorKind::TransientError | ErrorKind::ServerError)
                );
                if failure.is_io() || failure.is_timeout() || transient {
                    let what = if failure.is_timeout() {
                        "timed out connecting to"
                    } else {
                        "could not connect to, or lost the connection to,"
                    };
                    self.error(
                        StsErrorKind::Unavailable,
                        &format!("{what} STS {}: {detail}", self.where_()),
                    )
                } else {
                    // E.g. no credentials found by the host's chain, or an unusable endpoint.
                    self.error(
                        StsErrorKind::Other,
                        &format!("the request could not be sent: {detail}"),
                    )
                }
            }
            SdkError::ResponseError(_) => {
                let detail = DisplayErrorContext(&err).to_string();
                let kind = match status {
                    Some(s) if s >= 500 => StsErrorKind::Unavailable,
                    Some(403) => StsErrorKind::AccessDenied,
                    _ => StsErrorKind::Other,
                };
                let status = status.map_or("no status".to_owned(), |s| format!("HTTP {s}"));
                self.error(
                    kind,
                    &format!(
                        "STS {} gave an unreadable answer ({status}): {detail}",
                        self.where_()
                    ),
                )
            }
            _ => {
                // ConstructionFailure and anything newer.
                let detail = DisplayErrorContext(&err).to_string();
                self.error(
                    StsErrorKind::Other,
                    &format!("the request could not be made: {detail}"),
                )
            }
        }
    }

    fn service_error(
        &self,
        code: Option<&str>,
        message: Option<&str>,
        status: Option<u16>,
    ) -> StsError {
        let kind = classify(code, message, status);
        let detail = match (code, message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_owned(),
            (None, Some(m)) => m.to_owned(),
            (None, None) => status.map_or("no error code".to_owned(), |s| format!("HTTP {s}")),
        };
        let detail = self.clean(&detail);
        if let StsErrorKind::Invalid(_) = kind {
            let rule = format!("refused by STS ({detail})");
            return StsError {
                message: format!("{}: the request is invalid: {rule}", self.prefix()),
                kind: StsErrorKind::Invalid(ValidationError::new("request", rule)),
            };
        }
        let what = match &kind {
            StsErrorKind::AccessDenied => "access denied".to_owned(),
            StsErrorKind::Throttled { .. } => {
                "throttled by STS, still after retrying with backoff".to_owned()
            }
            StsErrorKind::MalformedPolicy => "STS found the session policy malformed".to_owned(),
            StsErrorKind::PackedPolicyTooLarge => {
                "the session policies and tags are over STS's packed size limit".to_owned()
            }
            StsErrorKind::RegionDisabled => format!(
                "STS is not activated for the account in {} (activate the region in IAM's account settings)",
                self.region
            ),
            StsErrorKind::InvalidToken => {
                "STS refused the credentials (unknown, expired or badly signed)".to_owned()
            }
            StsErrorKind::Unavailable => format!("STS {} failed", self.where_()),
            _ => "STS refused the request".to_owned(),
        };
        self.error(kind, &format!("{what} ({detail})"))
    }
}

/// The kind of an STS error answer, by its code, else its message, else its HTTP status.
fn classify(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> StsErrorKind {
    let code = code.unwrap_or("");
    match code {
        "AccessDenied" | "AccessDeniedException" => return StsErrorKind::AccessDenied,
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown" => {
            return StsErrorKind::Throttled {
                retry_after: THROTTLED_RETRY_AFTER,
            };
        }
        "MalformedPolicyDocument" | "MalformedPolicyDocumentException" => {
            return StsErrorKind::MalformedPolicy;
        }
        "PackedPolicyTooLarge" | "PackedPolicyTooLargeException" => {
            return StsErrorKind::PackedPolicyTooLarge;
        }
        "RegionDisabledException" | "RegionDisabled" => return StsErrorKind::RegionDisabled,
        "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "UnrecognizedClientException"
        | "InvalidAccessKeyId"
        | "InvalidToken" => return StsErrorKind::InvalidToken,
        "InternalFailure"
        | "InternalError"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => return StsErrorKind::Unavailable,
        "ValidationError"
        | "ValidationException"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "InvalidAction"
        | "InvalidParameterException" => {
            return StsErrorKind::Invalid(ValidationError::new("request", "refused by STS"));
        }
        _ => {}
    }
    if message.is_some_and(|m| m.contains("Rate exceeded")) {
        return StsErrorKind::Throttled {
            retry_after: THROTTLED_RETRY_AFTER,
        };
    }
    match status {
        Some(s) if s >= 500 => StsErrorKind::Unavailable,
        Some(429) => StsErrorKind::Throttled {
            retry_after: THROTTLED_RETRY_AFTER,
        },
        // moto's auth mode answers 403s whose code the SDK cannot read: go by the status.
        Some(403) => StsErrorKind::AccessDenied,
        _ => StsErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(secret: &str, region: Option<&str>, endpoint: Option<&str>) -> AccountAccess {
        AccountAccess {
            account_name: "main".into(),
            credentials: AccountCredentials::Static {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: Secret::new(secret),
            },
            region: region.map(str::to_owned),
            endpoint: endpoint.map(str::to_owned),
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        let k = |code, message, status| classify(code, message, status);
        assert_eq!(
            k(Some("AccessDenied"), None, Some(403)),
            StsErrorKind::AccessDenied
        );
        assert!(matches!(
            k(Some("Throttling"), Some("Rate exceeded"), Some(400)),
            StsErrorKind::Throttled { .. }
        ));
        assert!(matches!(
            k(Some("Whatever"), Some("Rate exceeded"), Some(400)),
            StsErrorKind::Throttled { .. }
        ));
        assert_eq!(
            k(Some("MalformedPolicyDocument"), None, Some(400)),
            StsErrorKind::MalformedPolicy
        );
        assert_eq!(
            k(Some("PackedPolicyTooLarge"), None, Some(400)),
            StsErrorKind::PackedPolicyTooLarge
        );
        assert_eq!(
            k(Some("RegionDisabledException"), None, Some(403)),
            StsErrorKind::RegionDisabled
        );
        for code in [
            "ExpiredToken",
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
        ] {
            assert_eq!(k(Some(code), None, Some(403)), StsErrorKind::InvalidToken);
        }
        assert_eq!(k(None, None, Some(503)), StsErrorKind::Unavailable);
        assert_eq!(
            k(Some("Unknown"), None, Some(500)),
            StsErrorKind::Unavailable
        );
        assert_eq!(k(None, None, Some(403)), StsErrorKind::AccessDenied);
        assert!(matches!(
            k(Some("ValidationError"), None, Some(400)),
            StsErrorKind::Invalid(_)
        ));
        assert_eq!(k(Some("Odd"), None, Some(400)), StsErrorKind::Other);
        assert_eq!(k(None, None, None), StsErrorKind::Other);
    }

    #[test]
    fn messages_mask_secrets_and_stay_short() {
        let issuer = AwsIssuer::new(IssuerSettings::default());
        let access = access("s3cr3t-KEY-value", None, None);
        let call = Call::new(&issuer, &access, "GetSessionToken", &["tok3n-value"]);
        let err = call.service_error(
            Some("AccessDenied"),
            Some("key s3cr3t-KEY-value and tok3n-value are wrong"),
            Some(403),
        );
        assert_eq!(err.code(), "sts_access_denied");
        let shown = format!("{err:?} {err}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(err.message.contains("GetSessionToken") && err.message.contains("\"main\""));
        let long = call.service_error(Some("Odd"), Some(&"x".repeat(5000)), Some(400));
        assert!(long.message.chars().count() < 600);
        let invalid = call.service_error(Some("ValidationError"), Some("bad name"), Some(400));
        assert_eq!(invalid.code(), "sts_invalid_request");
        assert!(invalid.message.contains("bad name"));
        let disabled = call.service_error(Some("RegionDisabledException"), None, Some(403));
        assert!(disabled.message.contains("us-east-1"), "{disabled}");
    }

    #[tokio::test]
    async fn clients_are_cached_per_account_and_replaced_when_it_changes() {
        let issuer = AwsIssuer::new(IssuerSettings::default());
        let a = access("secret-one", None, Some("http://127.0.0.1:9"));
        issuer.client(&a).await;
        issuer.client(&a).await;
        assert_eq!(issuer.cached_clients(), 1);
        let f1 = issuer.fingerprint(&a, "us-east-1");
        for changed in [
            access("secret-two", None, Some("http://127.0.0.1:9")),
            access("secret-one", Some("eu-west-1"), Some("http://127.0.0.1:9")),
            access("secret-one", None, Some("http://127.0.0.1:10")),
            access("secret-one", None, None),
        ] {
            let region = issuer.region(&changed);
            assert_ne!(issuer.fingerprint(&changed, &region), f1);
        }
        let b = access("secret-two", None, Some("http://127.0.0.1:9"));
        issuer.client(&b).await;
        assert_eq!(
            issuer.cached_clients(),
            1,
            "a changed account replaces its client"
        );
        let mut other = a.clone();
        other.account_name = "other".into();
        issuer.client(&other).await;
        assert_eq!(issuer.cached_clients(), 2);
        // Another issuer salts differently: the fingerprint is not a plain hash of the secret.
        let again = AwsIssuer::new(IssuerSettings::default());
        assert_ne!(again.fingerprint(&a, "us-east-1"), f1);
    }
}
