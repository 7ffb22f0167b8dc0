use super::*;

fn doc(text: &str) -> PolicyDocument {
    PolicyDocument::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn allow(actions: &str, resources: &str) -> PolicyDocument {
    doc(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":{actions},"Resource":{resources}}}]}}"#
    ))
}

fn within(a: &PolicyDocument, b: &PolicyDocument) -> bool {
    a.is_within(b).is_ok()
}

#[test]
fn parses_single_and_array_forms_and_round_trips() {
    let single = r#"{"Version":"2012-10-17","Id":"x","Statement":{"Sid":"A","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
    let d = doc(single);
    assert!(matches!(d.statement, OneOrMany::One(_)));
    assert_eq!(d.to_json(), single);
    let array = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":["s3:Get*","s3:List*"],"NotResource":"arn:aws:s3:::secret/*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8"]}}}]}"#;
    let d = doc(array);
    assert_eq!(d.to_json(), array);
    assert_eq!(d.allowed_actions(), vec!["s3:Get*", "s3:List*"]);
    assert!(d.allowed_resources().is_empty());
    assert_eq!(doc(&d.to_json()), d);
}

#[test]
fn rejects_malformed_policies() {
    let bad = [
        ("", "empty"),
        ("[]", "not a valid policy document"),
        (r#"{"Version":"2012-10-17"}"#, "missing field `Statement`"),
        (
            r#"{"Statement":[{"Action":"*","Resource":"*"}]}"#,
            "missing field `Effect`",
        ),
        (
            r#"{"Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#,
            "Effect must be",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            "exactly one of Action and NotAction",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}]}"#,
            "exactly one of Action",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*"}]}"#,
            "exactly one of Resource and NotResource",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Action":"s3:*","Resource":"*"}]}"#,
            "duplicate key \"Action\"",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"A":{"k":1,"k":2}}}]}"#,
            "duplicate key \"k\"",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"A":"k"}}]}"#,
            "Condition must be",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":5,"Resource":"*"}]}"#,
            "invalid type",
        ),
        (
            r#"{"Version":"2020-01-01","Statement":[]}"#,
            "Version must be",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":[""],"Resource":"*"}]}"#,
            "empty string",
        ),
    ];
    for (text, expected) in bad {
        let e = PolicyDocument::parse(text).unwrap_err().to_string();
        assert!(e.contains(expected), "{text}: {e}");
    }
    let e = PolicyDocument::parse(r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*"}]}"#)
        .unwrap_err();
    assert!(
        matches!(e, PolicyError::Statement { index: 1, .. }),
        "{e:?}"
    );
}

#[test]
fn sts_limits() {
    let ok = allow(r#""s3:*""#, r#""*""#).to_json();
    assert_eq!(check_sts_limits(&ok), Ok(()));
    assert_eq!(check_sts_limits(""), Err(PolicyError::Empty));
    let long = format!("{}{}", ok, " ".repeat(STS_POLICY_MAX_CHARS - ok.len() + 1));
    assert_eq!(
        check_sts_limits(&long),
        Err(PolicyError::TooLong {
            length: 2049,
            max: 2048
        })
    );
    assert_eq!(check_sts_limits(&long[..2048]), Ok(()));
    // Latin-1 characters count as one character each and are allowed.
    let latin = ok.replace("s3:*", "s3:é*");
    assert!(check_sts_limits(&latin).is_ok());
    let bad = ok.replace("s3:*", "s3:\u{0100}");
    assert!(matches!(
        check_sts_limits(&bad),
        Err(PolicyError::InvalidCharacter {
            character: '\u{100}',
            ..
        })
    ));
    let ctrl = ok.replace("s3:*", "s3:\u{1}");
    assert!(matches!(
        check_sts_limits(&ctrl),
        Err(PolicyError::InvalidCharacter { .. })
    ));
    assert!(matches!(
        check_sts_limits("{not json"),
        Err(PolicyError::Syntax(_))
    ));
    assert!(check_sts_limits("{\n\t\"Statement\": []\r\n}").is_ok());
}

#[test]
fn add_deny_appends_a_statement() {
    let mut d = doc(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
    d.add_deny(["iam:*", "organizations:*"], ["*"]);
    assert_eq!(
        d.to_json(),
        r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":["iam:*","organizations:*"],"Resource":"*"}]}"#
    );
    assert!(!d.allows_action("iam:CreateUser"));
    assert!(!d.allows_action("IAM:*"));
    assert!(d.allows_action("s3:GetObject"));
    assert!(d.allows_action("*"));
    assert_eq!(
        PolicyDocument::allow_all().to_json(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
    );
}

#[test]
fn allows_action_is_wildcard_aware_both_ways() {
    let d = allow(r#"["s3:Get*","iam:PassRole","ec2:Describe?"]"#, r#""*""#);
    assert!(d.allows_action("s3:GetObject"));
    assert!(d.allows_action("s3:*"));
    assert!(d.allows_action("S3:GETOBJECT"));
    assert!(d.allows_action("iam:*"));
    assert!(d.allows_action("*"));
    assert!(d.allows_action("iam:Pass*"));
    assert!(d.allows_action("ec2:DescribeX"));
    assert!(!d.allows_action("ec2:DescribeXY"));
    assert!(!d.allows_action("s3:PutObject"));
    assert!(!d.allows_action("iam:CreateUser"));
    assert!(!d.allows_action("organizations:*"));

    let not = doc(r#"{"Statement":[{"Effect":"Allow","NotAction":["iam:*"],"Resource":"*"}]}"#);
    assert!(!not.allows_action("iam:CreateUser"));
    assert!(!not.allows_action("iam:*"));
    assert!(not.allows_action("s3:GetObject"));
    assert!(not.allows_action("*"));

    let deny_only = doc(r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#);
    assert!(!deny_only.allows_action("*"));

    // A conditional Deny does not count: the Allow may still apply.
    let cond = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"iam:*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}]}"#,
    );
    assert!(cond.allows_action("iam:CreateUser"));
    // A Deny on some resources only does not count either.
    let some = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"iam:*","Resource":"arn:aws:iam::*:user/*"}]}"#,
    );
    assert!(some.allows_action("iam:CreateUser"));
    // An Allow with no resources allows nothing.
    assert!(!allow(r#""*""#, "[]").allows_action("iam:*"));
}

#[test]
fn within_basic_action_and_resource_containment() {
    let all = allow(r#""*""#, r#""*""#);
    let s3 = allow(r#""s3:*""#, r#""*""#);
    let get = allow(r#""s3:Get*""#, r#""arn:aws:s3:::bucket/*""#);
    let get_q = allow(r#""s3:Get?""#, r#""*""#);
    assert!(within(&s3, &all));
    assert!(within(&get, &all));
    assert!(within(&get, &s3));
    assert!(within(&all, &all));
    assert!(!within(&all, &s3));
    assert!(!within(&s3, &get));
    // The unsound cases must be refused.
    assert!(
        !within(&allow(r#""s3:Get*""#, r#""*""#), &get_q),
        "s3:Get? does not cover s3:Get*"
    );
    assert!(within(&allow(r#""s3:GetA""#, r#""*""#), &get_q));
    assert!(!within(
        &allow(r#""s3:Get?""#, r#""*""#),
        &allow(r#""s3:GetA""#, r#""*""#)
    ));
    // Actions compare case-insensitively, resources case-sensitively.
    assert!(within(
        &allow(r#""S3:GETOBJECT""#, r#""*""#),
        &allow(r#""s3:get*""#, r#""*""#)
    ));
    assert!(!within(
        &allow(r#""s3:GetObject""#, r#""arn:aws:s3:::Bucket/x""#),
        &allow(r#""s3:GetObject""#, r#""arn:aws:s3:::bucket/*""#)
    ));
    assert!(within(
        &allow(r#""s3:GetObject""#, r#""arn:aws:s3:::bucket/x""#),
        &allow(r#""s3:GetObject""#, r#""arn:aws:s3:::bucket/*""#)
    ));
    // Each pattern needs a covering pattern; split across statements is fine.
    let two = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#,
    );
    assert!(within(
        &allow(r#"["s3:GetObject","s3:PutObject"]"#, r#""*""#),
        &two
    ));
    assert!(within(
        &doc(
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}"#
        ),
        &two
    ));
    // ...but one statement's patterns must be covered by one baseline statement (conservative).
    assert!(!within(
        &allow(r#"["s3:GetObject","ec2:RunInstances"]"#, r#""*""#),
        &two
    ));
    let e = allow(r#""iam:*""#, r#""*""#).is_within(&two).unwrap_err();
    assert!(e.contains("statement 0") && e.contains("\"iam:*\""), "{e}");
}

#[test]
fn within_denies_and_empty_baselines() {
    let all = allow(r#""*""#, r#""*""#);
    let mut guarded = all.clone();
    guarded.add_deny(["iam:*"], ["*"]);
    assert!(within(&guarded, &all), "adding a Deny narrows");
    let e = all.is_within(&guarded).unwrap_err();
    assert!(
        e.contains("baseline Deny statement 1"),
        "dropping a Deny widens: {e}"
    );
    let mut wider_deny = all.clone();
    wider_deny.add_deny(["iam:*", "s3:*"], ["*"]);
    assert!(within(&wider_deny, &guarded));
    let mut narrower_deny = all.clone();
    narrower_deny.add_deny(["iam:CreateUser"], ["*"]);
    assert!(!within(&narrower_deny, &guarded));
    let mut deny_fewer_resources = all.clone();
    deny_fewer_resources.add_deny(["iam:*"], ["arn:aws:iam::*:user/*"]);
    assert!(!within(&deny_fewer_resources, &guarded));

    let nothing = doc(r#"{"Statement":[]}"#);
    assert!(within(&nothing, &all));
    assert!(within(&nothing, &nothing));
    let e = all.is_within(&nothing).unwrap_err();
    assert!(e.contains("allows nothing"), "{e}");
    let deny_only = doc(r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#);
    assert!(within(&deny_only, &nothing));
    assert!(
        within(&allow("[]", r#""*""#), &nothing),
        "an empty action list allows nothing"
    );
}

#[test]
fn within_conditions() {
    let base = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.0/24"]}}}]}"#,
    );
    let same_reordered = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","10.0.0.0/8"]}}}]}"#,
    );
    let more = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.0/24"]},"Bool":{"aws:SecureTransport":"true"}}}]}"#,
    );
    let none = allow(r#""s3:Get*""#, r#""*""#);
    let other_value = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}}]}"#,
    );
    assert!(within(&same_reordered, &base));
    assert!(within(&more, &base));
    assert!(!within(&none, &base));
    assert!(!within(&other_value, &base));
    assert!(within(&more, &none), "conditions only narrow");
    let e = none.is_within(&base).unwrap_err();
    assert!(
        e.contains("lacks the condition IpAddress \"aws:SourceIp\""),
        "{e}"
    );
    let single = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
    );
    let listed = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":["true"]}}}]}"#,
    );
    assert!(within(&listed, &single));
    let ambiguous = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true","AWS:SECURETRANSPORT":"false"}}}]}"#,
    );
    assert!(!within(&ambiguous, &single));
}

#[test]
fn within_not_action_not_resource_and_principal() {
    let all = allow(r#""*""#, r#""*""#);
    let not_iam = doc(r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#);
    let not_iam_org = doc(
        r#"{"Statement":[{"Effect":"Allow","NotAction":["iam:*","organizations:*"],"Resource":"*"}]}"#,
    );
    assert!(
        within(&not_iam, &all),
        "a universal baseline covers NotAction"
    );
    assert!(within(&not_iam, &not_iam));
    assert!(within(&not_iam_org, &not_iam), "excluding more narrows");
    assert!(!within(&not_iam, &not_iam_org));
    assert!(!within(&not_iam, &allow(r#""s3:*""#, r#""*""#)));
    assert!(
        within(&allow(r#""s3:*""#, r#""*""#), &not_iam),
        "s3:* never matches iam:*"
    );
    assert!(!within(&allow(r#""*""#, r#""*""#), &not_iam));
    assert!(!within(&allow(r#""i*""#, r#""*""#), &not_iam));

    let not_secret = doc(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::secret/*"}]}"#,
    );
    assert!(within(
        &allow(r#""s3:GetObject""#, r#""arn:aws:s3:::public/*""#),
        &not_secret
    ));
    assert!(!within(
        &allow(r#""s3:GetObject""#, r#""arn:aws:s3:::*""#),
        &not_secret
    ));
    assert!(!within(
        &allow(r#""s3:GetObject""#, r#""arn:aws:s3:::Secret/*""#),
        &allow(r#""s3:*""#, r#""arn:aws:s3:::secret/*""#)
    ));
    assert!(within(&not_secret, &allow(r#""s3:*""#, r#""*""#)));

    let with_principal = doc(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:*","Resource":"*"}]}"#,
    );
    assert!(within(&with_principal, &with_principal));
    assert!(!within(&with_principal, &all));
    assert!(!within(&all, &with_principal));

    // Unknown keys cannot be parsed; built in code, they are refused too.
    let mut unknown = allow(r#""s3:*""#, r#""*""#);
    let OneOrMany::Many(statements) = &mut unknown.statement else {
        unreachable!()
    };
    statements[0].other.insert("Future".into(), 1.into());
    assert!(!within(&unknown, &all));
    assert!(!within(&unknown, &unknown));
}

#[test]
fn within_policy_variables() {
    let base = doc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}]}"#,
    );
    let same = doc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::home/${aws:username}/docs/*"}]}"#,
    );
    assert!(within(&same, &base));
    let literal = doc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::home/alice/*"}]}"#,
    );
    assert!(!within(&literal, &base), "a variable is not a literal");
    let old = doc(
        r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::home/${aws:username}/x"}]}"#,
    );
    assert!(
        !within(&old, &base),
        "the same text means something else without variables"
    );
    let wide = doc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::home/${aws:username}"}]}"#,
    );
    assert!(!within(
        &wide,
        &doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/?????"}]}"#
        )
    ));
    assert!(within(
        &wide,
        &doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/*"}]}"#
        )
    ));
}

#[test]
fn rejects_unknown_and_missing_top_level_keys() {
    // The narrow `Statement` plus a lowercase `statement` allowing everything.
    let smuggled = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}],"statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let expected = PolicyError::Syntax(
        "unknown top-level key \"statement\": a policy document has only Version, Id and Statement"
            .into(),
    );
    assert_eq!(PolicyDocument::parse(smuggled), Err(expected.clone()));
    assert_eq!(check_sts_limits(smuggled), Err(expected));
    assert_eq!(
        PolicyDocument::parse(smuggled).unwrap_err().to_string(),
        "the policy is not a valid policy document: unknown top-level key \"statement\": a policy document has \
         only Version, Id and Statement"
    );

    let extra = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}],"Extra":1}"#;
    let e = PolicyDocument::parse(extra).unwrap_err().to_string();
    assert!(e.contains("unknown top-level key \"Extra\""), "{e}");
    assert!(check_sts_limits(extra).is_err());

    for missing in [
        r#"{"Version":"2012-10-17"}"#,
        r#"{"Version":"2012-10-17","statement":[]}"#,
        r#"{}"#,
    ] {
        let e = PolicyDocument::parse(missing).unwrap_err().to_string();
        assert!(e.contains("missing field `Statement`"), "{missing}: {e}");
        assert!(check_sts_limits(missing).is_err());
    }
    assert!(PolicyDocument::parse(r#"{"Version":"2012-10-17","Id":"a","Statement":[]}"#).is_ok());

    // Built in code: `validate` and `is_within` refuse it too, and to_json would have sent the key.
    let mut built = PolicyDocument::allow_all();
    built.other.insert(
        "statement".into(),
        serde_json::json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]),
    );
    assert!(built.to_json().contains("\"statement\""));
    let e = built.validate().unwrap_err().to_string();
    assert!(e.contains("unknown top-level key \"statement\""), "{e}");
    let e = built.is_within(&PolicyDocument::allow_all()).unwrap_err();
    assert!(e.contains("unknown top-level key \"statement\""), "{e}");
}

#[test]
fn rejects_unknown_statement_keys() {
    let text = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Allow","Action":"s3:*","Resource":"*","resource":"*"}]}"#;
    assert_eq!(
        PolicyDocument::parse(text),
        Err(PolicyError::Statement {
            index: 1,
            message: "unknown key \"resource\": a statement has only Sid, Effect, Principal, NotPrincipal, Action, \
                      NotAction, Resource, NotResource and Condition"
                .into()
        })
    );
    assert!(check_sts_limits(text).is_err());
    let e = PolicyDocument::parse(
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Future":{"a":1}}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("statement 0 of the policy: unknown key \"Future\""),
        "{e}"
    );

    let mut built = PolicyDocument::allow_all();
    built.add_deny(["iam:*"], ["*"]);
    let OneOrMany::Many(statements) = &mut built.statement else {
        unreachable!()
    };
    statements[1].other.insert("Future".into(), true.into());
    assert!(matches!(
        built.validate(),
        Err(PolicyError::Statement { index: 1, ref message }) if message.contains("unknown key \"Future\"")
    ));
}

fn with_resource(version: &str, resource: &str) -> String {
    let version = if version.is_empty() {
        String::new()
    } else {
        format!(r#""Version":"{version}","#)
    };
    format!(
        r#"{{{version}"Statement":[{{"Sid":"Home","Effect":"Allow","Action":"s3:*","Resource":{}}}]}}"#,
        serde_json::to_string(resource).unwrap()
    )
}

#[test]
fn rejects_malformed_policy_variables_under_2012() {
    let bad = [
        (
            "arn:aws:s3:::data/${aws:username",
            "an unterminated policy variable",
            "\"${aws:username\"",
        ),
        (
            "arn:aws:s3:::data/${aws:username/*",
            "an unterminated policy variable",
            "\"${aws:username/*\"",
        ),
        (
            "arn:aws:s3:::data/${}/*",
            "an empty policy variable",
            "\"${}\"",
        ),
        (
            "arn:aws:s3:::data/${a${aws:username}}/*",
            "a nested policy variable",
            "\"${a${aws:username}\"",
        ),
        (
            "arn:aws:s3:::data/${aws:{x}/*",
            "a nested policy variable",
            "\"${aws:{x}\"",
        ),
        (
            "arn:aws:s3:::data/${**}",
            "a malformed policy variable",
            "\"${**}\"",
        ),
        (
            "arn:aws:s3:::data/${aws:username}/${x",
            "an unterminated policy variable",
            "\"${x\"",
        ),
    ];
    for (resource, why, at) in bad {
        let text = with_resource("2012-10-17", resource);
        let e = PolicyDocument::parse(&text).unwrap_err();
        assert!(
            matches!(e, PolicyError::Statement { index: 0, .. }),
            "{resource}: {e:?}"
        );
        let e = e.to_string();
        assert!(
            e.starts_with(&format!(
                "statement 0 of the policy: Resource {resource:?} has {why}"
            )) && e.contains(&format!(" at {at}: under Version 2012-10-17")),
            "{resource}: {e}"
        );
        assert!(check_sts_limits(&text).is_err());
        // Without variable expansion `${` is plain text.
        for version in ["2008-10-17", ""] {
            let text = with_resource(version, resource);
            assert!(PolicyDocument::parse(&text).is_ok(), "{text}");
            assert!(check_sts_limits(&text).is_ok(), "{text}");
        }
    }
    assert_eq!(
        PolicyDocument::parse(&with_resource(
            "2012-10-17",
            "arn:aws:s3:::data/${aws:username"
        ))
        .unwrap_err()
        .to_string(),
        "statement 0 of the policy: Resource \"arn:aws:s3:::data/${aws:username\" has an unterminated policy \
         variable (no closing \"}\") at \"${aws:username\": under Version 2012-10-17 a policy variable is \
         ${NAME} or ${NAME, 'default'} with NAME of letters, digits and :/_.@+=-, or ${*}, ${?} or ${$} for the \
         literal character"
    );

    // Action, NotAction, NotResource and condition values at any depth are checked too.
    let statements = [
        (r#""Action":"s3:${}","Resource":"*""#, "Action \"s3:${}\""),
        (
            r#""NotAction":["s3:*","s3:${x"],"Resource":"*""#,
            "NotAction \"s3:${x\"",
        ),
        (
            r#""Action":"s3:*","NotResource":"arn:aws:s3:::${a${b}}""#,
            "NotResource",
        ),
        (
            r#""Action":"s3:*","Resource":"*","Condition":{"StringLike":{"s3:prefix":["home/${aws:username}/*","home/${aws:userid"]}}"#,
            "the value of condition StringLike \"s3:prefix\" \"home/${aws:userid\"",
        ),
        (
            r#""Action":"s3:*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"k":[["${}"]]}}"#,
            "the value of condition ForAnyValue:StringEquals \"k\"",
        ),
    ];
    for (body, expected) in statements {
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":"*"}},{{"Effect":"Allow",{body}}}]}}"#
        );
        let e = PolicyDocument::parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("statement 1 of the policy: {expected}")),
            "{body}: {e}"
        );
        assert!(
            PolicyDocument::parse(&text.replace("2012-10-17", "2008-10-17")).is_ok(),
            "{body}"
        );
    }

    // Built in code: `validate` and `is_within` refuse it.
    let mut built = PolicyDocument::new();
    built.add_allow(["s3:GetObject"], ["arn:aws:s3:::data/${aws:username"]);
    assert!(matches!(
        built.validate(),
        Err(PolicyError::Statement { index: 0, .. })
    ));
    let base = doc(&with_resource(
        "2012-10-17",
        "arn:aws:s3:::data/${aws:username}",
    ));
    let e = built.is_within(&base).unwrap_err();
    assert!(e.contains("unterminated policy variable"), "{e}");
}

#[test]
fn accepts_special_and_default_value_variables() {
    for resource in [
        "arn:aws:s3:::data/${aws:username}/*",
        "arn:aws:s3:::data/${*}${?}${$}/*",
        "arn:aws:s3:::data/${aws:username, 'nobody'}/*",
        "arn:aws:s3:::data/${aws:PrincipalTag/team,'shared'}/*",
        "arn:aws:s3:::data/$x/{y}/$/{/}",
        "arn:aws:s3:::data/$${aws:username}}",
    ] {
        let text = with_resource("2012-10-17", resource);
        assert!(PolicyDocument::parse(&text).is_ok(), "{text}");
        assert!(check_sts_limits(&text).is_ok(), "{text}");
    }
    let text = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":["home/${aws:username, 'x'}/*","${*}"]}}}}"#;
    assert!(PolicyDocument::parse(text).is_ok());

    // `${*}` is a literal `*`: covered by a `*`, but it covers no wildcard.
    let literal_star = doc(&with_resource("2012-10-17", "arn:aws:s3:::data/${*}"));
    let star = doc(&with_resource("2012-10-17", "arn:aws:s3:::data/*"));
    assert!(within(&literal_star, &star));
    assert!(within(&literal_star, &literal_star));
    assert!(!within(&star, &literal_star));
    // A default value is part of the variable.
    let plain = doc(&with_resource(
        "2012-10-17",
        "arn:aws:s3:::data/${aws:username}",
    ));
    let default = doc(&with_resource(
        "2012-10-17",
        "arn:aws:s3:::data/${aws:username, 'x'}",
    ));
    assert!(within(&default, &default));
    assert!(!within(&default, &plain));
    assert!(!within(&plain, &default));
}
