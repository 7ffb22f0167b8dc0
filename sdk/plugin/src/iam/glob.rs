//! IAM wildcard patterns (`*` and `?`) and policy variables (`${...}`), and the two questions asked of them:
//! does one pattern cover another, and can two patterns match a common string.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    Star,
    Quest,
    /// A policy variable such as `${aws:username}` (text between the braces): unknown text at evaluation time.
    Var(String),
}

/// What a `${` starts, under Version 2012-10-17.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variable<'a> {
    /// `${*}`, `${?}` or `${$}`: the literal character.
    Special(char),
    /// `${NAME}` or `${NAME, 'default'}`: the text between the braces.
    Named(&'a str),
}

/// Why a `${` does not start a well-formed policy variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadVariable {
    /// No `}` follows.
    Unterminated,
    /// `${}`.
    Empty,
    /// A `{` or `$` before the closing `}`.
    Nested,
    /// The text between the braces is not `NAME` or `NAME, 'default'`.
    BadName,
}

impl std::fmt::Display for BadVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadVariable::Unterminated => "an unterminated policy variable (no closing \"}\")",
            BadVariable::Empty => "an empty policy variable",
            BadVariable::Nested => {
                "a nested policy variable (\"{\" or \"$\" before the closing \"}\")"
            }
            BadVariable::BadName => "a malformed policy variable",
        })
    }
}

/// The policy variable at the start of `rest` (which starts with `${`) and its length in bytes, braces included.
///
/// Well-formed: `${*}`, `${?}`, `${$}`, `${NAME}` or `${NAME, 'default'}` with NAME of `[A-Za-z0-9:/_.@+=-]+` (tag keys may hold `@`, `+`, `=`) and a
/// default without `'`, `{`, `}` or `$` (spaces around the comma are allowed).
pub(crate) fn variable(rest: &str) -> Result<(Variable<'_>, usize), BadVariable> {
    debug_assert!(rest.starts_with("${"));
    for special in ['*', '?', '$'] {
        if rest[2..].starts_with(special) && rest[3..].starts_with('}') {
            return Ok((Variable::Special(special), 4));
        }
    }
    let Some(end) = rest.find('}') else {
        return Err(BadVariable::Unterminated);
    };
    let inner = &rest[2..end];
    if inner.is_empty() {
        return Err(BadVariable::Empty);
    }
    if inner.contains(['{', '$']) {
        return Err(BadVariable::Nested);
    }
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, ':' | '/' | '_' | '.' | '-' | '@' | '+' | '=')
            })
    };
    let well_formed = match inner.split_once(',') {
        None => is_name(inner),
        Some((name, default)) => {
            let default = default.trim_start_matches(' ');
            is_name(name.trim_end_matches(' '))
                && default.len() >= 2
                && default.starts_with('\'')
                && default.ends_with('\'')
                && !default[1..default.len() - 1].contains('\'')
        }
    };
    if well_formed {
        Ok((Variable::Named(inner), end + 1))
    } else {
        Err(BadVariable::BadName)
    }
}

/// The first malformed policy variable in `text` (under Version 2012-10-17): its byte offset and what is wrong.
pub(crate) fn first_bad_variable(text: &str) -> Option<(usize, BadVariable)> {
    let mut at = 0;
    while let Some(found) = text[at..].find("${") {
        let start = at + found;
        match variable(&text[start..]) {
            Ok((_, len)) => at = start + len,
            Err(bad) => return Some((start, bad)),
        }
    }
    None
}

/// Splits a pattern into tokens. With `variables`, `${...}` is a policy variable (Version 2012-10-17): `${*}`,
/// `${?}` and `${$}` are the literal characters, a well-formed `${NAME}` or `${NAME, 'default'}` is a variable,
/// and a `${` that starts no well-formed variable (unterminated, empty, nested) is literal text, so that it never
/// stands for unknown text (validation refuses it anyway).
pub(crate) fn tokens(pattern: &str, variables: bool) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if variables
            && rest.starts_with("${")
            && let Ok((var, len)) = variable(rest)
        {
            out.push(match var {
                Variable::Special(c) => Tok::Lit(c),
                Variable::Named(name) => Tok::Var(name.to_string()),
            });
            rest = &rest[len..];
            continue;
        }
        out.push(match c {
            '*' => Tok::Star,
            '?' => Tok::Quest,
            c => Tok::Lit(c),
        });
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn lit_eq(a: char, b: char, case_insensitive: bool) -> bool {
    if case_insensitive {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Whether every string matching `p` also matches `q` (a sound, not complete, check).
///
/// `q`'s `*` may absorb any run of `p`'s tokens (wildcards and variables included); `q`'s `?` absorbs exactly one
/// literal or `?` of `p`; a literal of `q` matches only the same literal of `p`; a variable of `q` only the same
/// variable of `p`.
pub(crate) fn covers(p: &[Tok], q: &[Tok], case_insensitive: bool) -> bool {
    let (n, m) = (p.len(), q.len());
    // ok[i][j]: p[i..] is covered by q[j..]
    let mut ok = vec![vec![false; m + 1]; n + 1];
    ok[n][m] = true;
    for j in (0..m).rev() {
        for i in (0..=n).rev() {
            ok[i][j] = match &q[j] {
                Tok::Star => ok[i][j + 1] || (i < n && ok[i + 1][j]),
                _ if i == n => false,
                Tok::Quest => matches!(p[i], Tok::Lit(_) | Tok::Quest) && ok[i + 1][j + 1],
                Tok::Lit(c) => {
                    matches!(p[i], Tok::Lit(d) if lit_eq(*c, d, case_insensitive))
                        && ok[i + 1][j + 1]
                }
                Tok::Var(v) => matches!(&p[i], Tok::Var(w) if v == w) && ok[i + 1][j + 1],
            };
        }
    }
    ok[0][0]
}

/// Whether some string could match both `a` and `b` (never false when one does; variables count as `*`).
pub(crate) fn intersects(a: &[Tok], b: &[Tok], case_insensitive: bool) -> bool {
    let wild = |t: &Tok| matches!(t, Tok::Star | Tok::Var(_));
    let (n, m) = (a.len(), b.len());
    // ok[i][j]: a[i..] and b[j..] have a common match
    let mut ok = vec![vec![false; m + 1]; n + 1];
    for i in (0..=n).rev() {
        for j in (0..=m).rev() {
            ok[i][j] = if i == n && j == m {
                true
            } else if i < n && wild(&a[i]) {
                ok[i + 1][j] || (j < m && ok[i][j + 1])
            } else if j < m && wild(&b[j]) {
                ok[i][j + 1] || (i < n && ok[i + 1][j])
            } else if i == n || j == m {
                false
            } else {
                let one = match (&a[i], &b[j]) {
                    (Tok::Lit(c), Tok::Lit(d)) => lit_eq(*c, *d, case_insensitive),
                    _ => true,
                };
                one && ok[i + 1][j + 1]
            };
        }
    }
    ok[0][0]
}

/// Whether the pattern matches every string (it is made of `*` only, and not empty).
pub(crate) fn is_universal(p: &[Tok]) -> bool {
    !p.is_empty() && p.iter().all(|t| *t == Tok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cov(p: &str, q: &str) -> bool {
        covers(&tokens(p, false), &tokens(q, false), true)
    }
    fn cov_res(p: &str, q: &str) -> bool {
        covers(&tokens(p, true), &tokens(q, true), false)
    }
    fn int(a: &str, b: &str) -> bool {
        intersects(&tokens(a, false), &tokens(b, false), true)
    }

    #[test]
    fn coverage() {
        assert!(cov("s3:GetObject", "s3:GetObject"));
        assert!(cov("s3:getobject", "S3:GetObject"));
        assert!(cov("s3:GetObject", "s3:Get*"));
        assert!(cov("s3:Get*", "s3:Get*"));
        assert!(cov("s3:GetObject*", "s3:Get*"));
        assert!(cov("s3:Get?bject", "s3:Get*"));
        assert!(cov("s3:Get?", "s3:Get?"));
        assert!(cov("s3:GetA", "s3:Get?"));
        assert!(cov("anything:*", "*"));
        assert!(cov("*", "*"));
        assert!(cov("", "*"));
        assert!(cov("?*", "*"));
        assert!(cov("s3:*Object", "s3:*"));
        assert!(cov("s3:Get*Acl", "s3:*Acl"));
        assert!(cov("s3:Get*Acl", "s3:G*l"));
        assert!(cov("a*b*c", "a*c"));

        assert!(!cov("s3:Get*", "s3:Get?"), "? does not cover *");
        assert!(!cov("s3:Get*", "s3:GetObject"));
        assert!(!cov("s3:*", "s3:Get*"));
        assert!(!cov("*", "s3:*"));
        assert!(!cov("s3:GetObject", "s3:PutObject"));
        assert!(!cov("s3:Get", "s3:Get?"));
        assert!(!cov("s3:GetAB", "s3:Get?"));
        assert!(!cov("s3:Get??", "s3:Get?"));
        assert!(!cov("s3:Get?", "s3:GetA"), "? is not a literal");
        assert!(!cov("s3:Get*", "s3:Get"));
        assert!(!cov("a*c", "a*b*c"));
        assert!(!cov("", "s3:*"));
        assert!(!cov("s3:GetObject", ""));
    }

    #[test]
    fn resources_are_case_sensitive_and_variables_opaque() {
        assert!(cov_res("arn:aws:s3:::bucket/key", "arn:aws:s3:::bucket/*"));
        assert!(!cov_res("arn:aws:s3:::Bucket/key", "arn:aws:s3:::bucket/*"));
        assert!(cov_res(
            "arn:aws:s3:::b/${aws:username}/x",
            "arn:aws:s3:::b/${aws:username}/*"
        ));
        assert!(cov_res(
            "arn:aws:s3:::b/${aws:username}",
            "arn:aws:s3:::b/*"
        ));
        assert!(!cov_res(
            "arn:aws:s3:::b/${aws:username}",
            "arn:aws:s3:::b/alice"
        ));
        assert!(!cov_res("arn:aws:s3:::b/${x}", "arn:aws:s3:::b/$?x}"));
        assert!(!cov_res("arn:aws:s3:::b/${x}", "arn:aws:s3:::b/???"));
        assert!(!cov_res(
            "arn:aws:s3:::b/alice",
            "arn:aws:s3:::b/${aws:username}"
        ));
        assert!(!cov_res("arn:aws:s3:::b/${a}", "arn:aws:s3:::b/${b}"));
        // Without variable expansion, `${x}` is plain text.
        assert!(covers(
            &tokens("b/${x}", false),
            &tokens("b/$?x}", false),
            false
        ));
    }

    #[test]
    fn malformed_variables_are_literal_text() {
        use Tok::{Lit, Star, Var};
        let lits = |s: &str| s.chars().map(Lit).collect::<Vec<_>>();
        // Unterminated: literal text, so the `*` after it stays a wildcard and nothing is opaque.
        let mut expected = lits("d/${u");
        expected.push(Star);
        assert_eq!(tokens("d/${u*", true), expected);
        assert_eq!(tokens("d/${aws:username", true), lits("d/${aws:username"));
        assert_eq!(tokens("${}", true), lits("${}"));
        let mut nested = lits("${a");
        nested.push(Var("b".into()));
        nested.push(Lit('}'));
        assert_eq!(tokens("${a${b}}", true), nested);
        // The special forms are the literal characters; a default value is part of the variable.
        assert_eq!(tokens("${*}${?}${$}", true), lits("*?$"));
        assert_eq!(
            tokens("${aws:username, 'x'}", true),
            vec![Var("aws:username, 'x'".into())]
        );
        // An unterminated `${u` is not the variable `${u}`, and a `*` after it is not part of a variable.
        assert!(!cov_res("arn:aws:s3:::b/${u", "arn:aws:s3:::b/${u}"));
        assert!(!cov_res("arn:aws:s3:::b/${u*", "arn:aws:s3:::b/${u*}"));
        assert!(!cov_res("arn:aws:s3:::b/*", "arn:aws:s3:::b/${*}"));
        assert!(cov_res("arn:aws:s3:::b/${*}", "arn:aws:s3:::b/${*}"));
        assert!(cov_res("arn:aws:s3:::b/${*}", "arn:aws:s3:::b/?"));
    }

    #[test]
    fn variable_well_formedness() {
        for ok in [
            "${aws:username}",
            "${*}",
            "${?}",
            "${$}",
            "${aws:PrincipalTag/team-a_b.c}",
            "${aws:username, 'default'}",
            "${aws:username,'x y'}",
            "${aws:username, ''}",
        ] {
            assert!(variable(ok).is_ok(), "{ok}");
            assert_eq!(first_bad_variable(&format!("a/{ok}/b")), None, "{ok}");
        }
        for (bad, why) in [
            ("${aws:username", BadVariable::Unterminated),
            ("${", BadVariable::Unterminated),
            ("${}", BadVariable::Empty),
            ("${a${b}}", BadVariable::Nested),
            ("${a{b}", BadVariable::Nested),
            ("${**}", BadVariable::BadName),
            ("${aws:user name}", BadVariable::BadName),
            ("${aws:username, default}", BadVariable::BadName),
            ("${aws:username, 'a'b'}", BadVariable::BadName),
            ("${, 'a'}", BadVariable::BadName),
        ] {
            assert_eq!(variable(bad), Err(why), "{bad}");
            assert_eq!(
                first_bad_variable(&format!("x/${{$}}{bad}")),
                Some((6, why)),
                "{bad}"
            );
        }
    }

    #[test]
    fn intersection() {
        assert!(int("iam:*", "*"));
        assert!(int("*", "iam:CreateUser"));
        assert!(int("iam:*", "IAM:CreateUser"));
        assert!(int("iam:Create*", "*:*User"));
        assert!(int("i?m:*", "iam:Get"));
        assert!(int("s3:*", "s3:*"));
        assert!(!int("iam:*", "s3:*"));
        assert!(!int("s3:GetObject", "s3:PutObject"));
        assert!(!int("iam:?", "iam:ab"));
        assert!(int("iam:??", "iam:a*"));
        assert!(!int("a", ""));
        assert!(int("", "*"));
        assert!(intersects(
            &tokens("b/${x}", true),
            &tokens("b/c", true),
            false
        ));
    }

    #[test]
    fn universal() {
        assert!(is_universal(&tokens("*", false)));
        assert!(is_universal(&tokens("**", false)));
        assert!(!is_universal(&tokens("", false)));
        assert!(!is_universal(&tokens("*?", false)));
    }
}
