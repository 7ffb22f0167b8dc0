use super::*;
use idfed_sdk::testing::{self, sample_request};
use idfed_sdk::{Approval, ApprovalRequirement, Grant};

const READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;
const PUT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"*"}]}"#;
const DELETE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::data/*"}]}"#;

/// The window of business hours and the actions `s3:Delete*`, `iam:*`.
const BOTH: &str = r#"{"group": "prod-approvers", "window": {"days": ["mon","tue","wed","thu","fri"], "start": "08:00", "end": "18:00", "utc_offset_minutes": 0}, "actions": ["s3:Delete*", "iam:*"]}"#;
const WINDOW: &str = r#"{"group": "prod-approvers", "window": {}}"#;
const ACTIONS: &str = r#"{"group": "prod-approvers", "actions": ["s3:Delete*", "iam:*"]}"#;

/// A request with `policy` at day `day` of January 2024 (the 1st was a Monday), `hh:mm` UTC, justified.
fn at(policy: &str, day: u64, hh: u64, mm: u64) -> Request {
    let mut r = sample_request();
    r.policy = Some(policy.into());
    r.time = Timestamp::from_seconds(1_704_067_200 + (day - 1) * 86_400 + hh * 3600 + mm * 60);
    r.justification = Some("deploying release 4.2".into());
    r
}

fn eval(config: &str, r: &Request) -> Decision {
    idfed_sdk::evaluate::<RequireApproval>(config, r).unwrap()
}

fn needs(config: &str, r: &Request) -> ApprovalRequirement {
    match eval(config, r) {
        Decision::NeedsApproval(needs) => needs,
        other => panic!("expected needs-approval, got {other:?}"),
    }
}

fn allowed_unchanged(config: &str, r: &Request) -> bool {
    eval(config, r) == Decision::allow_unchanged(r)
}

fn check(config: &str) -> Result<(), ConfigError> {
    idfed_sdk::validate_config::<RequireApproval>(config)
}

fn pointer(config: &str) -> Option<String> {
    check(config).unwrap_err().pointer
}

#[test]
fn a_policy_allowing_a_listed_action_needs_an_approval_at_any_time() {
    // Wednesday 10:00, inside the window: the actions rule does not care.
    let r = at(DELETE, 3, 10, 0);
    let n = needs(BOTH, &r);
    assert_eq!(n.group, "prod-approvers");
    assert_eq!(n.max_duration_seconds, None);
    assert_eq!(
        n.reason,
        "approval needed: the session policy could allow s3:Delete*, which need an approval"
    );
    // Wildcards count both ways, and actions compare ignoring case.
    for policy in [
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"S3:deleteobjectversion","Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","NotAction":"s3:Get*","Resource":"*"}}"#,
    ] {
        needs(ACTIONS, &at(policy, 3, 10, 0));
    }
    let both = needs(
        ACTIONS,
        &at(
            r#"{"Statement":{"Effect":"Allow","Action":["iam:PassRole","s3:DeleteBucket"],"Resource":"*"}}"#,
            3,
            10,
            0,
        ),
    );
    assert!(
        both.reason.contains("could allow s3:Delete*, iam:*,"),
        "{}",
        both.reason
    );
    // Nothing listed: allowed unchanged, at any time (no window configured).
    assert!(allowed_unchanged(ACTIONS, &at(PUT, 6, 3, 0)));
    assert!(allowed_unchanged(ACTIONS, &at(READ, 3, 10, 0)));
    // An unconditional Deny on every resource takes the action out, as the SDK's allows_action reads it.
    let denied = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:Delete*","Resource":"*"}]}"#;
    assert!(allowed_unchanged(ACTIONS, &at(denied, 3, 10, 0)));
}

#[test]
fn writes_outside_the_window_need_an_approval_reads_never_do() {
    // Saturday 10:15: a write needs an approval, a read does not.
    let n = needs(WINDOW, &at(PUT, 6, 10, 15));
    assert_eq!(
        n.reason,
        "approval needed: it is Sat 10:15 (UTC+00:00), outside Mon, Tue, Wed, Thu, Fri 08:00-18:00 (UTC+00:00), \
         and the session policy could allow more than reads (List*, Get*, Describe*, Head*)"
    );
    assert!(allowed_unchanged(WINDOW, &at(READ, 6, 10, 15)));
    // Wednesday 10:00: writes too.
    assert!(allowed_unchanged(WINDOW, &at(PUT, 3, 10, 0)));
    // Both rules at once: both are named.
    let n = needs(BOTH, &at(DELETE, 6, 10, 15));
    assert!(
        n.reason
            .contains("s3:Delete*, which need an approval; it is Sat 10:15"),
        "{}",
        n.reason
    );
}

#[test]
fn window_edges_start_is_inside_end_is_outside() {
    let inside = |config: &str, day, hh, mm| allowed_unchanged(config, &at(PUT, day, hh, mm));
    // Monday 08:00 opens, Friday 18:00 closes.
    assert!(inside(WINDOW, 1, 8, 0));
    assert!(!inside(WINDOW, 1, 7, 59));
    assert!(inside(WINDOW, 5, 17, 59));
    assert!(!inside(WINDOW, 5, 18, 0));
    assert!(!inside(WINDOW, 7, 12, 0), "Sunday");
    // The offset moves it: 07:00 UTC is 08:00 at UTC+01:00.
    let east = r#"{"group": "g", "window": {"utc_offset_minutes": 60}}"#;
    assert!(inside(east, 1, 7, 0));
    assert!(!inside(east, 1, 6, 59));
    assert!(!inside(east, 1, 17, 0));
    // Monday 02:00 UTC is Sunday 21:00 at UTC-05:00.
    let west = r#"{"group": "g", "window": {"utc_offset_minutes": -300, "days": ["sun"], "start": "20:00", "end": "22:00"}}"#;
    assert!(inside(west, 8, 2, 0));
    assert!(!inside(west, 7, 2, 0));
    let n = needs(west, &at(PUT, 8, 3, 0));
    assert!(
        n.reason.contains("it is Sun 22:00 (UTC-05:00)"),
        "{}",
        n.reason
    );
    // Overnight: Friday 22:00 to Saturday 06:00 belongs to Friday.
    let night = r#"{"group": "g", "window": {"days": ["fri"], "start": "22:00", "end": "06:00"}}"#;
    assert!(inside(night, 5, 22, 0));
    assert!(inside(night, 6, 5, 59));
    assert!(!inside(night, 6, 6, 0));
    assert!(
        !inside(night, 5, 5, 0),
        "Friday morning belongs to Thursday"
    );
    assert!(!inside(night, 6, 22, 0));
    assert!(
        needs(night, &at(PUT, 6, 7, 0))
            .reason
            .contains("outside Fri 22:00-06:00 the next day (UTC+00:00)")
    );
    // A Sunday night window runs into Monday morning.
    let sunday = r#"{"group": "g", "window": {"days": ["sun"], "start": "23:00", "end": "01:00"}}"#;
    assert!(inside(sunday, 7, 23, 30));
    assert!(inside(sunday, 8, 0, 59));
    assert!(!inside(sunday, 8, 1, 0));
    // Whole days.
    let always = r#"{"group": "g", "window": {"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "00:00", "end": "24:00"}}"#;
    for (day, hh, mm) in [(1, 0, 0), (3, 23, 59), (7, 12, 0)] {
        assert!(inside(always, day, hh, mm));
    }
}

#[test]
fn sunday_before_the_first_monday_is_listed_too() {
    // 2024-01-01 00:30 (Monday) follows Sunday 2023-12-31 23:00: inside that Sunday's window.
    let sunday = r#"{"group": "g", "window": {"days": ["sun"], "start": "23:00", "end": "01:00"}}"#;
    assert!(allowed_unchanged(sunday, &at(PUT, 1, 0, 30)));
}

#[test]
fn reads_are_list_get_describe_and_head_actions() {
    for read in [
        "s3:GetObject",
        "s3:Get*",
        "s3:get*",
        "ec2:DescribeInstances",
        "iam:ListUsers",
        "s3:HeadObject",
        "*:Get*",
        "s3:Get?bject",
    ] {
        assert!(is_read_action(read), "{read}");
    }
    for write in [
        "*",
        "s3:*",
        "s3:G*",
        "s3:Ge?Object",
        "s3:PutObject",
        "ec2:RunInstances",
        "s3",
    ] {
        assert!(!is_read_action(write), "{write}");
    }
    let doc = |text: &str| PolicyDocument::parse(text).unwrap();
    assert!(!allows_writes(&doc(READ)));
    assert!(allows_writes(&doc(PUT)));
    assert!(allows_writes(&PolicyDocument::allow_all()));
    assert!(!allows_writes(&PolicyDocument::new()));
    assert!(allows_writes(&doc(
        r#"{"Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}"#
    )));
    // Writes that an unconditional Deny takes out again.
    assert!(!allows_writes(&doc(
        r#"{"Statement":[{"Effect":"Allow","Action":["s3:Get*","s3:PutObject"],"Resource":"*"},{"Effect":"Deny","Action":"s3:Put*","Resource":"*"}]}"#
    )));
    // A Deny with a condition may not apply: still a write.
    assert!(allows_writes(&doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"},{"Effect":"Deny","Action":"s3:Put*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#
    )));
}

#[test]
fn without_an_inline_policy_the_request_is_judged_as_it_stands() {
    // An assumed-role request without a session policy has the role's full permissions.
    let mut role = at(READ, 6, 10, 0);
    role.policy = None;
    let n = needs(ACTIONS, &role);
    assert_eq!(
        n.reason,
        "approval needed: the role's full permissions (no session policy) could allow s3:Delete*, iam:*, which need an approval"
    );
    needs(WINDOW, &role);
    // A federated user without one gets no permissions: nothing to approve.
    let mut federated = role.clone();
    federated.connector.principal_type = PrincipalType::FederatedUser;
    assert!(allowed_unchanged(BOTH, &federated));
    // An iam-user connector takes no session policy: the user's own permissions, which cannot be seen.
    let mut user = role.clone();
    user.connector.principal_type = PrincipalType::IamUser;
    assert!(
        needs(ACTIONS, &user)
            .reason
            .contains("the IAM user's own permissions")
    );
    // Managed policy ARNs cannot be read: judged as allowing anything, even beside a read-only inline policy.
    let mut arns = at(READ, 6, 10, 0);
    arns.policy_arns = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()];
    assert!(needs(BOTH, &arns).reason.contains("managed policies"));
    // The connector's policy, as the request carries it.
    assert!(allowed_unchanged(BOTH, &at(READ, 6, 10, 0)));
}

#[test]
fn an_approved_request_is_allowed_capped_at_max_duration_seconds() {
    let mut r = at(DELETE, 6, 3, 0);
    r.duration_seconds = 7200;
    r.approval = Some(Approval {
        approver: "bob".into(),
        approved_at: Timestamp::from_seconds(r.time.seconds - 60),
        comment: Some("ok".into()),
    });
    testing::reset();
    assert!(allowed_unchanged(BOTH, &r));
    assert_eq!(
        testing::take_logs(),
        vec![(
            idfed_sdk::log::Level::Info,
            "approved by \"bob\"; allowed for 7200 s".to_string()
        )]
    );
    let capped =
        r#"{"group": "prod-approvers", "actions": ["s3:*"], "max_duration_seconds": 1800}"#;
    assert_eq!(
        eval(capped, &r),
        Decision::allow(Grant {
            duration_seconds: 1800,
            ..r.grant()
        })
    );
    r.duration_seconds = 900;
    assert!(allowed_unchanged(capped, &r), "a shorter duration stays");
    // Even without a justification: the approvers saw it.
    r.justification = None;
    assert!(allowed_unchanged(capped, &r));
}

#[test]
fn without_a_justification_the_request_is_denied_and_told_to_give_one() {
    let mut r = at(DELETE, 3, 10, 0);
    r.justification = None;
    let reason = eval(ACTIONS, &r).deny_reason().unwrap().to_owned();
    assert_eq!(
        reason,
        "approval needed: the session policy could allow s3:Delete*, which need an approval. Repeat the request \
         with a justification (--reason \"...\" on the command line, \"justification\" in the API) to ask a member \
         of \"prod-approvers\" for an approval"
    );
    // Not required: straight to needs-approval.
    let optional =
        r#"{"group": "prod-approvers", "actions": ["s3:Delete*"], "require_justification": false}"#;
    assert_eq!(needs(optional, &r).group, "prod-approvers");
    // A request no rule catches needs no justification.
    let mut read = at(READ, 3, 10, 0);
    read.justification = None;
    assert!(allowed_unchanged(ACTIONS, &read));
}

#[test]
fn the_configured_reason_and_duration_cap_reach_the_approvers() {
    let config = r#"{"group": "dba", "actions": ["rds:Delete*"], "reason": "Deleting databases needs a DBA.", "max_duration_seconds": 3600}"#;
    let r = at(
        r#"{"Statement":{"Effect":"Allow","Action":"rds:*","Resource":"*"}}"#,
        3,
        10,
        0,
    );
    assert_eq!(
        eval(config, &r),
        Decision::needs_approval_for("dba", "Deleting databases needs a DBA.", 3600)
    );
    let mut unjustified = r.clone();
    unjustified.justification = None;
    let reason = eval(config, &unjustified).deny_reason().unwrap().to_owned();
    assert!(
        reason.starts_with(
            "Deleting databases needs a DBA. Repeat the request with a justification (--reason"
        ),
        "{reason}"
    );
}

#[test]
fn many_matching_actions_are_listed_up_to_five() {
    let config = r#"{"group": "g", "actions": ["a:*", "b:*", "c:*", "d:*", "e:*", "f:*", "g:*"]}"#;
    let mut r = at(READ, 3, 10, 0);
    r.policy = None;
    assert!(
        needs(config, &r)
            .reason
            .contains("could allow a:*, b:*, c:*, d:*, e:* and 2 more, which")
    );
}

#[test]
fn config_errors_point_at_the_value() {
    assert!(check(BOTH).is_ok());
    assert!(check(WINDOW).is_ok());
    assert!(check(ACTIONS).is_ok());
    assert!(
        check(r#"{"group": "g", "window": {"days": ["Sat", "SUN"], "start": "00:00", "end": "24:00"}, "require_justification": false, "max_duration_seconds": 900, "reason": "r"}"#)
            .is_ok()
    );
    let missing = check(r#"{"actions": ["s3:*"]}"#).unwrap_err();
    assert_eq!(missing.pointer.as_deref(), Some(""));
    assert!(
        missing.message.contains("missing field `group`"),
        "{}",
        missing.message
    );
    assert_eq!(
        pointer(r#"{"group": " ", "actions": ["s3:*"]}"#).as_deref(),
        Some("/group")
    );
    assert_eq!(
        pointer(r#"{"group": 7, "actions": ["s3:*"]}"#).as_deref(),
        Some("/group")
    );
    let nothing = check(r#"{"group": "g"}"#).unwrap_err();
    assert_eq!(nothing.pointer.as_deref(), Some(""));
    assert!(
        nothing.message.contains("window, actions or both"),
        "{}",
        nothing.message
    );
    assert_eq!(
        pointer(r#"{"group": "g", "actions": []}"#).as_deref(),
        Some("/actions")
    );
    for bad in ["s3", "s3:", ":Get*", "s3:Delete Object", "s3:${x}", ""] {
        let config = format!(r#"{{"group": "g", "actions": ["iam:*", {bad:?}]}}"#);
        assert_eq!(pointer(&config).as_deref(), Some("/actions/1"), "{bad:?}");
    }
    assert_eq!(
        pointer(r#"{"group": "g", "actions": ["s3:*", 1]}"#).as_deref(),
        Some("/actions/1")
    );
    let cases = [
        (r#"{"days": []}"#, "/window/days"),
        (r#"{"days": ["mon", "funday"]}"#, "/window/days/1"),
        (r#"{"days": ["mon", "MON"]}"#, "/window/days/1"),
        (r#"{"start": "8:00"}"#, "/window/start"),
        (r#"{"start": "24:00"}"#, "/window/start"),
        (r#"{"end": "18:60"}"#, "/window/end"),
        (r#"{"end": "24:01"}"#, "/window/end"),
        (r#"{"start": "09:00", "end": "09:00"}"#, "/window/end"),
        (
            r#"{"utc_offset_minutes": 900}"#,
            "/window/utc_offset_minutes",
        ),
        (
            r#"{"utc_offset_minutes": -721}"#,
            "/window/utc_offset_minutes",
        ),
        (r#"{"strat": "09:00"}"#, "/window/strat"),
        (r#"{"days": "mon"}"#, "/window/days"),
    ];
    for (window, expected) in cases {
        let config = format!(r#"{{"group": "g", "window": {window}}}"#);
        assert_eq!(pointer(&config).as_deref(), Some(expected), "{window}");
    }
    assert_eq!(
        pointer(r#"{"group": "g", "actions": ["s3:*"], "max_duration_seconds": 600}"#).as_deref(),
        Some("/max_duration_seconds")
    );
    assert_eq!(
        pointer(r#"{"group": "g", "actions": ["s3:*"], "max_duration_seconds": 200000}"#)
            .as_deref(),
        Some("/max_duration_seconds")
    );
    assert_eq!(
        pointer(r#"{"group": "g", "actions": ["s3:*"], "reason": ""}"#).as_deref(),
        Some("/reason")
    );
    let long = format!(
        r#"{{"group": "g", "actions": ["s3:*"], "reason": "{}"}}"#,
        "x".repeat(513)
    );
    assert_eq!(pointer(&long).as_deref(), Some("/reason"));
    assert_eq!(
        pointer(r#"{"group": "g", "actions": ["s3:*"], "require_justification": "yes"}"#)
            .as_deref(),
        Some("/require_justification")
    );
    assert_eq!(
        pointer(r#"{"group": "g", "actoins": ["s3:*"]}"#).as_deref(),
        Some("/actoins")
    );
    // evaluate refuses what validate-config refuses, as a plugin fault.
    assert!(matches!(
        idfed_sdk::evaluate::<RequireApproval>(r#"{"group": "g"}"#, &sample_request()),
        Err(PluginError::InvalidConfig(_))
    ));
}
