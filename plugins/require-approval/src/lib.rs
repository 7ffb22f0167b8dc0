//! idfed policy plugin `require-approval`: writes outside a weekly window, or requests whose session policy
//! could allow configured actions, need a justification and an approval by a member of a configured group.
//! See README.md for the configuration and the rules.

use idfed_sdk::iam::PolicyDocument;
use idfed_sdk::{ConfigError, Decision, PluginError, Policy, PrincipalType, Request, Timestamp};
use serde::Deserialize;

/// The plugin.
pub struct RequireApproval;

/// The configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The group whose members may approve (required).
    pub group: String,
    /// The weekly window outside which writes need an approval; none: writes need none for the time.
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// Action patterns (`s3:Delete*`, `iam:*`) a request may not be able to use without an approval.
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    /// Whether a request needing an approval must carry a justification; default true.
    #[serde(default = "default_true")]
    pub require_justification: bool,
    /// The longest duration, in seconds, an approval may grant; none leaves the request's duration.
    #[serde(default)]
    pub max_duration_seconds: Option<u32>,
    /// The reason shown to the requester and the approvers; default an explanation of the rule that applied.
    #[serde(default)]
    pub reason: Option<String>,
}

fn default_true() -> bool {
    true
}

/// The `window` object of the configuration (every field optional: `{}` is Monday to Friday, 08:00–18:00 UTC).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// The days (`mon` … `sun`, any case) on which the window opens; default Monday to Friday.
    pub days: Vec<String>,
    /// When it opens, `HH:MM` local time (00:00–23:59); default `08:00`.
    pub start: String,
    /// When it closes, `HH:MM` local time (00:00–24:00; the minute itself is outside); default `18:00`.
    /// Before `start`: the window runs overnight into the next day.
    pub end: String,
    /// Local time's fixed offset from UTC in minutes (-720 to 840); default 0.
    pub utc_offset_minutes: i32,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            days: ["mon", "tue", "wed", "thu", "fri"].map(String::from).into(),
            start: "08:00".into(),
            end: "18:00".into(),
            utc_offset_minutes: 0,
        }
    }
}

/// Action name prefixes that count as reads (compared ignoring case, after the service's `:`).
pub const READ_PREFIXES: [&str; 4] = ["List", "Get", "Describe", "Head"];

/// The most action patterns a deny or approval reason lists before `and N more`.
const LISTED_ACTIONS: usize = 5;
/// Limits on configured text, so that reasons stay within what the host shows (1,024 bytes by default).
const MAX_GROUP_BYTES: usize = 256;
const MAX_REASON_BYTES: usize = 512;
const MAX_PATTERN_BYTES: usize = 128;
/// STS's range of durations (AssumeRole stops at 43,200 s, GetFederationToken and GetSessionToken at 129,600).
const STS_MIN_DURATION: u32 = 900;
const STS_MAX_DURATION: u32 = 129_600;

const MINUTES_PER_DAY: i64 = 24 * 60;
const MINUTES_PER_WEEK: i64 = 7 * MINUTES_PER_DAY;
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A checked weekly window: on each listed day it opens at `start` and stays open `length` minutes (which may
/// run past midnight into the next day, and past Sunday into Monday).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Local time's offset from UTC, in minutes.
    pub offset_minutes: i32,
    /// The days (Monday = 0) on which it opens.
    pub days: [bool; 7],
    /// The minute of the day it opens.
    pub start: u32,
    /// The minute of the day it closes (1440 for midnight); below `start` for an overnight window.
    pub end: u32,
}

/// `HH:MM` as minutes after midnight: 00:00 to 23:59, and 24:00 when `end_of_day`.
fn minutes_of_day(text: &str, end_of_day: bool) -> Option<u32> {
    let b = text.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let digit = |i: usize| u32::from(b[i] - b'0');
    let (hours, minutes) = (digit(0) * 10 + digit(1), digit(3) * 10 + digit(4));
    match (hours, minutes) {
        (0..=23, 0..=59) => Some(hours * 60 + minutes),
        (24, 0) if end_of_day => Some(24 * 60),
        _ => None,
    }
}

fn clock(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn zone(offset_minutes: i32) -> String {
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let m = offset_minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

impl Window {
    /// Checks the configuration's `window` (errors point below `/window`).
    pub fn from_config(config: &WindowConfig) -> Result<Window, ConfigError> {
        if !(-720..=840).contains(&config.utc_offset_minutes) {
            return Err(ConfigError::at(
                "/window/utc_offset_minutes",
                "utc_offset_minutes must be from -720 (UTC-12:00) to 840 (UTC+14:00)",
            ));
        }
        if config.days.is_empty() {
            return Err(ConfigError::at(
                "/window/days",
                "days must list at least one day",
            ));
        }
        let mut days = [false; 7];
        for (i, name) in config.days.iter().enumerate() {
            let pointer = format!("/window/days/{i}");
            let Some(day) = DAYS.iter().position(|d| d.eq_ignore_ascii_case(name)) else {
                return Err(ConfigError::at(
                    pointer,
                    format!("unknown day {name:?}: use mon, tue, wed, thu, fri, sat or sun"),
                ));
            };
            if std::mem::replace(&mut days[day], true) {
                return Err(ConfigError::at(
                    pointer,
                    format!("day {name:?} is listed twice"),
                ));
            }
        }
        let start = minutes_of_day(&config.start, false).ok_or_else(|| {
            ConfigError::at(
                "/window/start",
                format!(
                    "start must be HH:MM from 00:00 to 23:59, not {:?}",
                    config.start
                ),
            )
        })?;
        let end = minutes_of_day(&config.end, true).ok_or_else(|| {
            ConfigError::at(
                "/window/end",
                format!(
                    "end must be HH:MM from 00:00 to 24:00, not {:?}",
                    config.end
                ),
            )
        })?;
        if start == end {
            return Err(ConfigError::at(
                "/window/end",
                "start and end are equal, so the window would be empty (use 00:00 to 24:00 for whole days)",
            ));
        }
        Ok(Window {
            offset_minutes: config.utc_offset_minutes,
            days,
            start,
            end,
        })
    }

    /// How long the window stays open each time, in minutes.
    fn length(&self) -> i64 {
        let (start, end) = (i64::from(self.start), i64::from(self.end));
        if start < end {
            end - start
        } else {
            end + MINUTES_PER_DAY - start
        }
    }

    /// The local minute of the week (Monday 00:00 = 0) at `time`.
    pub fn minute_of_week(&self, time: &Timestamp) -> i64 {
        let local_minutes = (time.seconds as i64).div_euclid(60) + i64::from(self.offset_minutes);
        // 1970-01-01 was a Thursday, the fourth day of a week that starts on Monday.
        (local_minutes + 3 * MINUTES_PER_DAY).rem_euclid(MINUTES_PER_WEEK)
    }

    /// Whether `time` falls inside the window: some listed day's opening came at most `length` minutes
    /// before it (counted round the week, so a Sunday night window runs into Monday).
    pub fn contains(&self, time: &Timestamp) -> bool {
        let now = self.minute_of_week(time);
        let length = self.length();
        (0..7).filter(|&d| self.days[d]).any(|d| {
            let opens = d as i64 * MINUTES_PER_DAY + i64::from(self.start);
            (now - opens).rem_euclid(MINUTES_PER_WEEK) < length
        })
    }

    /// `Mon, Tue 08:00-18:00 (UTC+01:00)`, or `… 22:00-06:00 the next day (…)` overnight.
    pub fn describe(&self) -> String {
        let days: Vec<&str> = (0..7).filter(|&d| self.days[d]).map(|d| DAYS[d]).collect();
        let overnight = if self.end < self.start {
            " the next day"
        } else {
            ""
        };
        format!(
            "{} {}-{}{overnight} ({})",
            days.join(", "),
            clock(self.start),
            clock(self.end),
            zone(self.offset_minutes)
        )
    }

    /// `Sat 10:15 (UTC+01:00)`: the local time at `time`.
    pub fn local_time(&self, time: &Timestamp) -> String {
        let minute = self.minute_of_week(time);
        format!(
            "{} {} ({})",
            DAYS[(minute / MINUTES_PER_DAY) as usize],
            clock((minute % MINUTES_PER_DAY) as u32),
            zone(self.offset_minutes)
        )
    }
}

fn valid_action_pattern(pattern: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | '-' | '_');
    match pattern.split_once(':') {
        Some((service, action)) => {
            !service.is_empty()
                && !action.is_empty()
                && service.chars().all(allowed)
                && action.chars().all(allowed)
        }
        None => !pattern.is_empty() && pattern.chars().all(|c| c == '*'),
    }
}

fn plain_text(text: &str) -> bool {
    !text.trim().is_empty() && !text.chars().any(char::is_control)
}

/// The configuration, checked: what `validate-config` accepts and `evaluate` works from.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The configuration.
    pub config: Config,
    /// Its window, checked.
    pub window: Option<Window>,
}

impl Rules {
    /// Checks a configuration; errors carry the JSON pointer of the value at fault.
    pub fn from_config(config: &Config) -> Result<Rules, ConfigError> {
        if !plain_text(&config.group) || config.group.len() > MAX_GROUP_BYTES {
            return Err(ConfigError::at(
                "/group",
                format!(
                    "group must name the approvers' group: not blank, at most {MAX_GROUP_BYTES} bytes, no control characters"
                ),
            ));
        }
        let window = config
            .window
            .as_ref()
            .map(Window::from_config)
            .transpose()?;
        if let Some(actions) = &config.actions {
            if actions.is_empty() {
                return Err(ConfigError::at(
                    "/actions",
                    "actions must list at least one action pattern (or be left out)",
                ));
            }
            for (i, pattern) in actions.iter().enumerate() {
                if pattern.len() > MAX_PATTERN_BYTES || !valid_action_pattern(pattern) {
                    return Err(ConfigError::at(
                        format!("/actions/{i}"),
                        format!(
                            "{pattern:?} is not an IAM action pattern such as \"s3:Delete*\" or \"iam:*\" (service:action, letters, digits, -, _, * and ?, at most {MAX_PATTERN_BYTES} bytes)"
                        ),
                    ));
                }
            }
        }
        if window.is_none() && config.actions.is_none() {
            return Err(ConfigError::at(
                "",
                "nothing would ever need an approval: configure a window, actions or both",
            ));
        }
        if let Some(max) = config.max_duration_seconds
            && !(STS_MIN_DURATION..=STS_MAX_DURATION).contains(&max)
        {
            return Err(ConfigError::at(
                "/max_duration_seconds",
                format!(
                    "max_duration_seconds must be from {STS_MIN_DURATION} to {STS_MAX_DURATION} (STS's range), not {max}"
                ),
            ));
        }
        if let Some(reason) = &config.reason
            && (!plain_text(reason) || reason.len() > MAX_REASON_BYTES)
        {
            return Err(ConfigError::at(
                "/reason",
                format!(
                    "reason must be text: not blank, at most {MAX_REASON_BYTES} bytes, no control characters"
                ),
            ));
        }
        Ok(Rules {
            config: config.clone(),
            window,
        })
    }

    /// Why the request needs an approval, one phrase per rule that applies; empty when none does.
    pub fn triggered(&self, request: &Request) -> Vec<String> {
        let effective = EffectivePolicy::of(request);
        let mut rules = Vec::new();
        if let Some(actions) = &self.config.actions {
            let matched: Vec<&str> = actions
                .iter()
                .map(String::as_str)
                .filter(|a| effective.document.allows_action(a))
                .collect();
            if !matched.is_empty() {
                rules.push(format!(
                    "{} could allow {}, which need an approval",
                    effective.subject,
                    list(&matched)
                ));
            }
        }
        if let Some(window) = &self.window
            && !window.contains(&request.time)
            && allows_writes(&effective.document)
        {
            rules.push(format!(
                "it is {}, outside {}, and {} could allow more than reads ({})",
                window.local_time(&request.time),
                window.describe(),
                effective.subject,
                READ_PREFIXES.map(|p| format!("{p}*")).join(", ")
            ));
        }
        rules
    }

    /// Decides on a request (the whole plugin logic).
    pub fn decide(&self, request: &Request) -> Decision {
        let config = &self.config;
        if let Some(approval) = &request.approval {
            let mut grant = request.grant();
            if let Some(max) = config.max_duration_seconds {
                grant.duration_seconds = grant.duration_seconds.min(max);
            }
            idfed_sdk::log!(
                info,
                "approved by {:?}; allowed for {} s",
                approval.approver,
                grant.duration_seconds
            );
            return Decision::allow(grant);
        }
        let rules = self.triggered(request);
        if rules.is_empty() {
            return Decision::allow_unchanged(request);
        }
        let reason = match &config.reason {
            Some(reason) => reason.clone(),
            None => format!("approval needed: {}", rules.join("; ")),
        };
        if config.require_justification && request.justification.is_none() {
            return Decision::deny(format!(
                "{}. Repeat the request with a justification (--reason \"...\" on the command line, \
                 \"justification\" in the API) to ask a member of {:?} for an approval",
                reason.trim_end_matches('.'),
                config.group
            ));
        }
        match config.max_duration_seconds {
            Some(max) => Decision::needs_approval_for(&config.group, reason, max),
            None => Decision::needs_approval(&config.group, reason),
        }
    }
}

fn list(actions: &[&str]) -> String {
    let shown = actions[..actions.len().min(LISTED_ACTIONS)].join(", ");
    match actions.len().saturating_sub(LISTED_ACTIONS) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// What the session could do, as far as the plugin can tell, and how to name it in a reason.
#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    /// The policy the rules are checked against: the request's inline policy, or one allowing everything
    /// where the permissions cannot be inspected, or nothing where the session gets none.
    pub document: PolicyDocument,
    /// `the session policy`, `the role's full permissions (no session policy)`, …
    pub subject: &'static str,
}

impl EffectivePolicy {
    /// The effective session policy of a request, judged conservatively:
    ///
    /// - an `iam-user` connector takes no session policy: the user's own permissions, unknown, so everything;
    /// - managed policy ARNs cannot be read, and STS grants the union of the session policies: everything;
    /// - an inline policy (the caller's, else the connector's, as the request carries it): that policy (one
    ///   that does not parse, which the host never passes, counts as everything);
    /// - no policy at all: everything for an `assumed-role` connector (the role's permissions), nothing for a
    ///   `federated-user` one (`GetFederationToken` without a session policy gives no permissions).
    pub fn of(request: &Request) -> EffectivePolicy {
        let everything = |subject| EffectivePolicy {
            document: PolicyDocument::allow_all(),
            subject,
        };
        if request.connector.principal_type == PrincipalType::IamUser {
            return everything(
                "the IAM user's own permissions (iam-user connectors take no session policy)",
            );
        }
        if !request.policy_arns.is_empty() {
            return everything("the session's managed policies (their ARNs cannot be inspected)");
        }
        match &request.policy {
            Some(text) => match PolicyDocument::parse(text) {
                Ok(document) => EffectivePolicy {
                    document,
                    subject: "the session policy",
                },
                Err(e) => {
                    idfed_sdk::log!(
                        warn,
                        "the session policy does not parse ({e}); judged as allowing everything"
                    );
                    everything("the session policy (which cannot be read)")
                }
            },
            None if request.connector.principal_type == PrincipalType::AssumedRole => {
                everything("the role's full permissions (no session policy)")
            }
            None => EffectivePolicy {
                document: PolicyDocument::new(),
                subject: "the session (no session policy)",
            },
        }
    }
}

/// Whether an action or pattern names only reads: its action name (after `service:`) starts with `List`,
/// `Get`, `Describe` or `Head`, ignoring case, with no wildcard before the end of that prefix. `s3:Get*` and
/// `ec2:DescribeInstances` are reads; `*`, `s3:*` and `s3:G*` are not.
pub fn is_read_action(pattern: &str) -> bool {
    let Some((_, name)) = pattern.split_once(':') else {
        return false;
    };
    READ_PREFIXES.iter().any(|prefix| {
        name.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    })
}

/// Whether the policy could allow an action that is not a read ([`is_read_action`]): an `Allow` with
/// `NotAction` (which allows everything it does not list), or an allowed action entry that is not a read and
/// that [`PolicyDocument::allows_action`] still finds allowed (an unconditional `Deny` on `*` covering it
/// takes it out).
pub fn allows_writes(document: &PolicyDocument) -> bool {
    let not_action = document.allow_statements().any(|s| {
        s.action.is_none()
            && s.not_action.is_some()
            && !s.resource.as_ref().is_some_and(|r| r.is_empty())
    });
    (not_action && document.allows_action("*"))
        || document
            .allowed_actions()
            .into_iter()
            .any(|a| !is_read_action(a) && document.allows_action(a))
}

impl Policy for RequireApproval {
    type Config = Config;

    fn check_config(config: &Config) -> Result<(), ConfigError> {
        Rules::from_config(config).map(|_| ())
    }

    fn evaluate(config: &Config, request: &Request) -> Result<Decision, PluginError> {
        let rules =
            Rules::from_config(config).map_err(|e| PluginError::invalid_config(e.to_text()))?;
        Ok(rules.decide(request))
    }
}

idfed_sdk::export_policy!(RequireApproval);

#[cfg(test)]
mod tests;
