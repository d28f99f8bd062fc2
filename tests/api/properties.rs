//! Property tests: for random users and random filters, the database's answer
//! (`store::query`) is exactly the set the reference evaluator
//! (`scim::filter::matches`) selects from the server's own representations,
//! and `sortBy` orders resources as documented.
//!
//! Each property starts one server and reuses it: every case deletes the
//! previous case's users, creates its own, then checks many filters (or
//! sorts) against them. Values come from a small alphabet of mixed-case words
//! so that equality, case folding, prefixes and substrings collide often.
//! `PROPTEST_CASES` raises the number of cases for a deeper run.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use reqwest::Method;
use scimd::scim::ResourceKind;
use scimd::scim::filter::{matches, parse_filter};
use scimd::scim::schema::SchemaRegistry;
use serde_json::{Map, Value, json};

use crate::helpers::{ENTERPRISE, GROUP_SCHEMA, TestApp, USER_SCHEMA, spawn_app};

const FILTER_CASES: u32 = 64;
const FILTERS_PER_CASE: usize = 40;
const SORT_CASES: u32 = 24;
const SORTS_PER_CASE: usize = 8;

/// Attribute values: case variants of one word, prefixes and suffixes of
/// others, the empty string, non-ASCII letters whose folding is not ASCII's,
/// and characters a filter or a URL must escape.
const WORDS: &[&str] = &[
    "Alpha",
    "alpha",
    "ALPHA",
    "alp",
    "pha",
    "beta",
    "Beta",
    "Gamma",
    "gamma ray",
    "",
    "o'malley",
    "O'Malley",
    "é",
    "É",
    "Ünïcode",
    "ünïcode",
    "ÜNÏCODE",
    "ẞtraße",
    "say \"hi\"",
    "back\\slash",
    "R&D 50%+",
    "a",
    "Z",
    "zeta",
    "100",
    "99",
];

/// Non-blank words for `userName` (required, so never empty).
const NAME_WORDS: &[&str] = &[
    "Alpha",
    "alpha",
    "ALPHA",
    "alp",
    "beta",
    "Beta",
    "Gamma",
    "o'malley",
    "é",
    "É",
    "Ünïcode",
    "ünïcode",
    "zeta",
    "Z",
    "R&D 50%+",
];

/// Extra comparison operands: pieces of the words above.
const FRAGMENTS: &[&str] = &[
    "al",
    "AL",
    "ph",
    "A",
    "ic",
    "'",
    "Ü",
    "ü",
    "ß",
    "ss",
    "ma",
    "@",
    "@example.com",
    ".ORG",
    "555",
    "\"",
    "\\",
    "&",
    " ",
    "1",
];

const EMAIL_VALUES: &[&str] = &[
    "alpha@example.com",
    "Alpha@Example.com",
    "beta@example.org",
    "gamma@EXAMPLE.ORG",
    "é@example.com",
    "alpha",
    "",
];
/// `Work` and `HOME` are canonicalised by the server; `custom` is kept.
const EMAIL_TYPES: &[&str] = &["work", "home", "other", "Work", "HOME", "custom"];
const PHONE_VALUES: &[&str] = &["555-0100", "555-0101", "+1 555 0100", "alpha", ""];
const PHONE_TYPES: &[&str] = &["work", "mobile", "home", "Fax"];

// ---------------------------------------------------------------------------
// Users

/// Builds an element of a multi-valued complex attribute; `None` parts are left out.
fn element(value: Option<&str>, kind: Option<&str>, primary: Option<bool>) -> Value {
    let mut e = Map::new();
    if let Some(v) = value {
        e.insert("value".into(), json!(v));
    }
    if let Some(t) = kind {
        e.insert("type".into(), json!(t));
    }
    if let Some(p) = primary {
        e.insert("primary".into(), json!(p));
    }
    Value::Object(e)
}

/// Up to `max` elements, at most one of them primary.
fn multi_valued(
    values: &'static [&'static str],
    types: &'static [&'static str],
    max: usize,
) -> impl Strategy<Value = Vec<Value>> {
    let one = (
        option::of(select(values)),
        option::of(select(types)),
        option::of(any::<bool>()),
    );
    prop::collection::vec(one, 0..=max).prop_map(|elements| {
        let mut primary_seen = false;
        elements
            .into_iter()
            .map(|(value, kind, primary)| {
                let primary = primary.map(|p| {
                    let p = p && !primary_seen;
                    primary_seen |= p;
                    p
                });
                element(value, kind, primary)
            })
            .collect()
    })
}

fn word() -> impl Strategy<Value = &'static str> {
    select(WORDS)
}

/// A User creation body with a random subset of attributes.
fn user() -> impl Strategy<Value = Value> {
    let core = (
        (select(NAME_WORDS), 0..3u8),
        option::of((option::of(word()), option::of(word()))),
        option::of(word()),
        option::of(word()),
        option::of(word()),
        option::of(word()),
        option::of(word()),
        option::of(any::<bool>()),
    );
    let multi = (
        multi_valued(EMAIL_VALUES, EMAIL_TYPES, 3),
        multi_valued(PHONE_VALUES, PHONE_TYPES, 2),
    );
    let enterprise = option::of((
        option::of(word()),
        option::of(word()),
        option::of(word()),
        option::of(word()),
    ));
    (core, multi, enterprise).prop_map(|(core, (emails, phones), enterprise)| {
        let ((name_word, suffix), name, display, title, user_type, nick, external, active) = core;
        let mut user = Map::new();
        let user_name = match suffix {
            0 => name_word.to_string(),
            n => format!("{name_word}{n}"),
        };
        user.insert("userName".into(), json!(user_name));
        if let Some((given, family)) = name {
            let mut n = Map::new();
            if let Some(g) = given {
                n.insert("givenName".into(), json!(g));
            }
            if let Some(f) = family {
                n.insert("familyName".into(), json!(f));
            }
            user.insert("name".into(), Value::Object(n));
        }
        for (key, value) in [
            ("displayName", display),
            ("title", title),
            ("userType", user_type),
            ("nickName", nick),
            ("externalId", external),
        ] {
            if let Some(v) = value {
                user.insert(key.into(), json!(v));
            }
        }
        if let Some(a) = active {
            user.insert("active".into(), json!(a));
        }
        if !emails.is_empty() {
            user.insert("emails".into(), Value::Array(emails));
        }
        if !phones.is_empty() {
            user.insert("phoneNumbers".into(), Value::Array(phones));
        }
        let mut schemas = vec![json!(USER_SCHEMA)];
        if let Some((department, number, cost_center, manager)) = enterprise {
            let mut ext = Map::new();
            for (key, value) in [
                ("department", department),
                ("employeeNumber", number),
                ("costCenter", cost_center),
            ] {
                if let Some(v) = value {
                    ext.insert(key.into(), json!(v));
                }
            }
            if let Some(m) = manager {
                ext.insert("manager".into(), json!({ "value": m }));
            }
            schemas.push(json!(ENTERPRISE));
            user.insert(ENTERPRISE.into(), Value::Object(ext));
        }
        user.insert("schemas".into(), Value::Array(schemas));
        Value::Object(user)
    })
}

/// 12 to 20 users whose userNames differ case-insensitively.
fn population() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(user(), 12..=20).prop_map(|mut users| {
        let mut seen = HashSet::new();
        for (i, user) in users.iter_mut().enumerate() {
            let name = user["userName"].as_str().unwrap_or_default().to_string();
            if !seen.insert(name.to_lowercase()) {
                let unique = format!("{name}.{i}");
                seen.insert(unique.to_lowercase());
                user["userName"] = json!(unique);
            }
        }
        users
    })
}

// ---------------------------------------------------------------------------
// Filters

/// How an attribute is compared.
#[derive(Clone, Copy, Debug)]
enum Ty {
    Str,
    Bool,
    DateTime,
    Id,
    ResourceType,
    Schemas,
    /// A complex attribute without `value`: `pr` and `eq`/`ne null` only.
    Complex,
}

const ATTRIBUTES: &[(&str, Ty)] = &[
    ("userName", Ty::Str),
    ("urn:ietf:params:scim:schemas:core:2.0:User:userName", Ty::Str),
    ("displayName", Ty::Str),
    ("title", Ty::Str),
    ("userType", Ty::Str),
    ("nickName", Ty::Str),
    ("externalId", Ty::Str),
    ("name.givenName", Ty::Str),
    ("name.familyName", Ty::Str),
    ("name", Ty::Complex),
    ("emails", Ty::Str),
    ("emails.value", Ty::Str),
    ("emails.type", Ty::Str),
    ("emails.primary", Ty::Bool),
    ("phoneNumbers", Ty::Str),
    ("phoneNumbers.value", Ty::Str),
    ("phoneNumbers.type", Ty::Str),
    ("active", Ty::Bool),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        Ty::Str,
    ),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        Ty::Str,
    ),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
        Ty::Str,
    ),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        Ty::Str,
    ),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        Ty::Complex,
    ),
    ("meta.created", Ty::DateTime),
    ("meta.lastModified", Ty::DateTime),
    ("meta.resourceType", Ty::ResourceType),
    ("id", Ty::Id),
    ("schemas", Ty::Schemas),
];

/// Attributes that take a value filter, with the sub-attributes it may name.
const VALUE_PATHS: &[(&str, &[(&str, Ty)])] = &[
    (
        "emails",
        &[
            ("value", Ty::Str),
            ("type", Ty::Str),
            ("primary", Ty::Bool),
            ("display", Ty::Str),
        ],
    ),
    (
        "phoneNumbers",
        &[("value", Ty::Str), ("type", Ty::Str), ("primary", Ty::Bool)],
    ),
    ("name", &[("givenName", Ty::Str), ("familyName", Ty::Str)]),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        &[("value", Ty::Str)],
    ),
    (
        "meta",
        &[
            ("created", Ty::DateTime),
            ("lastModified", Ty::DateTime),
            ("resourceType", Ty::ResourceType),
        ],
    ),
];

const STRING_OPS: &[&str] = &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"];
const ORDER_OPS: &[&str] = &["eq", "ne", "gt", "ge", "lt", "le"];
const EQUALITY_OPS: &[&str] = &["eq", "ne"];

/// A date-time operand, resolved against the population's creation times.
#[derive(Debug, Clone, Copy)]
enum TimeRef {
    Year2000,
    Year2100,
    /// The creation time of user `index` (modulo the population), moved by
    /// `shift` microseconds, written in UTC or with an offset, with or
    /// without its fraction.
    Created {
        index: usize,
        shift: i64,
        offset: bool,
        whole_seconds: bool,
    },
}

/// An `id` operand: one user's id, uppercased, or its first eight characters.
#[derive(Debug, Clone, Copy)]
enum IdRef {
    Exact(usize),
    Upper(usize),
    Prefix(usize),
}

#[derive(Debug, Clone)]
enum Operand {
    Str(String),
    Bool(bool),
    Null,
    Time(TimeRef),
    Id(IdRef),
}

#[derive(Debug, Clone)]
struct Leaf {
    path: String,
    op: String,
    /// `None` for `pr`.
    operand: Option<Operand>,
}

#[derive(Debug, Clone)]
enum Node {
    And(Box<Node>, Box<Node>, &'static str),
    Or(Box<Node>, Box<Node>, &'static str),
    Not(Box<Node>, &'static str),
    /// Redundant parentheses.
    Group(Box<Node>),
    Leaf(Leaf),
    ValuePath(String, Box<Node>),
}

fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

impl Node {
    fn render(&self, population: &Population) -> String {
        match self {
            // `and` binds tighter than `or`: only an `or` under an `and` needs parentheses.
            Node::And(a, b, kw) => format!(
                "{} {kw} {}",
                a.render_under_and(population),
                b.render_under_and(population)
            ),
            Node::Or(a, b, kw) => format!("{} {kw} {}", a.render(population), b.render(population)),
            Node::Not(inner, kw) => format!("{kw} ({})", inner.render(population)),
            Node::Group(inner) => format!("({})", inner.render(population)),
            Node::ValuePath(path, inner) => format!("{path}[{}]", inner.render(population)),
            Node::Leaf(leaf) => {
                let operand = match &leaf.operand {
                    None => return format!("{} {}", leaf.path, leaf.op),
                    Some(Operand::Str(s)) => quoted(s),
                    Some(Operand::Bool(b)) => b.to_string(),
                    Some(Operand::Null) => "null".into(),
                    Some(Operand::Time(t)) => quoted(&population.time(*t)),
                    Some(Operand::Id(IdRef::Exact(i))) => quoted(population.id(*i)),
                    Some(Operand::Id(IdRef::Upper(i))) => quoted(&population.id(*i).to_uppercase()),
                    Some(Operand::Id(IdRef::Prefix(i))) => quoted(population.id(*i).get(..8).unwrap_or_default()),
                };
                format!("{} {} {operand}", leaf.path, leaf.op)
            }
        }
    }

    fn render_under_and(&self, population: &Population) -> String {
        match self {
            Node::Or(..) => format!("({})", self.render(population)),
            _ => self.render(population),
        }
    }
}

/// Writes a name or keyword as given, lowercased or uppercased: both are case-insensitive.
fn cased(word: &str, case: u8) -> String {
    match case {
        0 => word.to_lowercase(),
        1 => word.to_uppercase(),
        _ => word.to_string(),
    }
}

fn case() -> impl Strategy<Value = u8> {
    prop_oneof![1 => Just(0u8), 1 => Just(1u8), 4 => Just(2u8)]
}

fn string_operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        4 => select(WORDS).prop_map(str::to_string),
        2 => select(FRAGMENTS).prop_map(str::to_string),
        1 => select(EMAIL_VALUES).prop_map(str::to_string),
        1 => select(PHONE_VALUES).prop_map(str::to_string),
        1 => (select(NAME_WORDS), 1..3u8).prop_map(|(w, n)| format!("{w}{n}")),
    ]
    .prop_map(Operand::Str)
}

fn time_ref() -> impl Strategy<Value = TimeRef> {
    prop_oneof![
        1 => Just(TimeRef::Year2000),
        1 => Just(TimeRef::Year2100),
        8 => (any::<usize>(), select(&[-1000i64, -1, 0, 0, 1, 1000][..]), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(index, shift, offset, whole_seconds)| TimeRef::Created { index, shift, offset, whole_seconds }),
    ]
}

fn id_ref() -> impl Strategy<Value = IdRef> {
    prop_oneof![
        4 => any::<usize>().prop_map(IdRef::Exact),
        1 => any::<usize>().prop_map(IdRef::Upper),
        1 => any::<usize>().prop_map(IdRef::Prefix),
    ]
}

/// `(op, operand)` pairs that parse for an attribute of type `ty`.
fn comparison(ty: Ty) -> BoxedStrategy<(&'static str, Option<Operand>)> {
    let present = Just(("pr", None));
    let null = select(EQUALITY_OPS).prop_map(|op| (op, Some(Operand::Null)));
    match ty {
        Ty::Str => prop_oneof![
            8 => (select(STRING_OPS), string_operand()).prop_map(|(op, v)| (op, Some(v))),
            1 => present,
            1 => null,
        ]
        .boxed(),
        Ty::Bool => prop_oneof![
            4 => (select(EQUALITY_OPS), any::<bool>()).prop_map(|(op, b)| (op, Some(Operand::Bool(b)))),
            // Entra ID's spelling.
            1 => (select(EQUALITY_OPS), select(&["True", "false", "FALSE"][..]))
                .prop_map(|(op, b)| (op, Some(Operand::Str(b.to_string())))),
            1 => present,
            1 => null,
        ]
        .boxed(),
        Ty::DateTime => prop_oneof![
            6 => (select(ORDER_OPS), time_ref()).prop_map(|(op, t)| (op, Some(Operand::Time(t)))),
            1 => present,
        ]
        .boxed(),
        Ty::Id => prop_oneof![
            6 => (select(STRING_OPS), id_ref()).prop_map(|(op, i)| (op, Some(Operand::Id(i)))),
            1 => present,
        ]
        .boxed(),
        Ty::ResourceType => prop_oneof![
            6 => (select(STRING_OPS), select(&["User", "user", "USER", "Group", "Us", "ser", ""][..]))
                .prop_map(|(op, v)| (op, Some(Operand::Str(v.to_string())))),
            1 => present,
        ]
        .boxed(),
        Ty::Schemas => prop_oneof![
            6 => (
                select(EQUALITY_OPS),
                select(&[
                    ENTERPRISE,
                    USER_SCHEMA,
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user",
                    "urn:example:none",
                ][..])
            )
                .prop_map(|(op, v)| (op, Some(Operand::Str(v.to_string())))),
            1 => present,
        ]
        .boxed(),
        Ty::Complex => prop_oneof![1 => present, 1 => null].boxed(),
    }
}

fn leaf(attributes: &'static [(&'static str, Ty)]) -> impl Strategy<Value = Node> {
    select(attributes).prop_flat_map(|(path, ty)| {
        (case(), case(), comparison(ty)).prop_map(move |(path_case, op_case, (op, operand))| {
            Node::Leaf(Leaf {
                path: cased(path, path_case),
                op: cased(op, op_case),
                operand,
            })
        })
    })
}

fn keyword(word: &'static str) -> impl Strategy<Value = &'static str> {
    let variants: &'static [&'static str] = match word {
        "and" => &["and", "and", "AND", "And"],
        "or" => &["or", "or", "OR", "Or"],
        _ => &["not", "not", "NOT", "Not"],
    };
    select(variants)
}

/// `and`, `or`, `not` and parentheses over `inner`.
fn logical(inner: BoxedStrategy<Node>) -> impl Strategy<Value = Node> {
    prop_oneof![
        3 => (inner.clone(), inner.clone(), keyword("and")).prop_map(|(a, b, kw)| Node::And(Box::new(a), Box::new(b), kw)),
        3 => (inner.clone(), inner.clone(), keyword("or")).prop_map(|(a, b, kw)| Node::Or(Box::new(a), Box::new(b), kw)),
        2 => (inner.clone(), keyword("not")).prop_map(|(a, kw)| Node::Not(Box::new(a), kw)),
        1 => inner.prop_map(|a| Node::Group(Box::new(a))),
    ]
}

/// `attr[f]` where `f` combines comparisons of the attribute's sub-attributes.
fn value_path() -> impl Strategy<Value = Node> {
    select(VALUE_PATHS).prop_flat_map(|(path, subs)| {
        let inner = leaf(subs).prop_recursive(1, 4, 2, |inner| logical(inner.boxed()));
        (case(), inner).prop_map(move |(path_case, inner)| Node::ValuePath(cased(path, path_case), Box::new(inner)))
    })
}

fn filter() -> impl Strategy<Value = Node> {
    let base = prop_oneof![5 => leaf(ATTRIBUTES), 2 => value_path()];
    base.prop_recursive(3, 12, 2, |inner| logical(inner.boxed()))
}

// ---------------------------------------------------------------------------
// Running cases against the server

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        // Failures are reported, not written into the source tree.
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    }
}

fn fail(message: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(message.into())
}

fn id_of(user: &Value) -> &str {
    user["id"].as_str().unwrap_or_default()
}

/// Panics with the reason of the minimal failing case.
fn report<T>(result: Result<(), TestError<T>>) {
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, _)) => panic!("{reason}"),
        Err(TestError::Abort(reason)) => panic!("aborted: {reason}"),
    }
}

/// Every user, as the server represents it in a list.
async fn list_users(app: &TestApp, params: &[(&str, &str)]) -> Result<Value, TestCaseError> {
    let response = app
        .request(Method::GET, "/scim/v2/Users")
        .query(&[("count", "1000")])
        .query(params)
        .send()
        .await
        .map_err(|e| fail(format!("request failed: {e}")))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| fail(format!("list answer is not JSON: {e}")))?;
    if status != 200 {
        return Err(fail(format!("GET /Users with {params:?} answered {status}: {body}")));
    }
    Ok(body)
}

fn resources(body: &Value) -> &[Value] {
    body["Resources"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A case's users as the server holds them, with their ids and creation
/// times (which filters refer to), in creation order.
struct Population {
    users: Vec<Value>,
    ids: Vec<String>,
    created: Vec<String>,
}

impl Population {
    /// The id of user `index`, modulo the population.
    fn id(&self, index: usize) -> &str {
        &self.ids[index % self.ids.len()]
    }

    /// The date-time `t` stands for, as a filter writes it.
    fn time(&self, t: TimeRef) -> String {
        let (index, shift, offset, whole_seconds) = match t {
            TimeRef::Year2000 => return "2000-01-01T00:00:00Z".into(),
            TimeRef::Year2100 => return "2100-01-01T00:00:00+01:00".into(),
            TimeRef::Created {
                index,
                shift,
                offset,
                whole_seconds,
            } => (index, shift, offset, whole_seconds),
        };
        let created = &self.created[index % self.created.len()];
        let at =
            DateTime::parse_from_rfc3339(created).expect("meta.created is RFC 3339") + TimeDelta::microseconds(shift);
        let zone = FixedOffset::east_opt(if offset { 5 * 3600 + 1800 } else { 0 }).expect("a valid offset");
        let precision = if whole_seconds {
            SecondsFormat::Secs
        } else {
            SecondsFormat::Micros
        };
        at.with_timezone(&zone).to_rfc3339_opts(precision, !offset)
    }
}

/// Deletes every user, creates `bodies`, and reads them back.
async fn populate(app: &TestApp, bodies: &[Value]) -> Result<Population, TestCaseError> {
    let existing = list_users(app, &[("attributes", "id")]).await?;
    for user in resources(&existing) {
        let response = app.delete(&format!("/scim/v2/Users/{}", id_of(user))).await;
        if response.status() != 204 {
            return Err(fail(format!("deleting {user} answered {}", response.status())));
        }
    }
    let mut ids = Vec::with_capacity(bodies.len());
    for body in bodies {
        let response = app.post("/scim/v2/Users", body).await;
        let status = response.status();
        let created: Value = response.json().await.unwrap_or(Value::Null);
        if status != 201 {
            return Err(fail(format!(
                "generator bug: creating {body} answered {status}: {created}"
            )));
        }
        ids.push(id_of(&created).to_string());
    }
    let listed = list_users(app, &[]).await?;
    let mut by_id: BTreeMap<String, Value> = resources(&listed)
        .iter()
        .map(|u| (id_of(u).to_string(), u.clone()))
        .collect();
    let users: Vec<Value> = ids.iter().filter_map(|id| by_id.remove(id)).collect();
    if users.len() != ids.len() || !by_id.is_empty() {
        return Err(fail(format!(
            "created {} users but listed {}",
            ids.len(),
            resources(&listed).len()
        )));
    }
    let created = users
        .iter()
        .map(|u| u["meta"]["created"].as_str().unwrap_or_default().to_string())
        .collect();
    Ok(Population { users, ids, created })
}

/// The server's answer to `filter` equals the reference evaluator's;
/// returns how many users match.
async fn check_filter(app: &TestApp, population: &Population, filter: &Node) -> Result<usize, TestCaseError> {
    let text = filter.render(population);
    let parsed = parse_filter(SchemaRegistry::builtin(), ResourceKind::User, &text)
        .map_err(|e| fail(format!("generator bug: parse_filter rejects {text}: {e}")))?;
    let expected: BTreeSet<&str> = population
        .users
        .iter()
        .filter(|u| matches(&parsed, u))
        .map(id_of)
        .collect();
    let response = app
        .request(Method::GET, "/scim/v2/Users")
        .query(&[("filter", text.as_str()), ("count", "1000"), ("attributes", "id")])
        .send()
        .await
        .map_err(|e| fail(format!("request failed: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 200 {
        return Err(fail(format!(
            "filter {text}\nparse_filter accepts it, but the server answered {status}: {body}"
        )));
    }
    let got: BTreeSet<&str> = resources(&body).iter().map(id_of).collect();
    let total = body["totalResults"].as_u64();
    if got == expected && total == Some(expected.len() as u64) {
        return Ok(expected.len());
    }
    let mut message = format!(
        "filter {text}\ntotalResults {total:?}, {} listed, the evaluator matches {}",
        got.len(),
        expected.len()
    );
    for user in &population.users {
        let (evaluator, sql) = (expected.contains(id_of(user)), got.contains(id_of(user)));
        if evaluator != sql {
            message.push_str(&format!("\n  evaluator {evaluator}, SQL {sql}: {user}"));
        }
    }
    Err(fail(message))
}

#[test]
fn random_filters_select_exactly_the_users_the_reference_evaluator_matches() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let app = runtime.block_on(spawn_app());
    let mut runner = TestRunner::new(config(FILTER_CASES));
    let strategy = (population(), prop::collection::vec(filter(), FILTERS_PER_CASE));
    let (checked, selective) = (Cell::new(0usize), Cell::new(0usize));
    let result = runner.run(&strategy, |(bodies, filters)| {
        runtime.block_on(async {
            let population = populate(&app, &bodies).await?;
            for filter in &filters {
                let matched = check_filter(&app, &population, filter).await?;
                checked.set(checked.get() + 1);
                if matched > 0 && matched < population.users.len() {
                    selective.set(selective.get() + 1);
                }
            }
            Ok(())
        })
    });
    report(result);
    // Agreeing on filters that match nobody or everybody proves little.
    assert!(
        selective.get() * 4 >= checked.get(),
        "only {} of {} filters matched some but not all users: the generator needs work",
        selective.get(),
        checked.get()
    );
}

// ---------------------------------------------------------------------------
// Sorting

const SORT_ATTRIBUTES: &[&str] = &[
    "userName",
    "name.familyName",
    "title",
    "emails.value",
    "emails",
    "meta.created",
    "displayName",
];

/// The value `sortBy` orders a user by, as `store::query` documents it:
/// strings lowercased (none of these is caseExact); for `emails`, the value
/// of the primary element, else of the first element that has one.
fn sort_key(user: &Value, sort_by: &str) -> Option<String> {
    let folded = |v: &Value| v.as_str().map(str::to_lowercase);
    match sort_by.to_lowercase().as_str() {
        "username" => folded(&user["userName"]),
        "name.familyname" => folded(&user["name"]["familyName"]),
        "title" => folded(&user["title"]),
        "displayname" => folded(&user["displayName"]),
        "meta.created" => user["meta"]["created"].as_str().map(str::to_string),
        "emails" | "emails.value" => {
            let with_value: Vec<&Value> = user["emails"]
                .as_array()?
                .iter()
                .filter(|e| e["value"].is_string())
                .collect();
            let chosen = with_value
                .iter()
                .find(|e| e["primary"] == json!(true))
                .or(with_value.first())?;
            folded(&chosen["value"])
        }
        other => panic!("no sort model for {other}"),
    }
}

/// Ids in the documented order: by key (code-point order), resources without
/// one last in both directions, then by creation time and id.
fn expected_order(users: &[Value], sort_by: &str, descending: bool) -> Vec<String> {
    let mut keyed: Vec<(Option<String>, &str, &str)> = users
        .iter()
        .map(|u| {
            (
                sort_key(u, sort_by),
                u["meta"]["created"].as_str().unwrap_or_default(),
                id_of(u),
            )
        })
        .collect();
    keyed.sort_by(|(ka, ca, ia), (kb, cb, ib)| {
        let by_key = match (ka, kb) {
            (Some(a), Some(b)) if descending => b.cmp(a),
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_key.then_with(|| ca.cmp(cb)).then_with(|| ia.cmp(ib))
    });
    keyed.into_iter().map(|(_, _, id)| id.to_string()).collect()
}

#[derive(Debug, Clone)]
struct Sort {
    sort_by: String,
    /// `None` leaves `sortOrder` out (ascending).
    order: Option<&'static str>,
}

fn sort() -> impl Strategy<Value = Sort> {
    (
        select(SORT_ATTRIBUTES),
        case(),
        option::of(select(&["ascending", "descending", "DESCENDING", "Ascending"][..])),
    )
        .prop_map(|(attr, c, order)| Sort {
            sort_by: cased(attr, c),
            order,
        })
}

async fn check_sort(app: &TestApp, population: &Population, sort: &Sort) -> Result<(), TestCaseError> {
    let mut params = vec![("sortBy", sort.sort_by.as_str())];
    if let Some(order) = sort.order {
        params.push(("sortOrder", order));
    }
    let body = list_users(app, &params).await?;
    let got: Vec<String> = resources(&body).iter().map(|u| id_of(u).to_string()).collect();
    let descending = sort.order.is_some_and(|o| o.eq_ignore_ascii_case("descending"));
    let expected = expected_order(&population.users, &sort.sort_by, descending);
    if got == expected {
        return Ok(());
    }
    let by_id: BTreeMap<&str, &Value> = population.users.iter().map(|u| (id_of(u), u)).collect();
    let show = |ids: &[String]| -> String {
        ids.iter()
            .map(|id| {
                let key = by_id.get(id.as_str()).and_then(|u| sort_key(u, &sort.sort_by));
                format!("\n    {key:?} {id}")
            })
            .collect()
    };
    let users: String = population.users.iter().map(|u| format!("\n    {u}")).collect();
    Err(fail(format!(
        "sortBy={} sortOrder={:?}\n  server order (key, id):{}\n  expected:{}\n  users:{users}",
        sort.sort_by,
        sort.order,
        show(&got),
        show(&expected)
    )))
}

#[test]
fn random_sorts_order_users_by_the_documented_rule() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let app = runtime.block_on(spawn_app());
    let mut runner = TestRunner::new(config(SORT_CASES));
    let strategy = (population(), prop::collection::vec(sort(), SORTS_PER_CASE));
    let result = runner.run(&strategy, |(bodies, sorts)| {
        runtime.block_on(async {
            let population = populate(&app, &bodies).await?;
            for sort in &sorts {
                check_sort(&app, &population, sort).await?;
            }
            Ok(())
        })
    });
    report(result);
}

// ---------------------------------------------------------------------------
// Derived groups

const GROUP_CASES: u32 = 24;
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A case's memberships: `users` users, and for each group the users and
/// the other groups (by index) it holds. Groups may hold each other in
/// cycles.
#[derive(Debug, Clone)]
struct Memberships {
    users: usize,
    groups: Vec<(Vec<usize>, Vec<usize>)>,
}

fn memberships() -> impl Strategy<Value = Memberships> {
    (1usize..=3, 1usize..=5).prop_flat_map(|(users, groups)| {
        let holds = (
            prop::collection::vec(prop::bool::weighted(0.4), users),
            prop::collection::vec(prop::bool::weighted(0.3), groups),
        );
        prop::collection::vec(holds, groups).prop_map(move |rows| {
            let chosen = |flags: &[bool], except: Option<usize>| -> Vec<usize> {
                (0..flags.len()).filter(|&i| flags[i] && Some(i) != except).collect()
            };
            Memberships {
                users,
                groups: rows
                    .iter()
                    .enumerate()
                    .map(|(g, (user_flags, group_flags))| (chosen(user_flags, None), chosen(group_flags, Some(g))))
                    .collect(),
            }
        })
    })
}

/// User `user`'s groups as RFC 7643 §4.1.2 derives them, by group index:
/// "direct" where the group holds the user, else "indirect" where it holds
/// (through any chain) a group that does.
fn expected_groups(m: &Memberships, user: usize) -> BTreeMap<usize, &'static str> {
    let mut found = BTreeMap::new();
    let mut walk: Vec<usize> = (0..m.groups.len()).filter(|&g| m.groups[g].0.contains(&user)).collect();
    for &g in &walk {
        found.insert(g, "direct");
    }
    while let Some(g) = walk.pop() {
        for (holder, (_, subgroups)) in m.groups.iter().enumerate() {
            if subgroups.contains(&g) && !found.contains_key(&holder) {
                found.insert(holder, "indirect");
                walk.push(holder);
            }
        }
    }
    found
}

/// A user's `groups` as (value, type), in order of value.
fn shown_groups(user: &Value) -> BTreeMap<String, String> {
    user["groups"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|g| {
            (
                g["value"].as_str().unwrap_or_default().to_string(),
                g["type"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn expect_status(response: reqwest::Response, status: u16, what: &str) -> Result<Value, TestCaseError> {
    let got = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if got != status {
        return Err(fail(format!("{what} answered {got}: {body}")));
    }
    Ok(body)
}

/// Deletes every group, creates the case's users and groups, and adds the
/// memberships; returns the groups' ids by index.
async fn build_memberships(app: &TestApp, m: &Memberships) -> Result<(Population, Vec<String>), TestCaseError> {
    let existing = expect_status(
        app.get("/scim/v2/Groups?attributes=id&count=1000").await,
        200,
        "listing groups",
    )
    .await?;
    for group in resources(&existing) {
        expect_status(
            app.delete(&format!("/scim/v2/Groups/{}", id_of(group))).await,
            204,
            "deleting a group",
        )
        .await?;
    }
    let bodies: Vec<Value> = (0..m.users)
        .map(|u| json!({ "schemas": [USER_SCHEMA], "userName": format!("member{u}") }))
        .collect();
    let population = populate(app, &bodies).await?;
    let mut group_ids = Vec::new();
    for g in 0..m.groups.len() {
        let body = json!({ "schemas": [GROUP_SCHEMA], "displayName": format!("G{g}") });
        let created = expect_status(app.post("/scim/v2/Groups", &body).await, 201, "creating a group").await?;
        group_ids.push(id_of(&created).to_string());
    }
    for (g, (users, subgroups)) in m.groups.iter().enumerate() {
        let members: Vec<Value> = users
            .iter()
            .map(|&u| json!({ "value": population.id(u) }))
            .chain(subgroups.iter().map(|&h| json!({ "value": group_ids[h] })))
            .collect();
        if members.is_empty() {
            continue;
        }
        let patch = json!({
            "schemas": [PATCH_OP],
            "Operations": [{ "op": "add", "path": "members", "value": members }]
        });
        expect_status(
            app.send(Method::PATCH, &format!("/scim/v2/Groups/{}", group_ids[g]), &patch)
                .await,
            200,
            "adding members",
        )
        .await?;
    }
    Ok((population, group_ids))
}

#[test]
fn a_users_groups_are_the_closure_of_its_memberships_in_a_get_and_in_a_list() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let app = runtime.block_on(spawn_app());
    let mut runner = TestRunner::new(config(GROUP_CASES));
    let result = runner.run(&memberships(), |m| {
        runtime.block_on(async {
            let (population, group_ids) = build_memberships(&app, &m).await?;
            let listed = list_users(&app, &[]).await?;
            for u in 0..m.users {
                let expected: BTreeMap<String, String> = expected_groups(&m, u)
                    .into_iter()
                    .map(|(g, kind)| (group_ids[g].clone(), kind.to_string()))
                    .collect();
                let id = population.id(u);
                let got = expect_status(app.get(&format!("/scim/v2/Users/{id}")).await, 200, "GET of a user").await?;
                if shown_groups(&got) != expected {
                    return Err(fail(format!("GET of user {u} shows {got}, expected {expected:?}")));
                }
                let in_list = resources(&listed).iter().find(|user| id_of(user) == id);
                if in_list.map(shown_groups) != Some(expected.clone()) {
                    return Err(fail(format!(
                        "the list shows user {u} as {in_list:?}, expected {expected:?}"
                    )));
                }
            }
            Ok(())
        })
    });
    report(result);
}
