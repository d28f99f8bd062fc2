//! Resources as JSON: validation of what clients write (POST, PUT), the
//! projection of what scimd returns (`attributes`, `excludedAttributes`,
//! `returned`), and the scalar values a store indexes for filtering.
//!
//! Every rule comes from the [`SchemaRegistry`]; the few scimd-specific
//! policies (lenient coercions for Entra ID, the strict `members.type`) are
//! named where they are applied.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Timelike, Utc};
use serde_json::{Map, Value};

use super::json::get_ci;
use super::schema::{
    AttrType, AttributeDef, ExtensionRef, Mutability, Returned, Schema, SchemaRegistry, strip_urn_prefix,
};
use super::{ResourceKind, ScimError, ScimResult};

/// The longest string value accepted, in characters.
pub const MAX_STRING_CHARS: usize = 65_536;

/// Canonical values that are a closed list rather than a suggestion:
/// `(resource kind, attribute path)`.
const STRICT_CANONICAL: [(ResourceKind, &str); 1] = [(ResourceKind::Group, "members.type")];

/// A resource accepted for writing.
///
/// `document` holds `schemas`, `externalId` and the schema attributes in
/// schema order, extension attributes under their URN key; never `id`,
/// `meta`, read-only or write-only attributes. The store adds `id` and `meta`.
pub struct ValidatedWrite {
    pub document: Map<String, Value>,
    /// The cleartext `password`, taken out of the document.
    pub password: Option<String>,
}

impl fmt::Debug for ValidatedWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatedWrite")
            .field("document", &self.document)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Validates a resource written by POST (`existing` is `None`) or PUT
/// (`existing` is the stored document) and normalizes it.
pub fn validate_write(
    reg: &SchemaRegistry,
    kind: ResourceKind,
    input: &Value,
    existing: Option<&Value>,
) -> ScimResult<ValidatedWrite> {
    let Value::Object(input) = input else {
        return Err(ScimError::invalid_syntax("the resource must be a JSON object"));
    };
    let mut writer = Writer::new(reg, kind);
    for (key, value) in input {
        writer.top_level(key, value)?;
    }
    writer.check_required()?;
    if let Some(Value::Object(existing)) = existing {
        writer.check_immutable(existing)?;
    }
    Ok(writer.finish())
}

/// One validation pass. Values are collected per container: index 0 holds
/// the core and common attributes, index `i + 1` the extension `exts[i]`.
struct Writer<'r> {
    kind: ResourceKind,
    common: &'r [AttributeDef],
    core: &'r Schema,
    exts: Vec<(ExtensionRef, &'r Schema)>,
    values: Vec<Map<String, Value>>,
    seen: HashSet<(usize, String)>,
    password: Option<String>,
}

impl<'r> Writer<'r> {
    fn new(reg: &'r SchemaRegistry, kind: ResourceKind) -> Self {
        let exts: Vec<_> = reg
            .extensions(kind)
            .iter()
            .filter_map(|e| reg.schema(e.schema_urn).map(|s| (*e, s)))
            .collect();
        Self {
            kind,
            common: reg.common_attributes(),
            core: reg.core_schema(kind),
            values: vec![Map::new(); exts.len() + 1],
            exts,
            seen: HashSet::new(),
            password: None,
        }
    }

    fn top_level(&mut self, key: &str, value: &Value) -> ScimResult<()> {
        if key.eq_ignore_ascii_case("schemas") {
            return check_schemas(value);
        }
        let urns: Vec<&'static str> = self.exts.iter().map(|(e, _)| e.schema_urn).collect();
        for (i, urn) in urns.into_iter().enumerate() {
            if key.eq_ignore_ascii_case(urn) {
                return self.container_object(i + 1, key, value);
            }
            if let Some(name) = strip_urn_prefix(key, urn) {
                return self.attribute(i + 1, name, value);
            }
        }
        let core_urn = self.core.id.as_str();
        if key.eq_ignore_ascii_case(core_urn) {
            return self.container_object(0, key, value);
        }
        if let Some(name) = strip_urn_prefix(key, core_urn) {
            return self.attribute(0, name, value);
        }
        if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            return Err(ScimError::invalid_syntax(format!(
                "unknown schema or attribute '{key}'"
            )));
        }
        self.attribute(0, key, value)
    }

    /// An object of attributes keyed by a schema URN.
    fn container_object(&mut self, container: usize, key: &str, value: &Value) -> ScimResult<()> {
        match value {
            Value::Null => Ok(()),
            Value::Object(attrs) => {
                for (name, v) in attrs {
                    self.attribute(container, name, v)?;
                }
                Ok(())
            }
            _ => Err(ScimError::invalid_syntax(format!("'{key}' must be a JSON object"))),
        }
    }

    fn display_path(&self, container: usize, name: &str) -> String {
        match container.checked_sub(1).and_then(|i| self.exts.get(i)) {
            Some((ext, _)) => format!("{}:{name}", ext.schema_urn),
            None => name.to_string(),
        }
    }

    fn attribute(&mut self, container: usize, name: &str, value: &Value) -> ScimResult<()> {
        let def = match container.checked_sub(1) {
            Some(i) => self.exts.get(i).and_then(|(_, s)| s.attribute(name)),
            None => find(self.common, name).or_else(|| self.core.attribute(name)),
        };
        let Some(def) = def else {
            let path = self.display_path(container, name);
            return Err(ScimError::invalid_syntax(format!("unknown attribute '{path}'")));
        };
        let path = self.display_path(container, &def.name);
        if !self.seen.insert((container, def.name.clone())) {
            return Err(ScimError::invalid_syntax(format!(
                "attribute '{path}' is given more than once"
            )));
        }
        match def.mutability {
            // Read-only values are the server's; clients echo them back.
            Mutability::ReadOnly => Ok(()),
            Mutability::WriteOnly => {
                let converted = convert(self.kind, def, value, &path, false)?;
                if def.name == "password" {
                    self.password = match converted {
                        Some(Value::String(p)) if p.is_empty() => {
                            return Err(ScimError::invalid_value("'password' must not be empty"));
                        }
                        Some(Value::String(p)) => Some(p),
                        _ => None,
                    };
                }
                Ok(())
            }
            Mutability::ReadWrite | Mutability::Immutable => {
                if let Some(v) = convert(self.kind, def, value, &path, false)?
                    && let Some(map) = self.values.get_mut(container)
                {
                    map.insert(def.name.clone(), v);
                }
                Ok(())
            }
        }
    }

    /// `(container index, attribute definitions, extension)` of every container.
    fn containers(&self) -> Vec<(usize, &'r [AttributeDef], Option<ExtensionRef>)> {
        let core = std::iter::once((0, self.core.attributes.as_slice(), None));
        let exts = self
            .exts
            .iter()
            .enumerate()
            .map(|(i, (ext, schema))| (i + 1, schema.attributes.as_slice(), Some(*ext)));
        core.chain(exts).collect()
    }

    fn check_required(&self) -> ScimResult<()> {
        for (container, attrs, ext) in self.containers() {
            let values = &self.values[container];
            if let Some(ext) = ext
                && values.is_empty()
            {
                if ext.required {
                    return Err(ScimError::invalid_value(format!(
                        "schema extension '{}' is required",
                        ext.schema_urn
                    )));
                }
                continue;
            }
            for def in attrs.iter().filter(|d| d.required && writable(d)) {
                let path = self.display_path(container, &def.name);
                match values.get(&def.name) {
                    None => {
                        return Err(ScimError::invalid_value(format!("'{path}' is required")));
                    }
                    Some(v) if is_blank(v) => {
                        return Err(ScimError::invalid_value(format!("'{path}' must not be empty")));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// RFC 7644 §3.5.1: a replace may not change a top-level immutable
    /// attribute that already has a value. Omitting it keeps the stored value.
    fn check_immutable(&mut self, existing: &Map<String, Value>) -> ScimResult<()> {
        for (container, attrs, ext) in self.containers() {
            let stored = match ext {
                None => Some(existing),
                Some(ext) => match get_ci(existing, ext.schema_urn) {
                    Some(Value::Object(m)) => Some(m),
                    _ => None,
                },
            };
            let Some(stored) = stored else { continue };
            for def in attrs.iter().filter(|d| d.mutability == Mutability::Immutable) {
                let Some(old) = get_ci(stored, &def.name).filter(|v| !v.is_null()) else {
                    continue;
                };
                let path = self.display_path(container, &def.name);
                let values = &mut self.values[container];
                match values.get(&def.name) {
                    Some(new) if !values_equal(def, old, new) => {
                        return Err(ScimError::mutability(format!(
                            "'{path}' is immutable and already has a value"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        values.insert(def.name.clone(), old.clone());
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> ValidatedWrite {
        let mut document = Map::new();
        let mut schemas = vec![Value::from(self.core.id.clone())];
        for (i, (ext, _)) in self.exts.iter().enumerate() {
            if self.values.get(i + 1).is_some_and(|m| !m.is_empty()) {
                schemas.push(Value::from(ext.schema_urn));
            }
        }
        document.insert("schemas".into(), Value::Array(schemas));
        for (container, attrs, ext) in self.containers() {
            let values = std::mem::take(&mut self.values[container]);
            let ordered = in_schema_order(values, self.common.iter().chain(attrs));
            match ext {
                None => document.extend(ordered),
                Some(ext) if !ordered.is_empty() => {
                    document.insert(ext.schema_urn.to_string(), Value::Object(ordered));
                }
                Some(_) => {}
            }
        }
        ValidatedWrite {
            document,
            password: self.password,
        }
    }
}

fn writable(def: &AttributeDef) -> bool {
    matches!(
        def.mutability,
        Mutability::ReadWrite | Mutability::Immutable | Mutability::WriteOnly
    )
}

fn check_schemas(value: &Value) -> ScimResult<()> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(()),
        _ => Err(ScimError::invalid_syntax("'schemas' must be an array of strings")),
    }
}

/// Converts one attribute's value. `None` means unassigned (`null`, `[]`, or
/// a complex value without any sub-attribute).
fn convert(
    kind: ResourceKind,
    def: &AttributeDef,
    value: &Value,
    path: &str,
    nested: bool,
) -> ScimResult<Option<Value>> {
    if def.multi_valued {
        let items: &[Value] = match value {
            Value::Null => return Ok(None),
            Value::Array(items) => items,
            single => std::slice::from_ref(single),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if item.is_array() {
                return Err(ScimError::invalid_value(format!(
                    "'{path}' must be an array of values, not of arrays"
                )));
            }
            if let Some(v) = convert_single(kind, def, item, path, nested)? {
                out.push(v);
            }
        }
        if def.is_complex() {
            let primaries = out.iter().filter(|v| v.get("primary") == Some(&Value::Bool(true)));
            if primaries.count() > 1 {
                return Err(ScimError::invalid_value(format!(
                    "at most one value of '{path}' may be primary"
                )));
            }
        }
        Ok((!out.is_empty()).then_some(Value::Array(out)))
    } else {
        match value {
            Value::Array(items) if items.is_empty() => Ok(None),
            Value::Array(_) => Err(ScimError::invalid_value(format!(
                "'{path}' is single-valued; an array was given"
            ))),
            single => convert_single(kind, def, single, path, nested),
        }
    }
}

fn convert_single(
    kind: ResourceKind,
    def: &AttributeDef,
    value: &Value,
    path: &str,
    nested: bool,
) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if value.is_object() && (nested || def.attr_type != AttrType::Complex) {
        if nested {
            return Err(ScimError::invalid_syntax(format!(
                "'{path}' is nested deeper than the schema allows"
            )));
        }
        return Err(wrong_type(path, def));
    }
    let converted = match def.attr_type {
        AttrType::Complex => return convert_complex(kind, def, value, path),
        AttrType::String | AttrType::Reference => {
            let s = string_of(value, path, def)?;
            Value::String(canonicalize(kind, def, s, path)?)
        }
        AttrType::Binary => {
            let s = string_of(value, path, def)?;
            if !is_base64(s) {
                return Err(ScimError::invalid_value(format!("'{path}' must be base64-encoded")));
            }
            Value::String(s.to_string())
        }
        AttrType::Boolean => match value {
            Value::Bool(b) => Value::Bool(*b),
            // Entra ID sends booleans as "True" / "False".
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(wrong_type(path, def)),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                _ => return Err(wrong_type(path, def)),
            },
            _ => return Err(wrong_type(path, def)),
        },
        AttrType::Decimal => match value {
            Value::Number(n) => Value::Number(n.clone()),
            _ => return Err(wrong_type(path, def)),
        },
        AttrType::DateTime => {
            let s = string_of(value, path, def)?;
            match parse_datetime(s) {
                Some(dt) => Value::String(dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
                None => {
                    return Err(ScimError::invalid_value(format!(
                        "'{path}' must be an xsd:dateTime such as 2015-09-15T04:56:22Z"
                    )));
                }
            }
        }
    };
    Ok(Some(converted))
}

fn convert_complex(kind: ResourceKind, def: &AttributeDef, value: &Value, path: &str) -> ScimResult<Option<Value>> {
    let given = match value {
        Value::Object(o) => o,
        // Entra ID sends the enterprise `manager` as the manager's id alone.
        Value::String(s) if !def.multi_valued && def.sub_attribute("value").is_some() => {
            if s.is_empty() {
                return Ok(None);
            }
            let sub = def.sub_attribute("value").map(|d| d.name.clone()).unwrap_or_default();
            let wrapped = Value::Object(Map::from_iter([(sub, Value::String(s.clone()))]));
            return convert_complex(kind, def, &wrapped, path);
        }
        _ => return Err(wrong_type(path, def)),
    };
    if given.values().all(Value::is_null) {
        return Ok(None);
    }
    let mut values = Map::new();
    let mut seen = HashSet::new();
    for (key, v) in given {
        let Some(sub) = def.sub_attribute(key) else {
            return Err(ScimError::invalid_syntax(format!("unknown attribute '{path}.{key}'")));
        };
        let sub_path = format!("{path}.{}", sub.name);
        if !seen.insert(sub.name.as_str()) {
            return Err(ScimError::invalid_syntax(format!(
                "attribute '{sub_path}' is given more than once"
            )));
        }
        if matches!(sub.mutability, Mutability::ReadOnly | Mutability::WriteOnly) {
            continue;
        }
        if let Some(c) = convert(kind, sub, v, &sub_path, !sub.is_complex())? {
            values.insert(sub.name.clone(), c);
        }
    }
    for sub in def.sub_attributes.iter().filter(|s| s.required && writable(s)) {
        match values.get(&sub.name) {
            None => {
                return Err(ScimError::invalid_value(format!("'{path}.{}' is required", sub.name)));
            }
            Some(v) if is_blank(v) => {
                return Err(ScimError::invalid_value(format!(
                    "'{path}.{}' must not be empty",
                    sub.name
                )));
            }
            Some(_) => {}
        }
    }
    let ordered = in_schema_order(values, def.sub_attributes.iter());
    Ok((!ordered.is_empty()).then_some(Value::Object(ordered)))
}

fn wrong_type(path: &str, def: &AttributeDef) -> ScimError {
    let expected = match def.attr_type {
        AttrType::Complex => "a complex value (JSON object)",
        AttrType::String => "a string",
        AttrType::Boolean => "a boolean",
        AttrType::Decimal => "a decimal number",
        AttrType::Integer => "an integer",
        AttrType::DateTime => "a dateTime string",
        AttrType::Binary => "a base64 string",
        AttrType::Reference => "a reference (URI string)",
    };
    ScimError::invalid_value(format!("'{path}' must be {expected}"))
}

fn string_of<'v>(value: &'v Value, path: &str, def: &AttributeDef) -> ScimResult<&'v str> {
    let Value::String(s) = value else {
        return Err(wrong_type(path, def));
    };
    if s.len() > MAX_STRING_CHARS && s.chars().count() > MAX_STRING_CHARS {
        return Err(ScimError::invalid_value(format!(
            "'{path}' is longer than {MAX_STRING_CHARS} characters"
        )));
    }
    Ok(s)
}

/// Rewrites a value matching a canonical value case-insensitively to the
/// canonical spelling; other values pass, except for the closed lists of
/// [`STRICT_CANONICAL`].
fn canonicalize(kind: ResourceKind, def: &AttributeDef, s: &str, path: &str) -> ScimResult<String> {
    if let Some(canonical) = def.canonical_values.iter().find(|c| c.eq_ignore_ascii_case(s)) {
        return Ok(canonical.clone());
    }
    if STRICT_CANONICAL.iter().any(|(k, p)| *k == kind && *p == path) {
        return Err(ScimError::invalid_value(format!(
            "'{path}' must be one of {}",
            def.canonical_values.join(", ")
        )));
    }
    Ok(s.to_string())
}

fn is_blank(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.trim().is_empty())
}

/// RFC 4648 §4 base64, padded or not.
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    let alphabet = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    let length_ok = if padding == 0 {
        body.len() % 4 != 1
    } else {
        padding <= 2 && s.len().is_multiple_of(4)
    };
    alphabet && length_ok
}

fn values_equal(def: &AttributeDef, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y))
            if !def.case_exact && matches!(def.attr_type, AttrType::String | AttrType::Reference) =>
        {
            x.to_lowercase() == y.to_lowercase()
        }
        _ => a == b,
    }
}

/// `values` reordered as `defs` lists them; names not in `defs` keep their order at the end.
fn in_schema_order<'a>(
    mut values: Map<String, Value>,
    defs: impl Iterator<Item = &'a AttributeDef>,
) -> Map<String, Value> {
    let mut ordered = Map::new();
    for def in defs {
        if let Some(v) = values.remove(&def.name) {
            ordered.insert(def.name.clone(), v);
        }
    }
    ordered.extend(values);
    ordered
}

fn find<'a>(attrs: &'a [AttributeDef], name: &str) -> Option<&'a AttributeDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let dt = match DateTime::parse_from_rfc3339(s) {
        Ok(dt) => dt.with_timezone(&Utc),
        // xsd:dateTime allows omitting the offset; read such values as UTC.
        Err(_) => NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?.and_utc(),
    };
    let in_range = (0..=9999).contains(&dt.year());
    (in_range && dt.nanosecond() < 1_000_000_000).then_some(dt)
}

/// Normalizes an xsd:dateTime / RFC 3339 string to UTC with microsecond
/// precision (`2011-05-13T04:42:34.000000Z`), so that text order is time
/// order. `None` when `s` is not a date-time.
pub fn normalize_datetime(s: &str) -> Option<String> {
    parse_datetime(s).map(|dt| dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

// ---------------------------------------------------------------------------
// Projection

/// Which attributes a response carries (RFC 7644 §3.4.2.5, §3.9), on top of
/// each attribute's `returned` characteristic.
///
/// Unknown names in `attributes` and `excludedAttributes` are ignored rather
/// than rejected, as most servers do: the RFC does not name an error, and a
/// client asking for an attribute scimd lacks gets what exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    include: Option<Vec<Selector>>,
    exclude: Vec<Selector>,
    /// Lowercase names of top-level attributes returned always.
    always: Vec<String>,
}

/// One resolved name of `attributes` / `excludedAttributes`, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    /// The extension URN the attribute lives under; `None` for core and common.
    container: Option<String>,
    /// `None` selects the whole container.
    attr: Option<String>,
    sub: Option<String>,
}

impl Selector {
    /// Whether this names `attr` as a whole, directly or through its container.
    fn covers(&self, container: Option<&str>, attr: &str) -> bool {
        self.container.as_deref() == container
            && match &self.attr {
                None => true,
                Some(a) => a == attr && self.sub.is_none(),
            }
    }

    /// The sub-attribute of `attr` this names, if any.
    fn sub_of(&self, container: Option<&str>, attr: &str) -> Option<&str> {
        (self.container.as_deref() == container && self.attr.as_deref() == Some(attr))
            .then_some(self.sub.as_deref())
            .flatten()
    }
}

impl Projection {
    /// Every attribute returned by default.
    pub fn all() -> Self {
        Self::default()
    }

    /// Neither `attributes` nor `excludedAttributes` was given.
    pub fn is_default(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// Parses the comma-separated `attributes` and `excludedAttributes`
    /// query values. When both are given, `attributes` selects and
    /// `excludedAttributes` then removes.
    pub fn parse(
        reg: &SchemaRegistry,
        kind: ResourceKind,
        attributes: Option<&str>,
        excluded_attributes: Option<&str>,
    ) -> ScimResult<Projection> {
        let always = reg
            .common_attributes()
            .iter()
            .chain(&reg.core_schema(kind).attributes)
            .filter(|d| d.returned == Returned::Always)
            .map(|d| d.name.to_ascii_lowercase())
            .collect();
        Ok(Projection {
            include: attributes
                .filter(|list| !is_blank_list(list))
                .map(|list| selectors(reg, kind, list)),
            exclude: excluded_attributes
                .map(|list| selectors(reg, kind, list))
                .unwrap_or_default(),
            always,
        })
    }

    /// Whether the top-level attribute `name` (`members`, `groups`, or an
    /// extension URN) can appear in the response: a hint that lets a store
    /// skip loading data. [`project`] still applies `returned`.
    pub fn includes(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        if self.always.contains(&name) {
            return true;
        }
        let extension = name.starts_with("urn:");
        // Whether the selector reaches into the attribute at all.
        let touches = |s: &Selector| match (&s.container, &s.attr) {
            (Some(urn), _) => *urn == name,
            (None, None) => !extension,
            (None, Some(a)) => *a == name,
        };
        // Whether the selector takes the attribute as a whole.
        let whole = |s: &Selector| s.sub.is_none() && (s.attr.is_none() || !extension) && touches(s);
        if let Some(include) = &self.include
            && !include.iter().any(touches)
        {
            return false;
        }
        !self.exclude.iter().any(whole)
    }
}

/// An empty `attributes=` is read as absent rather than as "nothing".
fn is_blank_list(list: &str) -> bool {
    list.split(',').all(|n| n.trim().is_empty())
}

fn selectors(reg: &SchemaRegistry, kind: ResourceKind, list: &str) -> Vec<Selector> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if let Some((ext, _)) = reg.extension(kind, name) {
            out.push(Selector {
                container: Some(ext.schema_urn.to_ascii_lowercase()),
                attr: None,
                sub: None,
            });
        } else if name.eq_ignore_ascii_case(kind.core_schema()) {
            out.push(Selector {
                container: None,
                attr: None,
                sub: None,
            });
        } else if let Some(r) = reg.resolve_path(kind, name) {
            out.push(Selector {
                container: r
                    .extension
                    .then(|| r.schema_urn.unwrap_or_default().to_ascii_lowercase()),
                attr: Some(r.attribute.name.to_ascii_lowercase()),
                sub: r.sub_attribute.map(|s| s.name.to_ascii_lowercase()),
            });
        }
    }
    out
}

/// Whether the default view of a stored `kind` document is the document
/// itself. The write path stores only readWrite and immutable attributes
/// and drops empty values, so default projection changes nothing unless one
/// of those is returned only on request or never; none is in the built-in
/// schemas. When this holds, a read can send the stored text as it is.
pub fn stored_is_default_view(reg: &SchemaRegistry, kind: ResourceKind) -> bool {
    fn shown(def: &AttributeDef) -> bool {
        matches!(def.returned, Returned::Default | Returned::Always) && def.sub_attributes.iter().all(shown)
    }
    // Read-only and write-only attributes are never stored.
    let stored_shown =
        |def: &&AttributeDef| matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly) || shown(def);
    let extensions = reg.extensions(kind).iter().filter_map(|ext| reg.schema(ext.schema_urn));
    reg.common_attributes()
        .iter()
        .chain(&reg.core_schema(kind).attributes)
        .chain(extensions.flat_map(|schema| &schema.attributes))
        .all(|def| stored_shown(&def))
}

/// The representation of a stored resource to return, per `projection` and
/// the schema's `returned` rules. Keys come out as `schemas`, `id`,
/// `externalId`, the rest in stored order, and `meta` last. Takes the
/// resource by value: what is kept is moved, not copied (a page of 100
/// users spent an eighth of its time copying here).
pub fn project(reg: &SchemaRegistry, kind: ResourceKind, resource: Value, projection: &Projection) -> Value {
    let Value::Object(stored) = resource else {
        return resource;
    };
    let core = reg.core_schema(kind);
    let mut kept: Vec<(String, Value)> = Vec::with_capacity(stored.len());
    for (key, value) in stored {
        let projected = if let Some((ext, schema)) = reg.extension(kind, &key) {
            project_extension(schema, &ext.schema_urn.to_ascii_lowercase(), value, projection)
        } else {
            match reg.common_attribute(&key).or_else(|| core.attribute(&key)) {
                Some(def) => project_attr(def, value, None, projection),
                // Data outside the schema is passed through unless a list was asked for.
                None => projection.include.is_none().then_some(value),
            }
        };
        if let Some(v) = projected {
            kept.push((key, v));
        }
    }
    let mut out = Map::new();
    for first in ["schemas", "id", "externalId"] {
        if let Some(i) = kept.iter().position(|(k, _)| k.as_str() == first) {
            let (k, v) = kept.remove(i);
            out.insert(k, v);
        }
    }
    let meta = kept
        .iter()
        .position(|(k, _)| k.as_str() == "meta")
        .map(|i| kept.remove(i));
    out.extend(kept);
    if let Some((k, v)) = meta {
        out.insert(k, v);
    }
    Value::Object(out)
}

fn project_extension(schema: &Schema, container: &str, value: Value, projection: &Projection) -> Option<Value> {
    let Value::Object(attrs) = value else {
        return projection.include.is_none().then_some(value);
    };
    let mut out = Map::new();
    for (key, v) in attrs {
        let projected = match schema.attribute(&key) {
            Some(def) => project_attr(def, v, Some(container), projection),
            None => projection.include.is_none().then_some(v),
        };
        if let Some(p) = projected {
            out.insert(key, p);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn project_attr(def: &AttributeDef, value: Value, container: Option<&str>, projection: &Projection) -> Option<Value> {
    if def.returned == Returned::Never {
        return None;
    }
    let attr = def.name.to_ascii_lowercase();
    let named_subs: Vec<&str> = projection
        .include
        .iter()
        .flatten()
        .filter_map(|s| s.sub_of(container, &attr))
        .collect();
    // `None`: every sub-attribute returned by default.
    let mut only_subs: Option<&[&str]> = None;
    let mut dropped_subs: Vec<&str> = Vec::new();
    if def.returned != Returned::Always {
        match &projection.include {
            Some(include) if !include.iter().any(|s| s.covers(container, &attr)) => {
                if named_subs.is_empty() {
                    return None;
                }
                only_subs = Some(&named_subs);
            }
            Some(_) => {}
            None if def.returned == Returned::Request => return None,
            None => {}
        }
        if projection.exclude.iter().any(|s| s.covers(container, &attr)) {
            return None;
        }
        dropped_subs = projection
            .exclude
            .iter()
            .filter_map(|s| s.sub_of(container, &attr))
            .collect();
    }
    if !def.is_complex() {
        return Some(value);
    }
    let keep = |key: &str| match def.sub_attribute(key) {
        None => only_subs.is_none(),
        Some(sub) => {
            let name = sub.name.to_ascii_lowercase();
            match sub.returned {
                Returned::Never => false,
                Returned::Always => true,
                Returned::Request => named_subs.contains(&name.as_str()),
                Returned::Default => {
                    only_subs.is_none_or(|only| only.contains(&name.as_str())) && !dropped_subs.contains(&name.as_str())
                }
            }
        }
    };
    let filter = |v: Value| match v {
        Value::Object(mut o) => {
            o.retain(|k, _| keep(k));
            (!o.is_empty()).then_some(Value::Object(o))
        }
        other => Some(other),
    };
    match value {
        Value::Array(items) => {
            let kept: Vec<Value> = items.into_iter().filter_map(filter).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => filter(other),
    }
}

// ---------------------------------------------------------------------------
// Index values

/// A scalar a store indexes for filtering and sorting.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexedScalar {
    Text {
        value: String,
        case_exact: bool,
    },
    Bool(bool),
    /// Integers and decimals.
    Number(f64),
    /// UTC, microsecond precision, as [`normalize_datetime`] writes it.
    DateTime(String),
}

/// One indexed value of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexValue {
    /// Lowercase canonical path (`emails.value`); extension attributes are
    /// prefixed by their lowercase URN and a colon. Equals
    /// [`crate::scim::schema::ResolvedAttr::index_key`].
    pub attr: String,
    /// The position of the multi-valued element this value belongs to; the
    /// sub-attributes of one element share it.
    pub element: Option<u32>,
    pub value: IndexedScalar,
}

/// The scalar a JSON value of attribute `def` indexes as, if any: the
/// conversion [`index_values`] applies, usable for filter operands too.
pub fn indexed_scalar(def: &AttributeDef, value: &Value) -> Option<IndexedScalar> {
    match def.attr_type {
        AttrType::String | AttrType::Reference | AttrType::Binary => Some(IndexedScalar::Text {
            value: value.as_str()?.to_string(),
            case_exact: def.case_exact,
        }),
        AttrType::Boolean => value.as_bool().map(IndexedScalar::Bool),
        AttrType::Integer | AttrType::Decimal => value.as_f64().map(IndexedScalar::Number),
        AttrType::DateTime => normalize_datetime(value.as_str()?).map(IndexedScalar::DateTime),
        AttrType::Complex => None,
    }
}

/// Flattens a stored document into the values a store indexes. Skips
/// `schemas`, `id`, `meta` and other read-only top-level attributes (a
/// User's derived `groups`), write-only attributes, and Group `members`,
/// which the store keeps apart.
pub fn index_values(reg: &SchemaRegistry, kind: ResourceKind, document: &Value) -> Vec<IndexValue> {
    let mut out = Vec::new();
    let Value::Object(doc) = document else {
        return out;
    };
    let core = reg.core_schema(kind);
    for (key, value) in doc {
        if let Some((ext, schema)) = reg.extension(kind, key) {
            let Value::Object(attrs) = value else { continue };
            let prefix = format!("{}:", ext.schema_urn.to_ascii_lowercase());
            for (k, v) in attrs {
                if let Some(def) = schema.attribute(k).filter(|d| indexed(kind, d)) {
                    index_attr(def, v, &prefix, None, &mut out);
                }
            }
            continue;
        }
        let def = reg.common_attribute(key).or_else(|| core.attribute(key));
        if let Some(def) = def.filter(|d| indexed(kind, d) && super::filter::column_source(kind, &d.name).is_none()) {
            index_attr(def, value, "", None, &mut out);
        }
    }
    out
}

fn indexed(kind: ResourceKind, def: &AttributeDef) -> bool {
    let stored_apart = kind == ResourceKind::Group && def.name == "members";
    !stored_apart && !matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly)
}

/// Indexes `value` of `def` under `prefix`; `element` is the index of the
/// enclosing multi-valued element, if any.
fn index_attr(def: &AttributeDef, value: &Value, prefix: &str, element: Option<u32>, out: &mut Vec<IndexValue>) {
    let attr = format!("{prefix}{}", def.name.to_ascii_lowercase());
    let items: Vec<(Option<u32>, &Value)> = match value {
        Value::Array(items) if def.multi_valued => items
            .iter()
            .enumerate()
            .map_while(|(i, v)| u32::try_from(i).ok().map(|i| (element.or(Some(i)), v)))
            .collect(),
        single => vec![(element, single)],
    };
    for (element, item) in items {
        if def.is_complex() {
            let Value::Object(subs) = item else { continue };
            let sub_prefix = format!("{attr}.");
            for (k, v) in subs {
                if let Some(sub) = def.sub_attribute(k).filter(|s| s.mutability != Mutability::WriteOnly) {
                    index_attr(sub, v, &sub_prefix, element, out);
                }
            }
        } else if let Some(value) = indexed_scalar(def, item) {
            out.push(IndexValue {
                attr: attr.clone(),
                element,
                value,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::{ENTERPRISE_USER_SCHEMA, ScimType};

    const USER: ResourceKind = ResourceKind::User;
    const GROUP: ResourceKind = ResourceKind::Group;
    const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

    /// RFC 7643 §8.2.
    const RFC_FULL_USER: &str = r#"{
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
      "id": "2819c223-7f76-453a-919d-413861904646",
      "externalId": "701984",
      "userName": "bjensen@example.com",
      "name": {
        "formatted": "Ms. Barbara J Jensen, III",
        "familyName": "Jensen",
        "givenName": "Barbara",
        "middleName": "Jane",
        "honorificPrefix": "Ms.",
        "honorificSuffix": "III"
      },
      "displayName": "Babs Jensen",
      "nickName": "Babs",
      "profileUrl": "https://login.example.com/bjensen",
      "emails": [
        {"value": "bjensen@example.com", "type": "work", "primary": true},
        {"value": "babs@jensen.org", "type": "home"}
      ],
      "addresses": [
        {
          "type": "work",
          "streetAddress": "100 Universal City Plaza",
          "locality": "Hollywood",
          "region": "CA",
          "postalCode": "91608",
          "country": "USA",
          "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
          "primary": true
        },
        {
          "type": "home",
          "streetAddress": "456 Hollywood Blvd",
          "locality": "Hollywood",
          "region": "CA",
          "postalCode": "91608",
          "country": "USA",
          "formatted": "456 Hollywood Blvd\nHollywood, CA 91608 USA"
        }
      ],
      "phoneNumbers": [
        {"value": "555-555-5555", "type": "work"},
        {"value": "555-555-4444", "type": "mobile"}
      ],
      "ims": [{"value": "someaimhandle", "type": "aim"}],
      "photos": [
        {"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"},
        {"value": "https://photos.example.com/profilephoto/72930000000Ccne/T", "type": "thumbnail"}
      ],
      "userType": "Employee",
      "title": "Tour Guide",
      "preferredLanguage": "en-US",
      "locale": "en-US",
      "timezone": "America/Los_Angeles",
      "active": true,
      "password": "t1meMa$heen",
      "groups": [
        {
          "value": "e9e30dba-f08f-4109-8486-d5c6a331660a",
          "$ref": "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a",
          "display": "Tour Guides"
        },
        {
          "value": "fc348aa8-3835-40eb-a20b-c726e15c55b5",
          "$ref": "https://example.com/v2/Groups/fc348aa8-3835-40eb-a20b-c726e15c55b5",
          "display": "Employees"
        },
        {
          "value": "71ddacd2-a8e7-49b8-a5db-ae50d0a5bfd7",
          "$ref": "https://example.com/v2/Groups/71ddacd2-a8e7-49b8-a5db-ae50d0a5bfd7",
          "display": "US Employees"
        }
      ],
      "x509Certificates": [
        {
          "value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMxEzARBgNVBAgMCkNhbGlmb3JuaWExFDASBgNVBAoMC2V4YW1wbGUuY29tMRQwEgYDVQQDDAtleGFtcGxlLmNvbTAeFw0xMTEwMjIwNjI0MzFaFw0xMjEwMDQwNjI0MzFaMH8xCzAJBgNVBAYTAlVTMRMwEQYDVQQIDApDYWxpZm9ybmlhMRQwEgYDVQQKDAtleGFtcGxlLmNvbTEhMB8GA1UEAwwYTXMuIEJhcmJhcmEgSiBKZW5zZW4gSUlJMSIwIAYJKoZIhvcNAQkBFhNiamVuc2VuQGV4YW1wbGUuY29tMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA7Kr+Dcds/JQ5GwejJFcBIP682X3xpjis56AK02bc1FLgzdLI8auoR+cC9/Vrh5t66HkQIOdA4unHh0AaZ4xL5PhVbXIPMB5vAPKpzz5iPSi8xO8SL7I7SDhcBVJhqVqr3HgllEG6UClDdHO7nkLuwXq8HcISKkbT5WFTVfFZzidPl8HZ7DhXkZIRtJwBweq4bvm3hM1Os7UQH05ZS6cVDgweKNwdLLrT51ikSQG3DYrl+ft781UQRIqxgwqCfXEuDiinPh0kkvIi5jivVu1Z9QiwlYEdRbLJ4zJQBmDrSGTMYn4lRc2HgHO4DqB/bnMVorHB0CC6AV1QoFK4GPe1LwIDAQABo3sweTAJBgNVHRMEAjAAMCwGCWCGSAGG+EIBDQQfFh1PcGVuU1NMIEdlbmVyYXRlZCBDZXJ0aWZpY2F0ZTAdBgNVHQ4EFgQU8pD0U0vsZIsaA16lL8En8bx0F/gwHwYDVR0jBBgwFoAUdGeKitcaF7gnzsNwDx708kqaVt0wDQYJKoZIhvcNAQEFBQADgYEAA81SsFnOdYJtNg5Tcq+/ByEDrBgnusx0jloUhByPMEVkoMZ3J7j1ZgI8rAbOkNngX8+pKfTiDz1RC4+dx8oU6Za+4NJXUjlL5CvV6BEYb1+QAEJwitTVvxB/A67g42/vzgAtoRUeDov1+GFiBZ+GNF/cAYKcMtGcrs2i97ZkJMo="
        }
      ],
      "meta": {
        "resourceType": "User",
        "created": "2010-01-23T04:56:22Z",
        "lastModified": "2011-05-13T04:42:34Z",
        "version": "W\/\"a330bc54f0671c9\"",
        "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
      }
    }"#;

    /// RFC 7643 §8.4.
    const RFC_GROUP: &str = r#"{
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
      "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
      "displayName": "Tour Guides",
      "members": [
        {
          "value": "2819c223-7f76-453a-919d-413861904646",
          "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
          "display": "Babs Jensen"
        },
        {
          "value": "902c246b-6245-4190-8e05-00816be7344a",
          "$ref": "https://example.com/v2/Users/902c246b-6245-4190-8e05-00816be7344a",
          "display": "Mandy Pepperidge"
        }
      ],
      "meta": {
        "resourceType": "Group",
        "created": "2010-01-23T04:56:22Z",
        "lastModified": "2011-05-13T04:42:34Z",
        "version": "W\/\"3694e05e9dff592\"",
        "location": "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a"
      }
    }"#;

    fn reg() -> &'static SchemaRegistry {
        SchemaRegistry::builtin()
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("test fixture is JSON")
    }

    /// RFC 7643 §8.3: the full user with the enterprise extension.
    fn rfc_enterprise_user() -> Value {
        let mut user = parse(RFC_FULL_USER);
        user["schemas"] = json!([CORE_USER, ENTERPRISE_USER_SCHEMA]);
        user[ENTERPRISE_USER_SCHEMA] = json!({
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {
                "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                "displayName": "John Smith"
            }
        });
        user
    }

    fn write(kind: ResourceKind, input: &Value) -> ScimResult<ValidatedWrite> {
        validate_write(reg(), kind, input, None)
    }

    fn user_doc(input: Value) -> Value {
        Value::Object(write(USER, &input).expect("the user is valid").document)
    }

    fn rejected(kind: ResourceKind, input: Value) -> ScimError {
        write(kind, &input).expect_err("the input is invalid")
    }

    fn assert_rejected(kind: ResourceKind, input: Value, scim_type: ScimType, mentions: &str) {
        let err = rejected(kind, input);
        assert_eq!((err.status, err.scim_type), (400, Some(scim_type)), "{err}");
        assert!(
            err.detail.contains(mentions),
            "'{}' should mention '{mentions}'",
            err.detail
        );
    }

    fn attr_def(def: Value) -> AttributeDef {
        serde_json::from_value(def).expect("test attribute definition")
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    // -- validate_write --------------------------------------------------

    #[test]
    fn rfc_full_user_example_is_accepted() {
        let written = write(USER, &parse(RFC_FULL_USER)).expect("RFC 7643 §8.2 is valid");
        let doc = Value::Object(written.document);
        assert_eq!(doc["schemas"], json!([CORE_USER]));
        assert_eq!(doc["externalId"], "701984");
        assert_eq!(doc["userName"], "bjensen@example.com");
        assert_eq!(doc["name"]["honorificSuffix"], "III");
        assert_eq!(
            doc["emails"][0],
            json!({"value": "bjensen@example.com", "type": "work", "primary": true})
        );
        assert_eq!(doc["addresses"][0]["primary"], true);
        assert_eq!(doc["active"], true);
        assert_eq!(doc["x509Certificates"].as_array().map(Vec::len), Some(1));
        for absent in ["id", "meta", "groups", "password"] {
            assert!(doc.get(absent).is_none(), "{absent} must not be stored");
        }
        assert_eq!(written.password.as_deref(), Some("t1meMa$heen"));
    }

    #[test]
    fn rfc_enterprise_user_example_is_accepted() {
        let doc = user_doc(rfc_enterprise_user());
        assert_eq!(doc["schemas"], json!([CORE_USER, ENTERPRISE_USER_SCHEMA]));
        let ext = &doc[ENTERPRISE_USER_SCHEMA];
        assert_eq!(ext["department"], "Tour Operations");
        assert_eq!(
            ext["manager"],
            json!({"value": "26118915-6090-4610-87e4-49d8ca9f808d", "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d"}),
            "the read-only manager.displayName is dropped"
        );
    }

    #[test]
    fn rfc_group_example_is_accepted_without_member_display() {
        let doc = write(GROUP, &parse(RFC_GROUP))
            .expect("RFC 7643 §8.4 is valid")
            .document;
        assert_eq!(doc["schemas"], json!([CORE_GROUP]));
        assert_eq!(doc["displayName"], "Tour Guides");
        assert_eq!(
            doc["members"][1],
            json!({
                "value": "902c246b-6245-4190-8e05-00816be7344a",
                "$ref": "https://example.com/v2/Users/902c246b-6245-4190-8e05-00816be7344a"
            })
        );
    }

    #[test]
    fn document_keys_follow_schema_order_with_schemas_and_external_id_first() {
        let doc = user_doc(json!({"active": true, "userName": "a", "externalId": "x", "displayName": "A"}));
        assert_eq!(
            keys(&doc),
            ["schemas", "externalId", "userName", "displayName", "active"]
        );
    }

    #[test]
    fn non_object_input_is_rejected_with_invalid_syntax() {
        for input in [json!([]), json!("user"), json!(null), json!(1)] {
            assert_rejected(USER, input, ScimType::InvalidSyntax, "JSON object");
        }
    }

    #[test]
    fn entra_pascal_case_names_are_rewritten_to_canonical_case() {
        let doc = user_doc(json!({
            "Schemas": [CORE_USER],
            "UserName": "bob@example.com",
            "ExternalID": "e1",
            "Name": {"GivenName": "Bob", "FAMILYNAME": "Jones"},
            "Emails": [{"Value": "bob@example.com", "Type": "Work", "Primary": "True"}],
            "Active": "False",
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER": {"Department": "R&D"}
        }));
        assert_eq!(
            doc,
            json!({
                "schemas": [CORE_USER, ENTERPRISE_USER_SCHEMA],
                "externalId": "e1",
                "userName": "bob@example.com",
                "name": {"familyName": "Jones", "givenName": "Bob"},
                "active": false,
                "emails": [{"value": "bob@example.com", "type": "work", "primary": true}],
                ENTERPRISE_USER_SCHEMA: {"department": "R&D"}
            })
        );
    }

    #[test]
    fn boolean_strings_are_accepted_in_any_case_but_other_strings_are_not() {
        for (given, expected) in [("true", true), ("TRUE", true), ("False", false)] {
            let doc = user_doc(json!({"userName": "a", "active": given}));
            assert_eq!(doc["active"], expected);
        }
        assert_rejected(
            USER,
            json!({"userName": "a", "active": "yes"}),
            ScimType::InvalidValue,
            "active",
        );
        assert_rejected(
            USER,
            json!({"userName": "a", "active": 1}),
            ScimType::InvalidValue,
            "boolean",
        );
    }

    #[test]
    fn unknown_attribute_is_rejected_with_invalid_syntax() {
        assert_rejected(
            USER,
            json!({"userName": "a", "favouriteColour": "blue"}),
            ScimType::InvalidSyntax,
            "favouriteColour",
        );
        assert_rejected(
            GROUP,
            json!({"displayName": "g", "userName": "a"}),
            ScimType::InvalidSyntax,
            "userName",
        );
    }

    #[test]
    fn unknown_sub_attribute_is_rejected_with_invalid_syntax() {
        assert_rejected(
            USER,
            json!({"userName": "a", "name": {"nick": "b"}}),
            ScimType::InvalidSyntax,
            "name.nick",
        );
        assert_rejected(
            USER,
            json!({"userName": "a", "emails": [{"value": "a@b", "label": "x"}]}),
            ScimType::InvalidSyntax,
            "emails.label",
        );
    }

    #[test]
    fn unknown_urn_keyed_object_is_rejected_with_invalid_syntax() {
        assert_rejected(
            USER,
            json!({"userName": "a", "urn:example:custom:User": {"x": 1}}),
            ScimType::InvalidSyntax,
            "urn:example:custom:User",
        );
        assert_rejected(
            GROUP,
            json!({"displayName": "g", ENTERPRISE_USER_SCHEMA: {"department": "x"}}),
            ScimType::InvalidSyntax,
            ENTERPRISE_USER_SCHEMA,
        );
    }

    #[test]
    fn unknown_extension_attribute_is_rejected_with_invalid_syntax() {
        assert_rejected(
            USER,
            json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"badge": "7"}}),
            ScimType::InvalidSyntax,
            "enterprise:2.0:User:badge",
        );
        assert_rejected(
            USER,
            json!({"userName": "a", ENTERPRISE_USER_SCHEMA: "R&D"}),
            ScimType::InvalidSyntax,
            "JSON object",
        );
    }

    #[test]
    fn schemas_must_be_an_array_of_strings() {
        for schemas in [json!(CORE_USER), json!([1]), json!({"a": CORE_USER})] {
            assert_rejected(
                USER,
                json!({"schemas": schemas, "userName": "a"}),
                ScimType::InvalidSyntax,
                "schemas",
            );
        }
    }

    #[test]
    fn unknown_and_legacy_schema_urns_are_ignored() {
        let doc = user_doc(json!({
            "schemas": ["urn:scim:schemas:core:2.0", "urn:scim:schemas:core:1.0", "urn:example:other"],
            "userName": "a"
        }));
        assert_eq!(doc["schemas"], json!([CORE_USER]));
    }

    #[test]
    fn schemas_lists_the_extension_only_when_it_holds_data() {
        let input = json!({"schemas": [CORE_USER, ENTERPRISE_USER_SCHEMA], "userName": "a", ENTERPRISE_USER_SCHEMA: {"department": null}});
        let doc = user_doc(input);
        assert_eq!(doc["schemas"], json!([CORE_USER]));
        assert!(doc.get(ENTERPRISE_USER_SCHEMA).is_none());
        let doc = user_doc(json!({"userName": "a"}));
        assert_eq!(
            doc["schemas"],
            json!([CORE_USER]),
            "absent schemas means the core schema"
        );
    }

    #[test]
    fn urn_qualified_extension_attributes_are_nested_under_the_extension() {
        let doc = user_doc(json!({
            "userName": "a",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
            ENTERPRISE_USER_SCHEMA: {"costCenter": "4130"}
        }));
        assert_eq!(
            doc[ENTERPRISE_USER_SCHEMA],
            json!({"employeeNumber": "42", "costCenter": "4130"})
        );
    }

    #[test]
    fn core_urn_qualified_attributes_are_accepted() {
        let doc = user_doc(json!({
            "urn:ietf:params:scim:schemas:core:2.0:User:userName": "a",
            "urn:ietf:params:scim:schemas:core:2.0:User:name": {"givenName": "A"}
        }));
        assert_eq!(doc["userName"], "a");
        assert_eq!(doc["name"], json!({"givenName": "A"}));
    }

    #[test]
    fn an_attribute_given_twice_in_different_case_is_rejected() {
        assert_rejected(
            USER,
            json!({"userName": "a", "USERNAME": "b"}),
            ScimType::InvalidSyntax,
            "more than once",
        );
        assert_rejected(
            USER,
            json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"department": "x"}, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:Department": "y"}),
            ScimType::InvalidSyntax,
            "more than once",
        );
        assert_rejected(
            USER,
            json!({"userName": "a", "name": {"givenName": "a", "GivenName": "b"}}),
            ScimType::InvalidSyntax,
            "name.givenName",
        );
    }

    #[test]
    fn read_only_attributes_are_ignored() {
        let doc = user_doc(json!({
            "id": "client-chosen",
            "meta": {"created": "nonsense"},
            "userName": "a",
            "groups": [{"value": "g1"}],
            ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m", "displayName": "Boss"}}
        }));
        assert_eq!(keys(&doc), ["schemas", "userName", ENTERPRISE_USER_SCHEMA]);
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": "m"}));
    }

    #[test]
    fn group_member_display_is_dropped() {
        let doc = write(
            GROUP,
            &json!({"displayName": "g", "members": [{"value": "u1", "display": "U One", "type": "User"}]}),
        )
        .expect("valid group")
        .document;
        assert_eq!(doc["members"], json!([{"value": "u1", "type": "User"}]));
    }

    #[test]
    fn wrong_type_is_rejected_with_invalid_value_naming_attribute_and_type() {
        let cases = [
            (json!({"userName": 7}), "'userName' must be a string"),
            (
                json!({"userName": "a", "name": "Bob"}),
                "'name' must be a complex value",
            ),
            (
                json!({"userName": "a", "emails": ["a@b"]}),
                "'emails' must be a complex value",
            ),
            (
                json!({"userName": "a", "profileUrl": true}),
                "'profileUrl' must be a reference",
            ),
            (
                json!({"userName": "a", "emails": [{"primary": "maybe"}]}),
                "'emails.primary' must be a boolean",
            ),
            (
                json!({"userName": "a", "externalId": 12}),
                "'externalId' must be a string",
            ),
            (
                json!({"userName": "a", "displayName": {"x": 1}}),
                "'displayName' must be a string",
            ),
        ];
        for (input, message) in cases {
            assert_rejected(USER, input, ScimType::InvalidValue, message);
        }
    }

    #[test]
    fn objects_nested_deeper_than_the_schema_are_rejected_with_invalid_syntax() {
        assert_rejected(
            USER,
            json!({"userName": "a", "name": {"givenName": {"first": "A"}}}),
            ScimType::InvalidSyntax,
            "name.givenName",
        );
        assert_rejected(
            USER,
            json!({"userName": "a", "emails": [{"value": {"address": "a@b"}}]}),
            ScimType::InvalidSyntax,
            "emails.value",
        );
    }

    #[test]
    fn deeply_nested_input_is_rejected_without_panicking() {
        let mut deep = json!("bottom");
        for _ in 0..100 {
            deep = json!([deep]);
        }
        for value in [
            deep.clone(),
            json!({"value": deep.clone()}),
            json!([{"value": deep.clone()}]),
        ] {
            let err = rejected(USER, json!({"userName": "a", "emails": value}));
            assert_eq!(err.status, 400);
        }
        let err = rejected(USER, json!({"userName": deep}));
        assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn integers_must_have_no_fraction() {
        let def = attr_def(json!({"name": "count", "type": "integer"}));
        let ok = |v: Value| convert(USER, &def, &v, "count", false).expect("an integer");
        assert_eq!(ok(json!(3)), Some(json!(3)));
        assert_eq!(ok(json!(-3)), Some(json!(-3)));
        assert_eq!(ok(json!(4.0)), Some(json!(4)));
        for bad in [json!(1.5), json!("3"), json!(true)] {
            let err = convert(USER, &def, &bad, "count", false).expect_err("not an integer");
            assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
            assert!(err.detail.contains("'count' must be an integer"), "{}", err.detail);
        }
    }

    #[test]
    fn decimals_accept_any_json_number() {
        let def = attr_def(json!({"name": "ratio", "type": "decimal"}));
        assert_eq!(
            convert(USER, &def, &json!(1.25), "ratio", false).ok(),
            Some(Some(json!(1.25)))
        );
        assert_eq!(
            convert(USER, &def, &json!(2), "ratio", false).ok(),
            Some(Some(json!(2)))
        );
        assert!(convert(USER, &def, &json!("1.25"), "ratio", false).is_err());
    }

    #[test]
    fn date_times_are_stored_as_utc_with_z() {
        let def = attr_def(json!({"name": "hired", "type": "dateTime"}));
        let stored = |s: &str| convert(USER, &def, &json!(s), "hired", false).ok().flatten();
        assert_eq!(stored("2015-09-15T04:56:22Z"), Some(json!("2015-09-15T04:56:22Z")));
        assert_eq!(stored("2015-09-15T06:56:22+02:00"), Some(json!("2015-09-15T04:56:22Z")));
        assert_eq!(
            stored("2015-09-15T04:56:22.5-01:00"),
            Some(json!("2015-09-15T05:56:22.500Z"))
        );
        assert_eq!(stored("2015-09-15T04:56:22"), Some(json!("2015-09-15T04:56:22Z")));
        for bad in ["2015-09-15", "yesterday", "2015-13-01T00:00:00Z", ""] {
            let err = convert(USER, &def, &json!(bad), "hired", false).expect_err("not a dateTime");
            assert!(err.detail.contains("'hired' must be an xsd:dateTime"), "{}", err.detail);
        }
    }

    #[test]
    fn binary_values_must_be_base64() {
        let input = |v: &str| json!({"userName": "a", "x509Certificates": [{"value": v}]});
        assert!(write(USER, &input("TWFu")).is_ok());
        assert!(write(USER, &input("TWE=")).is_ok());
        assert!(write(USER, &input("TQ==")).is_ok());
        for bad in ["not base64!", "TQ=", "T", "TQ===", "TW-u"] {
            assert_rejected(USER, input(bad), ScimType::InvalidValue, "x509Certificates.value");
        }
    }

    #[test]
    fn a_single_value_for_a_multi_valued_attribute_is_wrapped() {
        let doc = user_doc(json!({"userName": "a", "emails": {"value": "a@b", "type": "work"}}));
        assert_eq!(doc["emails"], json!([{"value": "a@b", "type": "work"}]));
    }

    #[test]
    fn an_array_for_a_singular_attribute_is_rejected_with_invalid_value() {
        assert_rejected(
            USER,
            json!({"userName": ["a", "b"]}),
            ScimType::InvalidValue,
            "userName",
        );
        assert_rejected(
            USER,
            json!({"userName": "a", "name": [{"givenName": "A"}]}),
            ScimType::InvalidValue,
            "'name' is single-valued",
        );
    }

    #[test]
    fn null_and_empty_values_mean_unassigned() {
        let doc = user_doc(json!({
            "userName": "a",
            "displayName": null,
            "emails": [],
            "phoneNumbers": [null],
            "name": {"givenName": null},
            "nickName": [],
            "addresses": null
        }));
        assert_eq!(keys(&doc), ["schemas", "userName"]);
    }

    #[test]
    fn strings_longer_than_the_limit_are_rejected() {
        let long = "x".repeat(MAX_STRING_CHARS + 1);
        assert_rejected(
            USER,
            json!({"userName": "a", "displayName": long}),
            ScimType::InvalidValue,
            "displayName",
        );
        let multibyte = "é".repeat(MAX_STRING_CHARS);
        assert!(write(USER, &json!({"userName": "a", "displayName": multibyte})).is_ok());
    }

    #[test]
    fn manager_given_as_a_plain_string_becomes_its_value() {
        let doc = user_doc(json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"manager": "m-1"}}));
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": "m-1"}));
        let doc = user_doc(
            json!({"userName": "a", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "m-2"}),
        );
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": "m-2"}));
        let doc = user_doc(json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"manager": ""}}));
        assert!(
            doc.get(ENTERPRISE_USER_SCHEMA).is_none(),
            "an empty manager id is unassigned"
        );
    }

    #[test]
    fn canonical_values_are_rewritten_and_other_values_accepted() {
        let doc = user_doc(json!({
            "userName": "a",
            "emails": [{"value": "a@b", "type": "WORK"}, {"value": "c@d", "type": "Holiday"}],
            "ims": [{"value": "h", "type": "Skype"}]
        }));
        assert_eq!(doc["emails"][0]["type"], "work");
        assert_eq!(doc["emails"][1]["type"], "Holiday");
        assert_eq!(doc["ims"][0]["type"], "skype");
    }

    #[test]
    fn group_member_type_must_be_user_or_group() {
        let group = |t: &str| json!({"displayName": "g", "members": [{"value": "m", "type": t}]});
        let doc = write(GROUP, &group("group")).expect("valid group").document;
        assert_eq!(doc["members"][0]["type"], "Group");
        assert_rejected(GROUP, group("Robot"), ScimType::InvalidValue, "members.type");
    }

    #[test]
    fn more_than_one_primary_value_is_rejected() {
        assert_rejected(
            USER,
            json!({"userName": "a", "emails": [{"value": "a@b", "primary": true}, {"value": "c@d", "primary": "True"}]}),
            ScimType::InvalidValue,
            "emails",
        );
        let doc = user_doc(
            json!({"userName": "a", "emails": [{"value": "a@b", "primary": true}, {"value": "c@d", "primary": false}]}),
        );
        assert_eq!(doc["emails"][1]["primary"], false);
    }

    #[test]
    fn missing_or_blank_required_attributes_are_rejected() {
        assert_rejected(
            USER,
            json!({"displayName": "no user name"}),
            ScimType::InvalidValue,
            "'userName' is required",
        );
        assert_rejected(USER, json!({"userName": "  "}), ScimType::InvalidValue, "userName");
        assert_rejected(USER, json!({"userName": null}), ScimType::InvalidValue, "userName");
        assert_rejected(
            GROUP,
            json!({"members": []}),
            ScimType::InvalidValue,
            "'displayName' is required",
        );
    }

    #[test]
    fn a_member_without_value_is_rejected() {
        assert_rejected(
            GROUP,
            json!({"displayName": "g", "members": [{"display": "Who"}]}),
            ScimType::InvalidValue,
            "members.value",
        );
        assert_rejected(
            GROUP,
            json!({"displayName": "g", "members": [{"type": "User"}]}),
            ScimType::InvalidValue,
            "members.value",
        );
    }

    #[test]
    fn password_is_taken_out_of_the_document_and_redacted_in_debug() {
        let written = write(USER, &json!({"userName": "a", "Password": "s3cret!"})).expect("valid user");
        assert!(written.document.get("password").is_none());
        assert_eq!(written.password.as_deref(), Some("s3cret!"));
        let debug = format!("{written:?}");
        assert!(!debug.contains("s3cret!") && debug.contains("redacted"), "{debug}");
        assert_eq!(
            write(USER, &json!({"userName": "a"})).map(|w| w.password).ok(),
            Some(None)
        );
        assert_rejected(
            USER,
            json!({"userName": "a", "password": ""}),
            ScimType::InvalidValue,
            "password",
        );
        assert_rejected(
            USER,
            json!({"userName": "a", "password": 1234}),
            ScimType::InvalidValue,
            "password",
        );
    }

    /// The builtin registry with `employeeNumber` made immutable, and a
    /// multi-valued string `aliases` added to the User schema.
    fn modified_registry() -> SchemaRegistry {
        let mut docs: Vec<Value> = reg().schema_documents().cloned().collect();
        for doc in &mut docs {
            if doc["id"] == ENTERPRISE_USER_SCHEMA {
                for attr in doc["attributes"].as_array_mut().into_iter().flatten() {
                    if attr["name"] == "employeeNumber" {
                        attr["mutability"] = json!("immutable");
                    }
                }
            }
            if doc["id"] == CORE_USER
                && let Some(attrs) = doc["attributes"].as_array_mut()
            {
                attrs.push(json!({"name": "aliases", "type": "string", "multiValued": true, "caseExact": true}));
            }
        }
        SchemaRegistry::from_documents(docs).expect("modified schemas are valid")
    }

    fn replace(reg: &SchemaRegistry, input: Value, existing: Value) -> ScimResult<Value> {
        validate_write(reg, USER, &input, Some(&existing)).map(|w| Value::Object(w.document))
    }

    #[test]
    fn an_immutable_attribute_cannot_change_on_replace() {
        let reg = modified_registry();
        let existing = json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"employeeNumber": "1"}});
        let input = json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"employeeNumber": "2"}});
        let err = replace(&reg, input, existing.clone()).expect_err("immutable");
        assert_eq!(err.scim_type, Some(ScimType::Mutability));
        assert!(err.detail.contains("employeeNumber"), "{}", err.detail);
        let same = json!({"userName": "b", ENTERPRISE_USER_SCHEMA: {"employeeNumber": "1"}});
        assert!(replace(&reg, same, existing).is_ok());
    }

    #[test]
    fn an_immutable_attribute_may_be_set_when_unassigned() {
        let reg = modified_registry();
        let input = json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"employeeNumber": "2"}});
        let doc = replace(&reg, input, json!({"userName": "a"})).expect("was unassigned");
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "2");
    }

    #[test]
    fn an_immutable_attribute_omitted_on_replace_keeps_its_stored_value() {
        let reg = modified_registry();
        let existing = json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"employeeNumber": "1"}});
        let doc = replace(&reg, json!({"userName": "a"}), existing).expect("omitted");
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "1");
        assert_eq!(doc["schemas"], json!([CORE_USER, ENTERPRISE_USER_SCHEMA]));
    }

    #[test]
    fn group_members_can_be_replaced_although_their_sub_attributes_are_immutable() {
        let existing = json!({"displayName": "g", "members": [{"value": "u1", "type": "User"}]});
        let input = json!({"displayName": "g", "members": [{"value": "u2", "type": "Group"}]});
        let doc = validate_write(reg(), GROUP, &input, Some(&existing))
            .expect("members are replaceable")
            .document;
        assert_eq!(doc["members"], json!([{"value": "u2", "type": "Group"}]));
    }

    #[test]
    fn normalize_datetime_uses_utc_microseconds() {
        assert_eq!(
            normalize_datetime("2011-05-13T04:42:34Z").as_deref(),
            Some("2011-05-13T04:42:34.000000Z")
        );
        assert_eq!(
            normalize_datetime("2011-05-13T06:42:34.123+02:00").as_deref(),
            Some("2011-05-13T04:42:34.123000Z")
        );
        assert_eq!(
            normalize_datetime("2011-05-13T04:42:34.1234567Z").as_deref(),
            Some("2011-05-13T04:42:34.123456Z")
        );
        assert_eq!(normalize_datetime("2011-05-13"), None);
        assert_eq!(normalize_datetime("10000-01-01T00:00:00"), None);
        let a = normalize_datetime("2011-05-13T04:42:34.9Z");
        let b = normalize_datetime("2011-05-13T04:42:35Z");
        assert!(a < b, "text order is time order");
    }

    // -- projection ------------------------------------------------------

    fn stored_user() -> Value {
        let mut doc = user_doc(rfc_enterprise_user());
        doc["id"] = json!("2819c223");
        doc["meta"] = json!({"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z", "location": "/Users/2819c223", "version": "W/\"1\""});
        doc["groups"] = json!([{"value": "g1", "display": "Tour Guides", "type": "direct"}]);
        doc["password"] = json!("must never leak");
        doc
    }

    fn projected(attributes: Option<&str>, excluded: Option<&str>) -> Value {
        let projection = Projection::parse(reg(), USER, attributes, excluded).expect("projection");
        project(reg(), USER, stored_user(), &projection)
    }

    #[test]
    fn default_projection_returns_everything_but_never_returned_attributes() {
        let out = project(reg(), USER, stored_user(), &Projection::all());
        assert!(out.get("password").is_none());
        for present in ["userName", "emails", "groups", "meta", ENTERPRISE_USER_SCHEMA] {
            assert!(out.get(present).is_some(), "{present}");
        }
    }

    #[test]
    fn projected_keys_put_schemas_id_external_id_first_and_meta_last() {
        let out = projected(None, None);
        let keys = keys(&out);
        assert_eq!(keys[..4], ["schemas", "id", "externalId", "userName"]);
        assert_eq!(keys.last(), Some(&"meta"));
    }

    #[test]
    fn attributes_returns_the_named_attributes_and_those_returned_always() {
        let out = projected(Some("userName,displayName"), None);
        assert_eq!(keys(&out), ["schemas", "id", "userName", "displayName"]);
    }

    #[test]
    fn attributes_with_a_sub_attribute_returns_only_that_sub_attribute() {
        let out = projected(Some("name.givenName"), None);
        assert_eq!(out["name"], json!({"givenName": "Barbara"}));
        let out = projected(Some("emails.value"), None);
        assert_eq!(
            out["emails"],
            json!([{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}])
        );
        let out = projected(Some("meta.lastModified"), None);
        assert_eq!(out["meta"], json!({"lastModified": "2011-05-13T04:42:34Z"}));
    }

    #[test]
    fn attributes_accepts_urn_qualified_names_and_bare_extension_urns() {
        let out = projected(Some("urn:ietf:params:scim:schemas:core:2.0:User:userName"), None);
        assert_eq!(keys(&out), ["schemas", "id", "userName"]);
        let out = projected(
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
            None,
        );
        assert_eq!(
            out[ENTERPRISE_USER_SCHEMA],
            json!({"manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}})
        );
        let out = projected(Some(ENTERPRISE_USER_SCHEMA), None);
        assert_eq!(out[ENTERPRISE_USER_SCHEMA], stored_user()[ENTERPRISE_USER_SCHEMA]);
        assert!(out.get("userName").is_none());
    }

    #[test]
    fn excluded_attributes_removes_attributes_and_sub_attributes_but_not_always_returned_ones() {
        let out = projected(
            None,
            Some(
                "emails,name.familyName,id,schemas,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            ),
        );
        assert!(out.get("emails").is_none());
        assert!(out["name"].get("familyName").is_none());
        assert_eq!(out["name"]["givenName"], "Barbara");
        assert!(out.get("id").is_some() && out.get("schemas").is_some());
        assert!(out[ENTERPRISE_USER_SCHEMA].get("department").is_none());
        assert!(out[ENTERPRISE_USER_SCHEMA].get("costCenter").is_some());
        let out = projected(None, Some(ENTERPRISE_USER_SCHEMA));
        assert!(out.get(ENTERPRISE_USER_SCHEMA).is_none());
    }

    #[test]
    fn attribute_names_in_projections_are_case_insensitive_and_unknown_ones_ignored() {
        let out = projected(Some("USERNAME, nope, name.nope"), Some("whatever"));
        assert_eq!(keys(&out), ["schemas", "id", "userName"]);
        let out = projected(None, Some("nope"));
        assert_eq!(out, projected(None, None));
    }

    #[test]
    fn an_empty_attributes_list_is_read_as_absent() {
        assert_eq!(projected(Some(" , "), None), projected(None, None));
    }

    #[test]
    fn attributes_then_excluded_attributes_both_apply() {
        let out = projected(Some("name,emails"), Some("name.givenName"));
        assert_eq!(keys(&out), ["schemas", "id", "name", "emails"]);
        assert!(out["name"].get("givenName").is_none());
    }

    #[test]
    fn includes_tells_the_store_which_top_level_attributes_to_load() {
        let group = |a: Option<&str>, e: Option<&str>| Projection::parse(reg(), GROUP, a, e).expect("projection");
        assert!(Projection::all().includes("members"));
        assert!(!group(None, Some("members")).includes("members"));
        assert!(group(None, Some("members.value")).includes("members"));
        assert!(group(Some("members.value"), None).includes("Members"));
        assert!(!group(Some("displayName"), None).includes("members"));
        assert!(group(Some("displayName"), None).includes("id"));
        let user = |a: Option<&str>, e: Option<&str>| Projection::parse(reg(), USER, a, e).expect("projection");
        assert!(!user(None, Some("groups")).includes("groups"));
        assert!(user(Some(ENTERPRISE_USER_SCHEMA), None).includes(ENTERPRISE_USER_SCHEMA));
        assert!(!user(Some(ENTERPRISE_USER_SCHEMA), None).includes("groups"));
        let dept = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
        assert!(user(None, Some(dept)).includes(ENTERPRISE_USER_SCHEMA));
    }

    #[test]
    fn group_projection_keeps_members_by_default_and_drops_them_when_excluded() {
        let mut group = Value::Object(write(GROUP, &parse(RFC_GROUP)).expect("valid group").document);
        group["id"] = json!("e9e30dba");
        let out = project(reg(), GROUP, group.clone(), &Projection::all());
        assert_eq!(out["members"].as_array().map(Vec::len), Some(2));
        let projection = Projection::parse(reg(), GROUP, None, Some("members")).expect("projection");
        assert_eq!(
            keys(&project(reg(), GROUP, group.clone(), &projection)),
            ["schemas", "id", "displayName"]
        );
    }

    // -- index_values ----------------------------------------------------

    fn text(value: &str, case_exact: bool) -> IndexedScalar {
        IndexedScalar::Text {
            value: value.to_string(),
            case_exact,
        }
    }

    fn entry(values: &[IndexValue], attr: &str, element: Option<u32>) -> Option<IndexedScalar> {
        values
            .iter()
            .find(|v| v.attr == attr && v.element == element)
            .map(|v| v.value.clone())
    }

    #[test]
    fn index_values_flattens_a_full_user() {
        let values = index_values(reg(), USER, &stored_user());
        // Kept in columns, so not indexed again.
        assert_eq!(entry(&values, "username", None), None);
        assert_eq!(entry(&values, "externalid", None), None);
        assert_eq!(entry(&values, "displayname", None), None);
        assert_eq!(entry(&values, "name.familyname", None), Some(text("Jensen", false)));
        assert_eq!(entry(&values, "active", None), Some(IndexedScalar::Bool(true)));
        assert_eq!(
            entry(&values, "emails.value", Some(1)),
            Some(text("babs@jensen.org", false))
        );
        assert_eq!(entry(&values, "emails.type", Some(1)), Some(text("home", false)));
        assert_eq!(
            entry(&values, "emails.primary", Some(0)),
            Some(IndexedScalar::Bool(true))
        );
        assert_eq!(
            entry(&values, "addresses.postalcode", Some(1)),
            Some(text("91608", false))
        );
        assert!(matches!(
            entry(&values, "x509certificates.value", Some(0)),
            Some(IndexedScalar::Text { case_exact: true, .. })
        ));
        let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user";
        assert_eq!(
            entry(&values, &format!("{ext}:department"), None),
            Some(text("Tour Operations", false))
        );
        assert_eq!(
            entry(&values, &format!("{ext}:manager.value"), None),
            Some(text("26118915-6090-4610-87e4-49d8ca9f808d", false))
        );
        for skipped in ["schemas", "id", "password", "groups", "meta"] {
            assert!(
                !values
                    .iter()
                    .any(|v| v.attr == skipped || v.attr.starts_with(&format!("{skipped}."))),
                "{skipped} must not be indexed"
            );
        }
        assert_eq!(values.iter().filter(|v| v.attr == "emails.value").count(), 2);
    }

    #[test]
    fn index_keys_match_resolved_paths() {
        for path in [
            "name.givenName",
            "name.familyName",
            "emails.value",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        ] {
            let key = reg().resolve_path(USER, path).map(|r| r.index_key());
            let values = index_values(reg(), USER, &stored_user());
            assert!(values.iter().any(|v| Some(&v.attr) == key.as_ref()), "{path} → {key:?}");
        }
    }

    #[test]
    fn index_values_skips_group_members_and_what_columns_hold() {
        let group = Value::Object(write(GROUP, &parse(RFC_GROUP)).expect("valid group").document);
        // Members are stored apart, displayName in its column.
        assert_eq!(index_values(reg(), GROUP, &group), vec![]);
    }

    #[test]
    fn index_values_flattens_multi_valued_simple_attributes_with_their_index() {
        let reg = modified_registry();
        let doc = validate_write(&reg, USER, &json!({"userName": "a", "aliases": ["x", "y"]}), None)
            .expect("valid")
            .document;
        let values = index_values(&reg, USER, &Value::Object(doc));
        assert_eq!(entry(&values, "aliases", Some(0)), Some(text("x", true)));
        assert_eq!(entry(&values, "aliases", Some(1)), Some(text("y", true)));
    }

    #[test]
    fn indexed_scalar_normalizes_date_times_and_numbers() {
        let modified = reg().resolve_path(USER, "meta.lastModified").map(|r| r.leaf());
        let modified = modified.expect("meta.lastModified resolves");
        assert_eq!(
            indexed_scalar(modified, &json!("2011-05-13T04:42:34Z")),
            Some(IndexedScalar::DateTime("2011-05-13T04:42:34.000000Z".into()))
        );
        let def = attr_def(json!({"name": "n", "type": "integer"}));
        assert_eq!(indexed_scalar(&def, &json!(3)), Some(IndexedScalar::Number(3.0)));
        assert_eq!(indexed_scalar(&def, &json!("3")), None);
    }
}
