//! The `[auth]` part of idfed's configuration: which directory (a static file of users, or Crowd), who
//! the administrators are, and the session, cache and lockout settings. Deserialized from TOML.
//!
//! ```toml
//! [auth]
//! admin_groups = ["idfed-admins"]
//! bootstrap_admins = ["admin"]
//! session_ttl_seconds = 28800
//!
//! [auth.directory]
//! type = "crowd"                      # or: type = "static", file = "users.toml"
//! url = "https://crowd.example.com/crowd"
//! application_name = "idfed"
//! application_password_file = "/etc/idfed/crowd-password"   # or application_password = "…"
//! ca_file = "/etc/idfed/corp-ca.pem"
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::Directory;
use super::authenticator::AuthConfig;
use super::crowd::{CrowdConfig, CrowdDirectory};
use super::lockout::LockoutConfig;
use super::static_dir::StaticDirectory;
use crate::secret::Secret;

/// Which directory people are authenticated against.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DirectoryConfig {
    /// A file of users with argon2 password hashes (`idfed user add`).
    Static {
        /// The users file.
        file: PathBuf,
    },
    /// Atlassian Crowd over its REST API.
    Crowd {
        /// Crowd's base URL (the part before `/rest/usermanagement/1`).
        url: String,
        /// idfed's application name in Crowd.
        application_name: String,
        /// The application password, inline (prefer `application_password_file`).
        #[serde(default)]
        application_password: Option<Secret>,
        /// A file holding the application password (trailing newline ignored).
        #[serde(default)]
        application_password_file: Option<PathBuf>,
        /// A PEM file of CA certificates to trust besides the system's.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// Seconds for a whole request (default 5).
        #[serde(default)]
        timeout_seconds: Option<u64>,
        /// Groups fetched per page (default 200).
        #[serde(default)]
        page_size: Option<u32>,
    },
}

impl DirectoryConfig {
    /// Builds the directory; an error says what in the configuration is wrong.
    pub fn build(&self) -> Result<Arc<dyn Directory>, String> {
        match self {
            DirectoryConfig::Static { file } => StaticDirectory::load(file.clone())
                .map(|d| Arc::new(d) as Arc<dyn Directory>)
                .map_err(|e| e.to_string()),
            DirectoryConfig::Crowd {
                url,
                application_name,
                application_password,
                application_password_file,
                ca_file,
                timeout_seconds,
                page_size,
            } => {
                let password = match (application_password, application_password_file) {
                    (Some(password), None) => password.clone(),
                    (None, Some(file)) => std::fs::read_to_string(file)
                        .map(|text| Secret::new(text.trim_end_matches(['\n', '\r'])))
                        .map_err(|e| {
                            format!(
                                "auth.directory.application_password_file {}: {e}",
                                file.display()
                            )
                        })?,
                    _ => {
                        return Err(
                            "auth.directory: give exactly one of application_password and application_password_file".into(),
                        );
                    }
                };
                let mut config = CrowdConfig::new(url.clone(), application_name.clone(), password);
                if let Some(file) = ca_file {
                    config.ca_certificate_pem =
                        Some(std::fs::read_to_string(file).map_err(|e| {
                            format!("auth.directory.ca_file {}: {e}", file.display())
                        })?);
                }
                if let Some(seconds) = timeout_seconds {
                    config.timeout = Duration::from_secs(*seconds);
                }
                if let Some(size) = page_size {
                    config.page_size = *size;
                }
                CrowdDirectory::new(config)
                    .map(|d| Arc::new(d) as Arc<dyn Directory>)
                    .map_err(|e| match e {
                        super::AuthError::Unavailable(why) => format!("auth.directory: {why}"),
                        other => format!("auth.directory: {other}"),
                    })
            }
        }
    }
}

/// The `[auth]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The directory.
    pub directory: DirectoryConfig,
    /// Members of these groups are administrators.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// These users are administrators whatever their groups (for a first start).
    #[serde(default)]
    pub bootstrap_admins: Vec<String>,
    /// How long a session lasts (default 8 h).
    #[serde(default)]
    pub session_ttl_seconds: Option<u64>,
    /// How long a successful password check is remembered (default 60 s; 0 turns it off).
    #[serde(default)]
    pub auth_cache_ttl_seconds: Option<u64>,
    /// How long group memberships are remembered (default 5 min).
    #[serde(default)]
    pub group_cache_ttl_seconds: Option<u64>,
    /// Failed attempts per user before a lockout (default 5).
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// Failed attempts per source address before a lockout (default 20).
    #[serde(default)]
    pub max_failures_per_address: Option<u32>,
    /// The first lockout, in seconds (default 300; doubles on repeat).
    #[serde(default)]
    pub lockout_seconds: Option<u64>,
}

impl AuthSettings {
    /// The authenticator's settings.
    pub fn auth_config(&self) -> AuthConfig {
        let defaults = AuthConfig::default();
        let seconds =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
        AuthConfig {
            admin_groups: self.admin_groups.clone(),
            bootstrap_admins: self.bootstrap_admins.clone(),
            session_ttl: seconds(self.session_ttl_seconds, defaults.session_ttl),
            auth_cache_ttl: seconds(self.auth_cache_ttl_seconds, defaults.auth_cache_ttl),
            group_cache_ttl: seconds(self.group_cache_ttl_seconds, defaults.group_cache_ttl),
            lockout: LockoutConfig {
                max_failures: self.max_failures.unwrap_or(defaults.lockout.max_failures),
                max_failures_per_address: self
                    .max_failures_per_address
                    .unwrap_or(defaults.lockout.max_failures_per_address),
                lockout: seconds(self.lockout_seconds, defaults.lockout.lockout),
                ..defaults.lockout
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crowd_section_reads_and_builds_without_leaking_the_password() {
        let settings: AuthSettings = toml::from_str(
            r#"
            admin_groups = ["idfed-admins"]
            group_cache_ttl_seconds = 60
            [directory]
            type = "crowd"
            url = "https://crowd.example.com/crowd"
            application_name = "idfed"
            application_password = "app-secret-pw"
            "#,
        )
        .unwrap();
        assert!(!format!("{settings:?}").contains("app-secret-pw"));
        assert_eq!(
            settings.auth_config().group_cache_ttl,
            Duration::from_secs(60)
        );
        assert_eq!(settings.directory.build().unwrap().kind(), "crowd");
    }

    #[test]
    fn mistakes_are_named() {
        let err = toml::from_str::<AuthSettings>("[directory]\ntype = \"ldap\"\n").unwrap_err();
        assert!(err.to_string().contains("ldap"), "{err}");
        let settings: AuthSettings = toml::from_str(
            "[directory]\ntype = \"crowd\"\nurl = \"https://c\"\napplication_name = \"idfed\"\n",
        )
        .unwrap();
        let err = settings.directory.build().err().unwrap();
        assert!(err.contains("application_password"), "{err}");
        let missing: AuthSettings =
            toml::from_str("[directory]\ntype = \"static\"\nfile = \"/nonexistent/users.toml\"\n")
                .unwrap();
        assert!(
            missing
                .directory
                .build()
                .err()
                .unwrap()
                .contains("/nonexistent/users.toml")
        );
    }
}
