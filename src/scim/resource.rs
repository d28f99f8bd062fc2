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
                if let Some(v) = convert(self.kind, def, value, &path, false)? {
                    if let Some(map) = self.values.get_mut(container) {
                        map.insert(def.name.clone(), v);
                    }
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
            if let Some(ext) = ext {
                if values.is_empty() {
                    if ext.required {
                        return Err(ScimError::invalid_value(format!(
                            "schema extension '{}' is required",
                            ext.schema_urn
                        )));
                    }
                    continue;
                }
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
        padding <= 2 && s.len() % 4 == 0
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

fn get_ci<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
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
            include: attributes.map(|list| selectors(reg, kind, list)),
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
        if let Some(include) = &self.include {
            if !include.iter().any(touches) {
                return false;
            }
        }
        !self.exclude.iter().any(whole)
    }
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

/// The representation of a stored resource to return, per `projection` and
/// the schema's `returned` rules. Keys come out as `schemas`, `id`,
/// `externalId`, the rest in stored order, and `meta` last.
pub fn project(reg: &SchemaRegistry, kind: ResourceKind, resource: &Value, projection: &Projection) -> Value {
    let Value::Object(stored) = resource else {
        return resource.clone();
    };
    let core = reg.core_schema(kind);
    let mut kept: Vec<(&String, Value)> = Vec::with_capacity(stored.len());
    for (key, value) in stored {
        let projected = if let Some((ext, schema)) = reg.extension(kind, key) {
            project_extension(schema, &ext.schema_urn.to_ascii_lowercase(), value, projection)
        } else {
            match reg.common_attribute(key).or_else(|| core.attribute(key)) {
                Some(def) => project_attr(def, value, None, projection),
                // Data outside the schema is passed through unless a list was asked for.
                None => projection.include.is_none().then(|| value.clone()),
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
            out.insert(k.clone(), v);
        }
    }
    let meta = kept
        .iter()
        .position(|(k, _)| k.as_str() == "meta")
        .map(|i| kept.remove(i));
    out.extend(kept.into_iter().map(|(k, v)| (k.clone(), v)));
    if let Some((k, v)) = meta {
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

fn project_extension(schema: &Schema, container: &str, value: &Value, projection: &Projection) -> Option<Value> {
    let Value::Object(attrs) = value else {
        return projection.include.is_none().then(|| value.clone());
    };
    let mut out = Map::new();
    for (key, v) in attrs {
        let projected = match schema.attribute(key) {
            Some(def) => project_attr(def, v, Some(container), projection),
            None => projection.include.is_none().then(|| v.clone()),
        };
        if let Some(p) = projected {
            out.insert(key.clone(), p);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn project_attr(def: &AttributeDef, value: &Value, container: Option<&str>, projection: &Projection) -> Option<Value> {
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
        return Some(value.clone());
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
    let filter = |v: &Value| match v {
        Value::Object(o) => {
            let m: Map<String, Value> = o
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        other => Some(other.clone()),
    };
    match value {
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(filter).collect();
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
        if let Some(def) = def.filter(|d| indexed(kind, d)) {
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
