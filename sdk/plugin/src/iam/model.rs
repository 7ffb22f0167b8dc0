//! The serde model of IAM policy JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::glob::first_bad_variable;
use super::{PolicyError, VERSION_2012};

/// The keys a policy document may have.
const DOCUMENT_KEYS: &str = "Version, Id and Statement";
/// The keys a statement may have.
const STATEMENT_KEYS: &str =
    "Sid, Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource and Condition";

/// A policy document: `{"Version": ..., "Id": ..., "Statement": ...}`.
///
/// Only `Version`, `Id` and `Statement` are allowed (as in AWS IAM, which refuses unknown elements): parsing refuses
/// other keys and duplicate keys at any depth, so the document means one thing only, and
/// [`validate`](Self::validate) refuses a document built in code whose [`other`](Self::other) is not empty.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    /// `Version`: `2012-10-17` (expands policy variables) or `2008-10-17`; absent means `2008-10-17`.
    pub version: Option<String>,
    /// `Id`, if any.
    pub id: Option<String>,
    /// `Statement`: a single object or an array, as written.
    pub statement: OneOrMany<Statement>,
    /// Unknown top-level keys: must be empty ([`validate`](Self::validate) refuses any; kept for API compatibility).
    pub other: BTreeMap<String, Value>,
}

/// One statement of a policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `Sid`, if any.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Principal`, kept as JSON.
    pub principal: Option<Value>,
    /// `NotPrincipal`, kept as JSON.
    pub not_principal: Option<Value>,
    /// `Action`: a string or an array of strings.
    pub action: Option<OneOrMany<String>>,
    /// `NotAction`.
    pub not_action: Option<OneOrMany<String>>,
    /// `Resource`.
    pub resource: Option<OneOrMany<String>>,
    /// `NotResource`.
    pub not_resource: Option<OneOrMany<String>>,
    /// `Condition`, kept as JSON: an object of operators, each an object of condition keys and values.
    pub condition: Option<Value>,
    /// Unknown keys: must be empty ([`validate`](PolicyDocument::validate) refuses any; kept for API
    /// compatibility).
    pub other: BTreeMap<String, Value>,
}

/// A statement's `Effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `"Allow"`.
    Allow,
    /// `"Deny"`.
    Deny,
}

/// A JSON value written either as one item or as an array of items, remembered as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOrMany<T> {
    /// A single item, written without brackets.
    One(T),
    /// An array.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The items as a slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(x) => std::slice::from_ref(x),
            OneOrMany::Many(v) => v,
        }
    }

    /// Iterates over the items.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are no items (an empty array).
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Appends an item, turning a single item into an array.
    pub fn push(&mut self, item: T) {
        match self {
            OneOrMany::Many(v) => v.push(item),
            OneOrMany::One(_) => {
                let OneOrMany::One(first) =
                    std::mem::replace(self, OneOrMany::Many(Vec::with_capacity(2)))
                else {
                    unreachable!()
                };
                *self = OneOrMany::Many(vec![first, item]);
            }
        }
    }

    /// One item as `One`, any other number as `Many`.
    pub fn from_vec(mut items: Vec<T>) -> OneOrMany<T> {
        if items.len() == 1 {
            OneOrMany::One(items.remove(0))
        } else {
            OneOrMany::Many(items)
        }
    }
}

impl<'a, T> IntoIterator for &'a OneOrMany<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        })
    }
}

impl Statement {
    /// A statement with this effect on these actions and resources.
    pub fn new<A, R>(effect: Effect, actions: A, resources: R) -> Statement
    where
        A: IntoIterator,
        A::Item: Into<String>,
        R: IntoIterator,
        R::Item: Into<String>,
    {
        Statement {
            sid: None,
            effect,
            principal: None,
            not_principal: None,
            action: Some(OneOrMany::from_vec(
                actions.into_iter().map(Into::into).collect(),
            )),
            not_action: None,
            resource: Some(OneOrMany::from_vec(
                resources.into_iter().map(Into::into).collect(),
            )),
            not_resource: None,
            condition: None,
            other: BTreeMap::new(),
        }
    }

    /// `Statement 2` or `Statement 2 (Sid "ReadOnly")`, for messages.
    pub(crate) fn label(&self, index: usize) -> String {
        match &self.sid {
            Some(sid) => format!("statement {index} (Sid {sid:?})"),
            None => format!("statement {index}"),
        }
    }
}

impl Default for PolicyDocument {
    fn default() -> Self {
        PolicyDocument::new()
    }
}

impl std::str::FromStr for PolicyDocument {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PolicyDocument::parse(s)
    }
}

impl PolicyDocument {
    /// An empty document (allows nothing) with `Version` `2012-10-17`.
    pub fn new() -> PolicyDocument {
        PolicyDocument {
            version: Some(VERSION_2012.to_string()),
            id: None,
            statement: OneOrMany::Many(Vec::new()),
            other: BTreeMap::new(),
        }
    }

    /// A document allowing every action on every resource: what an `assumed-role` session without a session
    /// policy may do (the role's own permissions still apply).
    pub fn allow_all() -> PolicyDocument {
        let mut doc = PolicyDocument::new();
        doc.add_allow(["*"], ["*"]);
        doc
    }

    /// Parses and checks a policy document: a JSON object with `Statement` and at most `Version` and `Id` besides,
    /// each statement with `Effect` (`Allow` or `Deny`), exactly one of `Action`/`NotAction`, exactly one of
    /// `Resource`/`NotResource`, at most one of `Principal`/`NotPrincipal`, a `Condition` of objects, at most
    /// `Sid` besides, and, under Version `2012-10-17`, only well-formed policy variables (`${NAME}`,
    /// `${NAME, 'default'}`, `${*}`, `${?}`, `${$}`) in actions, resources and condition values; no unknown or
    /// duplicate keys.
    pub fn parse(text: &str) -> Result<PolicyDocument, PolicyError> {
        if text.trim().is_empty() {
            return Err(PolicyError::Empty);
        }
        let doc: PolicyDocument =
            serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        doc.validate()?;
        Ok(doc)
    }

    /// Checks the grammar rules listed at [`parse`](Self::parse) (for documents built in code).
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Some(v) = &self.version
            && v != VERSION_2012
            && v != "2008-10-17"
        {
            return Err(PolicyError::Syntax(format!(
                "Version must be \"2012-10-17\" or \"2008-10-17\", not {v:?}"
            )));
        }
        if let Some(key) = self.other.keys().next() {
            return Err(PolicyError::Syntax(format!(
                "unknown top-level key {key:?}: a policy document has only {DOCUMENT_KEYS}"
            )));
        }
        for (index, s) in self.statement.iter().enumerate() {
            let err = |message: &str| {
                Err(PolicyError::Statement {
                    index,
                    message: message.to_string(),
                })
            };
            if let Some(key) = s.other.keys().next() {
                return err(&format!(
                    "unknown key {key:?}: a statement has only {STATEMENT_KEYS}"
                ));
            }
            if s.action.is_some() == s.not_action.is_some() {
                return err("it must have exactly one of Action and NotAction");
            }
            if s.resource.is_some() == s.not_resource.is_some() {
                return err("it must have exactly one of Resource and NotResource");
            }
            if s.principal.is_some() && s.not_principal.is_some() {
                return err("it cannot have both Principal and NotPrincipal");
            }
            let lists = [&s.action, &s.not_action, &s.resource, &s.not_resource];
            if lists
                .iter()
                .filter_map(|l| l.as_ref())
                .any(|l| l.iter().any(String::is_empty))
            {
                return err("an action or resource is an empty string");
            }
            if let Some(c) = &s.condition {
                let ok = c
                    .as_object()
                    .is_some_and(|ops| ops.values().all(Value::is_object));
                if !ok {
                    return err(
                        "Condition must be an object mapping operators to objects of condition keys",
                    );
                }
            }
            if self.expands_variables() {
                check_variables(s).map_err(|message| PolicyError::Statement { index, message })?;
            }
        }
        Ok(())
    }

    /// The document as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a policy document always serializes")
    }

    /// Appends a statement (turning a single `Statement` object into an array).
    pub fn add_statement(&mut self, statement: Statement) {
        self.statement.push(statement);
    }

    /// Appends a `Deny` statement for these actions on these resources.
    pub fn add_deny<A, R>(&mut self, actions: A, resources: R)
    where
        A: IntoIterator,
        A::Item: Into<String>,
        R: IntoIterator,
        R::Item: Into<String>,
    {
        self.add_statement(Statement::new(Effect::Deny, actions, resources));
    }

    /// Appends an `Allow` statement for these actions on these resources.
    pub fn add_allow<A, R>(&mut self, actions: A, resources: R)
    where
        A: IntoIterator,
        A::Item: Into<String>,
        R: IntoIterator,
        R::Item: Into<String>,
    {
        self.add_statement(Statement::new(Effect::Allow, actions, resources));
    }
}

/// Under Version 2012-10-17: every `${` in the statement's actions, resources and condition values starts a
/// well-formed policy variable.
fn check_variables(s: &Statement) -> Result<(), String> {
    let check = |what: &str, text: &str| match first_bad_variable(text) {
        None => Ok(()),
        Some((at, why)) => Err(format!(
            "{what} {text:?} has {why} at {:?}: under Version 2012-10-17 a policy variable is ${{NAME}} or \
             ${{NAME, 'default'}} with NAME of letters, digits and :/_.@+=-, or ${{*}}, ${{?}} or ${{$}} for the \
             literal character",
            {
                let tail = &text[at..];
                tail.find('}').map_or(tail, |end| &tail[..=end])
            }
        )),
    };
    let lists = [
        ("Action", &s.action),
        ("NotAction", &s.not_action),
        ("Resource", &s.resource),
        ("NotResource", &s.not_resource),
    ];
    for (what, list) in lists {
        for text in list.iter().flatten() {
            check(what, text)?;
        }
    }
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|x| strings(x, out)),
            Value::Object(map) => map.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    if let Some(Value::Object(ops)) = &s.condition {
        for (op, keys) in ops {
            let Value::Object(keys) = keys else { continue };
            for (key, value) in keys {
                let mut found = Vec::new();
                strings(value, &mut found);
                for text in found {
                    check(&format!("the value of condition {op} {key:?}"), text)?;
                }
            }
        }
    }
    Ok(())
}

// ---- serialization ----

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OneOrMany::One(x) => x.serialize(serializer),
            OneOrMany::Many(v) => {
                let mut seq = serializer.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
        }
    }
}

impl Serialize for Effect {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl Serialize for Statement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(v) = &self.sid {
            map.serialize_entry("Sid", v)?;
        }
        map.serialize_entry("Effect", &self.effect)?;
        if let Some(v) = &self.principal {
            map.serialize_entry("Principal", v)?;
        }
        if let Some(v) = &self.not_principal {
            map.serialize_entry("NotPrincipal", v)?;
        }
        if let Some(v) = &self.action {
            map.serialize_entry("Action", v)?;
        }
        if let Some(v) = &self.not_action {
            map.serialize_entry("NotAction", v)?;
        }
        if let Some(v) = &self.resource {
            map.serialize_entry("Resource", v)?;
        }
        if let Some(v) = &self.not_resource {
            map.serialize_entry("NotResource", v)?;
        }
        if let Some(v) = &self.condition {
            map.serialize_entry("Condition", v)?;
        }
        for (k, v) in &self.other {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for PolicyDocument {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(v) = &self.version {
            map.serialize_entry("Version", v)?;
        }
        if let Some(v) = &self.id {
            map.serialize_entry("Id", v)?;
        }
        map.serialize_entry("Statement", &self.statement)?;
        for (k, v) in &self.other {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

// ---- deserialization ----

/// A JSON value whose objects, at any depth, have no duplicate keys.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strict;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                Ok(Strict(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(Value::String(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Strict, E> {
                Ok(Strict(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Strict, E> {
                Ok(Strict(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
                let mut v = Vec::new();
                while let Some(Strict(x)) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Strict(Value::Array(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
                let mut m = serde_json::Map::new();
                while let Some(k) = map.next_key::<String>()? {
                    if m.contains_key(&k) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    let Strict(v) = map.next_value()?;
                    m.insert(k, v);
                }
                Ok(Strict(Value::Object(m)))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a single item or an array")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(v.to_string().into_deserializer()).map(OneOrMany::One)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<T>()? {
                    v.push(x);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for Effect {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "Allow" => Ok(Effect::Allow),
            "Deny" => Ok(Effect::Deny),
            other => Err(de::Error::custom(format!(
                "Effect must be \"Allow\" or \"Deny\", not {other:?}"
            ))),
        }
    }
}

fn check_new<E: de::Error>(seen: &mut BTreeSet<String>, key: &str) -> Result<(), E> {
    if seen.insert(key.to_string()) {
        Ok(())
    } else {
        Err(E::custom(format!("duplicate key {key:?}")))
    }
}

impl<'de> Deserialize<'de> for Statement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Statement;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a statement object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Statement, A::Error> {
                let mut seen = BTreeSet::new();
                let mut effect = None;
                let mut s =
                    Statement::new(Effect::Allow, Vec::<String>::new(), Vec::<String>::new());
                s.action = None;
                s.resource = None;
                while let Some(key) = map.next_key::<String>()? {
                    check_new(&mut seen, &key)?;
                    match key.as_str() {
                        "Sid" => s.sid = Some(map.next_value()?),
                        "Effect" => effect = Some(map.next_value()?),
                        "Principal" => s.principal = Some(map.next_value::<Strict>()?.0),
                        "NotPrincipal" => s.not_principal = Some(map.next_value::<Strict>()?.0),
                        "Action" => s.action = Some(map.next_value()?),
                        "NotAction" => s.not_action = Some(map.next_value()?),
                        "Resource" => s.resource = Some(map.next_value()?),
                        "NotResource" => s.not_resource = Some(map.next_value()?),
                        "Condition" => s.condition = Some(map.next_value::<Strict>()?.0),
                        _ => {
                            let v = map.next_value::<Strict>()?.0;
                            s.other.insert(key, v);
                        }
                    }
                }
                s.effect = effect.ok_or_else(|| de::Error::missing_field("Effect"))?;
                Ok(s)
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for PolicyDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicyDocument;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a policy document object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyDocument, A::Error> {
                let mut seen = BTreeSet::new();
                let mut doc = PolicyDocument::new();
                doc.version = None;
                let mut statement = None;
                while let Some(key) = map.next_key::<String>()? {
                    check_new(&mut seen, &key)?;
                    match key.as_str() {
                        "Version" => doc.version = Some(map.next_value()?),
                        "Id" => doc.id = Some(map.next_value()?),
                        "Statement" => statement = Some(map.next_value()?),
                        _ => {
                            let v = map.next_value::<Strict>()?.0;
                            doc.other.insert(key, v);
                        }
                    }
                }
                doc.statement = statement.ok_or_else(|| de::Error::missing_field("Statement"))?;
                Ok(doc)
            }
        }
        deserializer.deserialize_map(V)
    }
}
