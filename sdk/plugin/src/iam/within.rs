//! The conservative "allows nothing more than" check.

use serde_json::Value;

use super::glob::{Tok, covers, intersects, is_universal, tokens};
use super::model::{Effect, OneOrMany, PolicyDocument, Statement};

/// One side of a comparison: a statement and whether its document expands policy variables.
#[derive(Clone, Copy)]
struct Side<'a> {
    s: &'a Statement,
    vars: bool,
}

pub(super) fn is_within(this: &PolicyDocument, baseline: &PolicyDocument) -> Result<(), String> {
    // A document that breaks the grammar (unknown keys, malformed policy variables, ...) is not compared: AWS
    // would refuse it, and parts the check does not model could widen it.
    this.validate()
        .map_err(|e| format!("it is not a valid policy document: {e}"))?;
    let (tv, bv) = (this.expands_variables(), baseline.expands_variables());
    let base_allows: Vec<(usize, &Statement)> = baseline
        .statement
        .iter()
        .enumerate()
        .filter(|(_, s)| s.effect == Effect::Allow)
        .collect();

    for (i, s) in this.statement.iter().enumerate() {
        if s.effect != Effect::Allow || allows_nothing(s) {
            continue;
        }
        if base_allows.is_empty() {
            return Err(format!(
                "{} allows actions but the baseline policy allows nothing",
                s.label(i)
            ));
        }
        let mut reasons = Vec::new();
        let mut covered = false;
        for (j, b) in &base_allows {
            match statement_covered(Side { s, vars: tv }, Side { s: b, vars: bv }) {
                Ok(()) => {
                    covered = true;
                    break;
                }
                Err(why) => reasons.push(format!("against baseline {}: {why}", b.label(*j))),
            }
        }
        if !covered {
            return Err(format!(
                "{} allows more than the baseline policy ({})",
                s.label(i),
                reasons.join("; ")
            ));
        }
    }

    for (j, d) in baseline.statement.iter().enumerate() {
        if d.effect != Effect::Deny || allows_nothing(d) {
            continue;
        }
        let kept = this
            .statement
            .iter()
            .filter(|s| s.effect == Effect::Deny)
            .any(|s| statement_covered(Side { s: d, vars: bv }, Side { s, vars: tv }).is_ok());
        if !kept {
            return Err(format!(
                "baseline Deny {} is missing or narrowed: no Deny statement denies at least as much",
                d.label(j)
            ));
        }
    }
    Ok(())
}

/// Whether a statement matches no request at all (an empty action or resource list).
fn allows_nothing(s: &Statement) -> bool {
    s.action.as_ref().is_some_and(OneOrMany::is_empty)
        || s.resource.as_ref().is_some_and(OneOrMany::is_empty)
}

/// Whether statement `s` matches only requests that statement `b` matches too.
fn statement_covered(s: Side, b: Side) -> Result<(), String> {
    lists_covered(
        "action",
        &s.s.action,
        &s.s.not_action,
        &b.s.action,
        &b.s.not_action,
        true,
        false,
        false,
    )?;
    lists_covered(
        "resource",
        &s.s.resource,
        &s.s.not_resource,
        &b.s.resource,
        &b.s.not_resource,
        false,
        s.vars,
        b.vars,
    )?;
    if s.s.principal != b.s.principal {
        return Err("its Principal differs".into());
    }
    if s.s.not_principal != b.s.not_principal {
        return Err("its NotPrincipal differs".into());
    }
    if s.s.other != b.s.other {
        return Err(format!(
            "it has keys the check does not understand ({})",
            s.s.other
                .keys()
                .chain(b.s.other.keys())
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    conditions_covered(s, b)
}

/// Whether the items matched by `(s_list, s_not)` are all matched by `(b_list, b_not)`.
#[allow(clippy::too_many_arguments)]
fn lists_covered(
    what: &str,
    s_list: &Option<OneOrMany<String>>,
    s_not: &Option<OneOrMany<String>>,
    b_list: &Option<OneOrMany<String>>,
    b_not: &Option<OneOrMany<String>>,
    case_insensitive: bool,
    s_vars: bool,
    b_vars: bool,
) -> Result<(), String> {
    let toks = |list: &OneOrMany<String>, vars: bool| -> Vec<(String, Vec<Tok>)> {
        list.iter().map(|x| (x.clone(), tokens(x, vars))).collect()
    };
    let not_what = if what == "action" {
        "NotAction"
    } else {
        "NotResource"
    };
    match (s_list, s_not, b_list, b_not) {
        // s lists what it matches, b lists what it matches: each of s's patterns inside one of b's.
        (Some(sl), _, Some(bl), _) => {
            let bt = toks(bl, b_vars);
            for (p, pt) in toks(sl, s_vars) {
                if !bt.iter().any(|(_, qt)| covers(&pt, qt, case_insensitive)) {
                    return Err(format!("{what} {p:?} is not covered by its {what}s"));
                }
            }
            Ok(())
        }
        // s lists what it matches, b matches all but its exclusions: s's patterns must avoid them.
        (Some(sl), _, None, Some(bn)) => {
            let bt = toks(bn, b_vars);
            for (p, pt) in toks(sl, s_vars) {
                if let Some((n, _)) = bt
                    .iter()
                    .find(|(_, nt)| intersects(&pt, nt, case_insensitive))
                {
                    return Err(format!("{what} {p:?} may match its {not_what} {n:?}"));
                }
            }
            Ok(())
        }
        // s matches all but its exclusions: only a universal b, or a b excluding no more than s does.
        (None, Some(sn), Some(bl), _) => {
            if bl.iter().any(|q| is_universal(&tokens(q, b_vars))) {
                Ok(())
            } else {
                Err(format!(
                    "its {not_what} {:?} matches more than the baseline's {what}s",
                    sn.as_slice()
                ))
            }
        }
        (None, Some(sn), None, Some(bn)) => {
            let st = toks(sn, s_vars);
            for (n, nt) in toks(bn, b_vars) {
                if !st.iter().any(|(_, mt)| covers(&nt, mt, case_insensitive)) {
                    return Err(format!(
                        "the baseline's {not_what} {n:?} is not excluded by its {not_what}"
                    ));
                }
            }
            Ok(())
        }
        _ => Err(format!("it has neither {what} nor {not_what}")),
    }
}

/// Whether `s` has every condition of `b` with an equal value (extra conditions in `s` only narrow it).
fn conditions_covered(s: Side, b: Side) -> Result<(), String> {
    let Some(b_cond) = b.s.condition.as_ref().and_then(Value::as_object) else {
        return Ok(());
    };
    let s_cond = s.s.condition.as_ref().and_then(Value::as_object);
    if let Some(c) = s_cond {
        let ambiguous = has_case_duplicates(c.keys())
            || c.values()
                .filter_map(Value::as_object)
                .any(|keys| has_case_duplicates(keys.keys()));
        if ambiguous {
            return Err("its Condition has names that differ only in case".into());
        }
    }
    for (op, keys) in b_cond {
        let Some(keys) = keys.as_object() else {
            return Err(format!(
                "the baseline's Condition operator {op:?} is not an object"
            ));
        };
        for (key, b_value) in keys {
            let s_value = s_cond.and_then(|c| c.get(op)).and_then(|k| k.get(key));
            let Some(s_value) = s_value else {
                return Err(format!("it lacks the condition {op} {key:?}"));
            };
            if !condition_values_equal(s_value, b_value) {
                return Err(format!("its condition {op} {key:?} has a different value"));
            }
            if s.vars != b.vars && (mentions_variable(s_value) || mentions_variable(b_value)) {
                return Err(format!(
                    "its condition {op} {key:?} uses a policy variable under a different policy Version"
                ));
            }
        }
    }
    Ok(())
}

/// Equal as sets of values, a single value counting as a one-item array.
fn condition_values_equal(a: &Value, b: &Value) -> bool {
    fn set(v: &Value) -> Vec<String> {
        let mut items: Vec<String> = match v {
            Value::Array(items) => items.iter().map(Value::to_string).collect(),
            other => vec![other.to_string()],
        };
        items.sort();
        items.dedup();
        items
    }
    set(a) == set(b)
}

fn has_case_duplicates<'a>(names: impl Iterator<Item = &'a String>) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    names
        .into_iter()
        .any(|n| !seen.insert(n.to_ascii_lowercase()))
}

fn mentions_variable(v: &Value) -> bool {
    v.to_string().contains("${")
}
