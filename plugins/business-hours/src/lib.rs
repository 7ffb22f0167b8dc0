//! idfed policy plugin `business-hours`: refuses credentials outside a weekly time window, unless the caller is in
//! an exempt group. See README.md for the configuration.

use idfed_sdk::{ConfigError, Decision, PluginError, Policy, Request, Timestamp};
use serde::Deserialize;

/// The plugin.
pub struct BusinessHours;

/// The configuration (all fields optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The local time's offset from UTC in minutes (-720 to 840); default 0.
    pub utc_offset_minutes: i32,
    /// The days (`mon` … `sun`) on which the window opens; default Monday to Friday.
    pub days: Vec<String>,
    /// When the window opens, `HH:MM` local time; default `08:00`.
    pub start: String,
    /// When the window closes, `HH:MM` local time (`24:00` for midnight); default `18:00`. Before `start` means
    /// the window runs overnight into the next day.
    pub end: String,
    /// Members of these groups may get credentials at any time; default none.
    pub exempt_groups: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            utc_offset_minutes: 0,
            days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            start: "08:00".into(),
            end: "18:00".into(),
            exempt_groups: Vec::new(),
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Parses `HH:MM` (00:00 to 23:59, and 24:00 when `allow_24`) into minutes after midnight.
pub fn parse_hhmm(text: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if allow_24 => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn day_index(name: &str) -> Option<usize> {
    DAYS.iter().position(|d| d.eq_ignore_ascii_case(name))
}

/// The checked form of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Offset from UTC in minutes.
    pub offset_minutes: i32,
    /// Which weekdays (Monday = 0) open the window.
    pub days: [bool; 7],
    /// Opening minute of the day.
    pub start: u32,
    /// Closing minute of the day (1440 = midnight); below `start` for an overnight window.
    pub end: u32,
}

impl Window {
    /// Checks a configuration.
    pub fn from_config(config: &Config) -> Result<Window, ConfigError> {
        if !(-720..=840).contains(&config.utc_offset_minutes) {
            return Err(ConfigError::at(
                "/utc_offset_minutes",
                "utc_offset_minutes must be between -720 (UTC-12:00) and 840 (UTC+14:00)",
            ));
        }
        if config.days.is_empty() {
            return Err(ConfigError::at("/days", "days must list at least one day"));
        }
        let mut days = [false; 7];
        for (i, d) in config.days.iter().enumerate() {
            let Some(k) = day_index(d) else {
                return Err(ConfigError::at(
                    format!("/days/{i}"),
                    format!("unknown day {d:?}: use mon, tue, wed, thu, fri, sat or sun"),
                ));
            };
            if days[k] {
                return Err(ConfigError::at(
                    format!("/days/{i}"),
                    format!("day {d:?} is listed twice"),
                ));
            }
            days[k] = true;
        }
        let start = parse_hhmm(&config.start, false).ok_or_else(|| {
            ConfigError::at(
                "/start",
                format!(
                    "start must be HH:MM from 00:00 to 23:59, not {:?}",
                    config.start
                ),
            )
        })?;
        let end = parse_hhmm(&config.end, true).ok_or_else(|| {
            ConfigError::at(
                "/end",
                format!(
                    "end must be HH:MM from 00:00 to 24:00, not {:?}",
                    config.end
                ),
            )
        })?;
        if start == end {
            return Err(ConfigError::at(
                "/end",
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

    /// The local weekday (Monday = 0) and minute of the day at `time`.
    pub fn local(&self, time: &Timestamp) -> (usize, u32) {
        let local = time.seconds as i64 + i64::from(self.offset_minutes) * 60;
        let day = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday (index 3).
        let weekday = (day + 3).rem_euclid(7) as usize;
        let minute = (local.rem_euclid(86_400) / 60) as u32;
        (weekday, minute)
    }

    /// Whether `time` falls inside the window.
    pub fn contains(&self, time: &Timestamp) -> bool {
        let (weekday, minute) = self.local(time);
        if self.start < self.end {
            self.days[weekday] && (self.start..self.end).contains(&minute)
        } else {
            // Overnight: the part after start belongs to today, the part before end to yesterday's window.
            (self.days[weekday] && minute >= self.start)
                || (self.days[(weekday + 6) % 7] && minute < self.end)
        }
    }

    /// The reason given to a caller refused at `time`.
    pub fn deny_reason(&self, time: &Timestamp) -> String {
        let (weekday, minute) = self.local(time);
        let days: Vec<&str> = (0..7)
            .filter(|&d| self.days[d])
            .map(|d| DAY_NAMES[d])
            .collect();
        let overnight = if self.start < self.end {
            ""
        } else {
            " the next day"
        };
        let zone = utc_offset(self.offset_minutes);
        format!(
            "outside business hours: credentials are issued on {} from {} to {}{overnight} ({zone}); it is now {} {} ({zone})",
            days.join(", "),
            hhmm(self.start),
            hhmm(self.end),
            DAY_NAMES[weekday],
            hhmm(minute),
        )
    }
}

fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn utc_offset(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

impl Policy for BusinessHours {
    type Config = Config;

    fn check_config(config: &Config) -> Result<(), ConfigError> {
        Window::from_config(config).map(|_| ())
    }

    fn evaluate(config: &Config, request: &Request) -> Result<Decision, PluginError> {
        let window =
            Window::from_config(config).map_err(|e| PluginError::invalid_config(e.to_text()))?;
        if window.contains(&request.time) {
            return Ok(Decision::allow_unchanged(request));
        }
        if let Some(group) = config
            .exempt_groups
            .iter()
            .find(|g| request.caller_in_group(g))
        {
            idfed_sdk::log!(
                info,
                "outside business hours; allowed because the caller is in exempt group {group:?}"
            );
            return Ok(Decision::allow_unchanged(request));
        }
        Ok(Decision::deny(window.deny_reason(&request.time)))
    }
}

idfed_sdk::export_policy!(BusinessHours);

#[cfg(test)]
mod tests {
    use super::*;
    use idfed_sdk::testing::sample_request;

    // 2024-01-01 was a Monday.
    fn at(day_of_jan_2024: u64, hh: u64, mm: u64) -> Request {
        let mut r = sample_request();
        r.time = Timestamp::from_seconds(
            1_704_067_200 + (day_of_jan_2024 - 1) * 86_400 + hh * 3600 + mm * 60,
        );
        r
    }

    fn eval(config: &str, r: &Request) -> Decision {
        idfed_sdk::evaluate::<BusinessHours>(config, r).unwrap()
    }

    #[test]
    fn defaults_are_weekdays_8_to_18_utc() {
        assert!(eval("", &at(1, 8, 0)).is_allow());
        assert!(eval("{}", &at(5, 17, 59)).is_allow());
        assert!(!eval("", &at(5, 18, 0)).is_allow());
        assert!(!eval("", &at(1, 7, 59)).is_allow());
        let d = eval("", &at(6, 10, 15));
        assert_eq!(
            d.deny_reason().unwrap(),
            "outside business hours: credentials are issued on Mon, Tue, Wed, Thu, Fri from 08:00 to 18:00 (UTC+00:00); it is now Sat 10:15 (UTC+00:00)"
        );
    }

    #[test]
    fn offset_shifts_the_window() {
        let c = r#"{"utc_offset_minutes": 60, "days": ["mon","tue","wed","thu","fri"], "start": "08:00", "end": "18:00"}"#;
        assert!(
            eval(c, &at(1, 7, 30)).is_allow(),
            "07:30 UTC is 08:30 local"
        );
        assert!(eval(c, &at(1, 7, 0)).is_allow());
        assert!(eval(c, &at(1, 16, 59)).is_allow());
        assert!(!eval(c, &at(1, 6, 59)).is_allow());
        assert!(!eval(c, &at(1, 17, 0)).is_allow());
        // Sunday 23:30 UTC is Monday 00:30 at UTC+1 (still before 08:00).
        let late =
            r#"{"utc_offset_minutes": 60, "start": "00:00", "end": "24:00", "days": ["mon"]}"#;
        assert!(eval(late, &at(7, 23, 30)).is_allow());
        assert!(!eval(late, &at(7, 22, 30)).is_allow());
        let west = r#"{"utc_offset_minutes": -300}"#;
        let d = eval(west, &at(1, 12, 0));
        assert!(!d.is_allow(), "07:00 in UTC-05:00");
        assert!(
            d.deny_reason()
                .unwrap()
                .contains("it is now Mon 07:00 (UTC-05:00)")
        );
    }

    #[test]
    fn overnight_windows_belong_to_the_starting_day() {
        let c = r#"{"days": ["fri"], "start": "22:00", "end": "06:00"}"#;
        assert!(eval(c, &at(5, 22, 0)).is_allow(), "Friday night");
        assert!(
            eval(c, &at(6, 5, 59)).is_allow(),
            "Saturday early morning, Friday's window"
        );
        assert!(!eval(c, &at(6, 6, 0)).is_allow());
        assert!(
            !eval(c, &at(6, 22, 0)).is_allow(),
            "Saturday opens no window"
        );
        assert!(
            !eval(c, &at(5, 5, 0)).is_allow(),
            "Friday early morning belongs to Thursday"
        );
        assert!(
            eval(c, &at(6, 23, 0))
                .deny_reason()
                .unwrap()
                .contains("from 22:00 to 06:00 the next day")
        );
    }

    #[test]
    fn exempt_groups() {
        let c = r#"{"exempt_groups": ["oncall"]}"#;
        let mut r = at(6, 3, 0);
        assert!(!eval(c, &r).is_allow());
        r.caller.groups.push("oncall".into());
        assert!(eval(c, &r).is_allow());
        assert_eq!(eval(c, &r), Decision::allow_unchanged(&r));
    }

    #[test]
    fn config_validation() {
        let check = |c: &str| idfed_sdk::validate_config::<BusinessHours>(c);
        assert!(check("").is_ok());
        assert!(check(r#"{"days": ["Mon", "SAT"], "start": "00:00", "end": "24:00"}"#).is_ok());
        let e = check(r#"{"days": ["mon", "funday"]}"#).unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/days/1"));
        assert!(e.message.contains("unknown day \"funday\""));
        assert_eq!(
            check(r#"{"days": ["mon", "mon"]}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/days/1")
        );
        assert_eq!(
            check(r#"{"days": []}"#).unwrap_err().pointer.as_deref(),
            Some("/days")
        );
        assert_eq!(
            check(r#"{"start": "8:00"}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/start")
        );
        assert_eq!(
            check(r#"{"start": "24:00"}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/start")
        );
        assert_eq!(
            check(r#"{"end": "18:60"}"#).unwrap_err().pointer.as_deref(),
            Some("/end")
        );
        assert_eq!(
            check(r#"{"start": "09:00", "end": "09:00"}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/end")
        );
        assert_eq!(
            check(r#"{"utc_offset_minutes": 900}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/utc_offset_minutes")
        );
        assert_eq!(
            check(r#"{"strat": "09:00"}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/strat")
        );
    }
}
