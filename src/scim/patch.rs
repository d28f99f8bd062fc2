//! PATCH (RFC 7644 §3.5.2): a `PatchOp` body parsed into a [`PatchRequest`]
//! and applied to a stored document by [`apply_patch`], which returns the new
//! document (for the caller to re-validate with `validate_write` as a replace)
//! and, for Groups, the membership changes kept out of the document.
//!
//! Beyond the RFC, what identity providers send is accepted as it is:
//! - `op`, `Operations`, `path`, `value` and attribute names in any case; a
//!   missing `schemas`; an empty or `null` `path` read as absent;
//! - a path-less `value` whose keys are paths (`name.givenName`,
//!   `urn:…:enterprise:2.0:User:employeeNumber`, `emails[type eq "work"].value`),
//!   extension URNs holding objects, and `id`, `meta` and `schemas`, which are
//!   ignored there (Okta echoes them) but rejected as a `path`;
//! - the legacy prefix `urn:scim:schemas:` (OneLogin), read as `urn:ietf:params:scim:schemas:`;
//! - a complex singular attribute with a `value` sub-attribute (the enterprise
//!   `manager`) given as a plain string: that `value` (`""` unassigns it);
//! - `add` through an equality filter that matches nothing
//!   (`emails[type eq "work"].value`) creates the element the filter
//!   describes, as Entra ID expects; other filters report `noTarget`;
//! - `remove` with a `value` list on a multi-valued attribute removes only the
//!   elements equal to those given (Entra's member removal).
//!
//! Choices where the RFC is silent: unknown attribute names, in a path, a
//! path-less value or a sub-attribute of a value, are `invalidPath`, as are
//! invalid value filters and filters on singular attributes; `attr.sub` on a
//! multi-valued attribute addresses every element (`noTarget` when there is
//! none to add or replace in); removing an unassigned attribute succeeds;
//! replacing an element selected by a filter replaces it whole (§3.5.2.3).
//!
//! Group `members` never enter the document: operations on them become
//! [`MemberChanges`], which only a `value eq` filter (or an `or` of them) can
//! select from, since the member list is not read (`invalidFilter` otherwise).

use std::collections::HashSet;

use serde_json::{Map, Number, Value};

use super::filter::{
    AttrPath, CompareOp, Filter, Operand, PatchPath, matches_element, parse_patch_path, validate_value_path,
};
use super::json::{check_message_schemas, get_ci, get_ci_mut};
use super::schema::{AttrType, AttributeDef, Mutability, Schema, SchemaRegistry};
use super::{ResourceKind, ScimError, ScimResult, ScimType};

pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The most operations one request may hold.
pub const MAX_OPERATIONS: usize = 1000;

const LEGACY_URN_PREFIX: &str = "urn:scim:schemas:";
const URN_PREFIX: &str = "urn:ietf:params:scim:schemas:";
/// Keys of a path-less value that are the server's and ignored there.
const IGNORED_KEYS: [&str; 3] = ["id", "meta", "schemas"];

/// A parsed PatchOp request (RFC 7644 §3.5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    pub operations: Vec<PatchOperation>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    /// `Some(Value::Null)` when the body says `"value": null`.
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

impl PatchOpKind {
    /// The operation an `op` names, case-insensitively.
    pub fn parse(op: &str) -> Option<Self> {
        [PatchOpKind::Add, PatchOpKind::Remove, PatchOpKind::Replace]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(op))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        }
    }
}

/// Changes to a Group's membership, kept out of the document so that the
/// store can apply them row by row without reading the member list (groups
/// can have 100,000+ members).
///
/// The operations are already folded in order: when `replace_all` is `Some`,
/// `add` and `remove` are empty; otherwise they are disjoint, so the new
/// member set is the old one minus `remove` plus `add`. No id appears twice.
#[derive(Debug, Default, PartialEq)]
pub struct MemberChanges {
    /// Some(list): the member set becomes exactly this list (replace of
    /// `members`, or remove of all members then adds).
    pub replace_all: Option<Vec<MemberValue>>,
    pub add: Vec<MemberValue>,
    /// Member ids to remove.
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub value: String,
    /// `User` or `Group` (canonical case), when the client sent a type.
    pub kind: Option<String>,
}

#[derive(Debug, PartialEq)]
pub struct PatchOutcome {
    pub document: Value,
    pub members: MemberChanges,
}

impl MemberChanges {
    /// Whether the patch leaves the membership as it is.
    pub fn is_empty(&self) -> bool {
        self.replace_all.is_none() && self.add.is_empty() && self.remove.is_empty()
    }

    fn add_members(&mut self, list: Vec<MemberValue>) {
        let list = without_duplicate_members(list);
        let ids: HashSet<String> = list.iter().map(|m| m.value.clone()).collect();
        match &mut self.replace_all {
            Some(all) => {
                all.retain(|m| !ids.contains(&m.value));
                all.extend(list);
            }
            None => {
                self.remove.retain(|id| !ids.contains(id));
                self.add.retain(|m| !ids.contains(&m.value));
                self.add.extend(list);
            }
        }
    }

    fn remove_members(&mut self, ids: Vec<String>) {
        let set: HashSet<String> = ids.iter().cloned().collect();
        match &mut self.replace_all {
            Some(all) => all.retain(|m| !set.contains(&m.value)),
            None => {
                self.add.retain(|m| !set.contains(&m.value));
                self.remove.retain(|id| !set.contains(id));
                let mut seen = HashSet::new();
                self.remove.extend(ids.into_iter().filter(|id| seen.insert(id.clone())));
            }
        }
    }

    fn replace_members(&mut self, list: Vec<MemberValue>) {
        self.replace_all = Some(without_duplicate_members(list));
        self.add.clear();
        self.remove.clear();
    }
}

/// `list` with one entry per id, the last given winning.
fn without_duplicate_members(list: Vec<MemberValue>) -> Vec<MemberValue> {
    let mut seen = HashSet::new();
    let mut out: Vec<MemberValue> = list
        .into_iter()
        .rev()
        .filter(|m| seen.insert(m.value.clone()))
        .collect();
    out.reverse();
    out
}

// ---------------------------------------------------------------------------
// Parsing

/// Parses a PatchOp body. Paths are parsed here; whether they name
/// attributes of the resource is checked by [`apply_patch`].
pub fn parse_patch_request(body: &Value) -> ScimResult<PatchRequest> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax("the PATCH body must be a JSON object"));
    };
    check_message_schemas(body, PATCH_OP_SCHEMA)?;
    let operations = match get_ci(body, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        Some(Value::Array(_)) => return Err(ScimError::invalid_syntax("'Operations' must not be empty")),
        Some(_) => return Err(ScimError::invalid_syntax("'Operations' must be an array of operations")),
        None => return Err(ScimError::invalid_syntax("'Operations' is required")),
    };
    check_operation_count(operations.len())?;
    let operations = operations
        .iter()
        .enumerate()
        .map(|(i, op)| parse_operation(op).map_err(|e| in_operation(i, e)))
        .collect::<ScimResult<_>>()?;
    Ok(PatchRequest { operations })
}

fn check_operation_count(count: usize) -> ScimResult<()> {
    if count > MAX_OPERATIONS {
        return Err(ScimError::invalid_value(format!(
            "a PATCH request may hold at most {MAX_OPERATIONS} operations, not {count}"
        )));
    }
    Ok(())
}

fn parse_operation(op: &Value) -> ScimResult<PatchOperation> {
    let Value::Object(fields) = op else {
        return Err(ScimError::invalid_syntax("an operation must be a JSON object"));
    };
    let kind = match get_ci(fields, "op") {
        Some(Value::String(name)) => PatchOpKind::parse(name.trim()).ok_or_else(|| {
            ScimError::invalid_syntax(format!("unknown op \"{name}\"; expected add, remove or replace"))
        })?,
        Some(_) => return Err(ScimError::invalid_syntax("'op' must be a string")),
        None => return Err(ScimError::invalid_syntax("'op' is required")),
    };
    let path = match get_ci(fields, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => Some(parse_patch_path(&modern_urns(text.trim()))?),
        Some(_) => {
            return Err(ScimError::bad_request(ScimType::InvalidPath, "'path' must be a string"));
        }
    };
    let value = get_ci(fields, "value").cloned();
    let operation = PatchOperation { op: kind, path, value };
    check_operation(&operation)?;
    Ok(operation)
}

/// The rules on `path` and `value` that hold whatever the resource.
fn check_operation(op: &PatchOperation) -> ScimResult<()> {
    let value = op.value.as_ref();
    match (op.op, &op.path) {
        (PatchOpKind::Remove, None) => Err(ScimError::bad_request(
            ScimType::NoTarget,
            "a remove operation needs a 'path'",
        )),
        (PatchOpKind::Remove, Some(_)) => Ok(()),
        (PatchOpKind::Add, _) if value.is_none_or(Value::is_null) => {
            Err(ScimError::invalid_syntax("an add operation needs a 'value'"))
        }
        (PatchOpKind::Replace, _) if value.is_none() => {
            Err(ScimError::invalid_syntax("a replace operation needs a 'value'"))
        }
        (_, None) if !value.is_some_and(Value::is_object) => Err(ScimError::invalid_syntax(format!(
            "without a 'path', the 'value' of {} must be an object of attributes",
            op.op.as_str()
        ))),
        _ => Ok(()),
    }
}

fn in_operation(index: usize, mut error: ScimError) -> ScimError {
    error.detail = format!("Operations[{index}]: {}", error.detail);
    error
}

/// `text` with a leading legacy `urn:scim:schemas:` read as `urn:ietf:params:scim:schemas:`.
fn modern_urns(text: &str) -> String {
    match text.get(..LEGACY_URN_PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(LEGACY_URN_PREFIX) => {
            format!(
                "{URN_PREFIX}{}",
                text.get(LEGACY_URN_PREFIX.len()..).unwrap_or_default()
            )
        }
        _ => text.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Applying

/// Applies the operations, in order and atomically (any failure → Err,
/// nothing applied), to `document` — the stored resource as the client would
/// see it without `id`, `meta` and (for Groups) `members` — and returns the
/// new document plus membership changes. The caller re-validates the
/// document with `validate_write(…, Some(document))`, which converts types.
pub fn apply_patch(
    reg: &SchemaRegistry,
    kind: ResourceKind,
    document: &Value,
    request: &PatchRequest,
) -> ScimResult<PatchOutcome> {
    let Value::Object(original) = document else {
        return Err(ScimError::internal());
    };
    check_operation_count(request.operations.len())?;
    let mut patcher = Patcher {
        reg,
        kind,
        doc: original.clone(),
        members: MemberChanges::default(),
    };
    for (i, op) in request.operations.iter().enumerate() {
        patcher.operation(op).map_err(|e| in_operation(i, e))?;
    }
    patcher.check_immutable(original)?;
    Ok(patcher.finish())
}

/// What a path designates.
enum Target<'r> {
    /// All attributes of one schema: a bare schema URN (`None`: the core schema).
    Schema(Option<&'r Schema>),
    /// Group `members`, optionally narrowed by a value filter.
    Members(Option<Filter>),
    Attr(AttrTarget<'r>),
}

struct AttrTarget<'r> {
    /// The URN of the extension the attribute lives under.
    ext: Option<&'r str>,
    def: &'r AttributeDef,
    sub: Option<&'r AttributeDef>,
    filter: Option<Filter>,
    /// The canonical path, for messages.
    shown: String,
}

struct Patcher<'r> {
    reg: &'r SchemaRegistry,
    kind: ResourceKind,
    doc: Map<String, Value>,
    members: MemberChanges,
}

impl<'r> Patcher<'r> {
    fn operation(&mut self, op: &PatchOperation) -> ScimResult<()> {
        check_operation(op)?;
        match &op.path {
            None => match &op.value {
                Some(Value::Object(attrs)) => self.attributes(op.op, None, attrs, false),
                _ => Err(ScimError::invalid_syntax(
                    "without a 'path', the 'value' must be an object",
                )),
            },
            Some(path) => {
                let target = self.resolve(path)?;
                self.apply(op.op, &target, op.value.as_ref(), false)
            }
        }
    }

    /// Applies `op` to each attribute of a path-less value (`schema` is
    /// `None`) or of an object given for a schema URN.
    fn attributes(
        &mut self,
        op: PatchOpKind,
        schema: Option<&'r Schema>,
        attrs: &Map<String, Value>,
        nested: bool,
    ) -> ScimResult<()> {
        for (key, value) in attrs {
            let key = key.trim();
            // Clients echo `schemas` inside an extension's object too (scim2-client does).
            let ignored = match schema {
                None => IGNORED_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)),
                Some(_) => key.eq_ignore_ascii_case("schemas"),
            };
            if ignored {
                continue;
            }
            let text = match schema {
                Some(s) => format!("{}:{key}", s.id),
                None => modern_urns(key),
            };
            let target = self.resolve(&parse_patch_path(&text)?)?;
            if value.is_null() && op == PatchOpKind::Add {
                continue;
            }
            self.apply(op, &target, Some(value), nested)?;
        }
        Ok(())
    }

    fn apply(&mut self, op: PatchOpKind, target: &Target<'r>, value: Option<&Value>, nested: bool) -> ScimResult<()> {
        let given = value.filter(|v| !v.is_null());
        if op == PatchOpKind::Remove || (op == PatchOpKind::Replace && value.is_some() && given.is_none()) {
            return self.remove(target, given);
        }
        let Some(value) = given else {
            return Err(ScimError::invalid_syntax(format!("{} needs a 'value'", op.as_str())));
        };
        match target {
            Target::Schema(_) if nested => Err(ScimError::bad_request(
                ScimType::InvalidPath,
                "a schema URN cannot be nested in another",
            )),
            Target::Schema(schema) => match value {
                Value::Object(attrs) => self.attributes(op, *schema, attrs, true),
                _ => Err(ScimError::invalid_syntax(
                    "the value of a schema URN must be an object of attributes",
                )),
            },
            Target::Members(filter) => self.change_members(op, filter.as_ref(), value),
            Target::Attr(t) => self.change_attr(op, t, value),
        }
    }

    fn resolve(&self, path: &PatchPath) -> ScimResult<Target<'r>> {
        let reg = self.reg;
        let bare = path.filter.is_none() && path.sub_attr.is_none() && path.attr.sub_attr.is_none();
        if bare && path.attr.urn.is_some() {
            let urn = path.attr.to_string();
            if let Some((_, schema)) = reg.extension(self.kind, &urn) {
                return Ok(Target::Schema(Some(schema)));
            }
            if urn.eq_ignore_ascii_case(self.kind.core_schema()) {
                return Ok(Target::Schema(None));
            }
        }
        let full = AttrPath {
            sub_attr: path.attr.sub_attr.clone().or_else(|| path.sub_attr.clone()),
            ..path.attr.clone()
        };
        let Some(resolved) = reg.resolve_path(self.kind, &full.to_string()) else {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!("unknown attribute \"{full}\" for {} resources", self.kind.name()),
            ));
        };
        let ext = resolved.schema_urn.filter(|_| resolved.extension);
        let (def, sub) = (resolved.attribute, resolved.sub_attribute);
        let mut shown = match ext {
            Some(urn) => format!("{urn}:{}", def.name),
            None => def.name.clone(),
        };
        if path.filter.is_some() {
            shown.push_str("[…]");
        }
        if let Some(sub) = sub {
            shown = format!("{shown}.{}", sub.name);
        }
        let is_members = self.kind == ResourceKind::Group && ext.is_none() && def.name == "members";
        if is_members && sub.is_some() {
            return Err(ScimError::mutability(format!(
                "members are added and removed whole; '{shown}' cannot be changed"
            )));
        }
        if [Some(def), sub]
            .into_iter()
            .flatten()
            .any(|d| d.mutability == Mutability::ReadOnly)
        {
            return Err(ScimError::mutability(format!("'{shown}' is read-only")));
        }
        let filter = match &path.filter {
            None => None,
            Some(_) if !(def.multi_valued && def.is_complex()) => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidPath,
                    format!("'{shown}': a value filter applies only to multi-valued complex attributes"),
                ));
            }
            Some(expr) => {
                let outer = AttrPath {
                    sub_attr: None,
                    ..path.attr.clone()
                };
                let filter = validate_value_path(reg, self.kind, &outer, expr).map_err(|mut e| {
                    e.scim_type = Some(ScimType::InvalidPath);
                    e
                })?;
                Some(filter)
            }
        };
        if is_members {
            return Ok(Target::Members(filter));
        }
        Ok(Target::Attr(AttrTarget {
            ext,
            def,
            sub,
            filter,
            shown,
        }))
    }

    // -- Removal -------------------------------------------------------------

    /// `remove`, or `replace` with `null`. `value` is the list of elements an
    /// Entra-style remove names.
    fn remove(&mut self, target: &Target<'r>, value: Option<&Value>) -> ScimResult<()> {
        match target {
            Target::Schema(Some(schema)) => {
                remove_ci(&mut self.doc, &schema.id);
                Ok(())
            }
            Target::Schema(None) => Err(ScimError::bad_request(
                ScimType::InvalidPath,
                "the core schema's attributes cannot be removed as a whole",
            )),
            Target::Members(Some(filter)) => {
                let mut ids = Vec::new();
                if !member_ids(filter, &mut ids) {
                    return Err(ScimError::bad_request(
                        ScimType::InvalidFilter,
                        "members can be filtered by value only: members[value eq \"id\"], optionally joined by or",
                    ));
                }
                self.members.remove_members(ids);
                Ok(())
            }
            Target::Members(None) => {
                match value {
                    Some(v) => {
                        let ids = member_values(v)?.into_iter().map(|m| m.value).collect();
                        self.members.remove_members(ids);
                    }
                    None => self.members.replace_members(Vec::new()),
                }
                Ok(())
            }
            Target::Attr(t) => {
                let current = self.get_attr(t);
                let updated = self.removed(t, current, value)?;
                self.put_attr(t, updated)
            }
        }
    }

    fn removed(&self, t: &AttrTarget<'_>, current: Option<Value>, value: Option<&Value>) -> ScimResult<Option<Value>> {
        if !t.def.multi_valued {
            return Ok(match (t.sub, current) {
                (None, _) | (_, None) => None,
                (Some(sub), Some(Value::Object(mut obj))) => {
                    remove_ci(&mut obj, &sub.name);
                    Some(Value::Object(obj))
                }
                (Some(_), Some(other)) => Some(other),
            });
        }
        let mut items = into_items(current);
        match (&t.filter, t.sub) {
            (None, None) => match value {
                None => items.clear(),
                Some(v) => {
                    let given = self.elements(t, v)?;
                    items.retain(|e| !given.iter().any(|g| contains(t.def, g, e)));
                }
            },
            (filter, sub) => {
                let selected = select(&items, filter.as_ref());
                if filter.is_some() && selected.is_empty() {
                    return Err(no_match(t));
                }
                let selected: HashSet<usize> = selected.into_iter().collect();
                items = items
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, mut e)| {
                        if !selected.contains(&i) {
                            return Some(e);
                        }
                        let sub = sub?;
                        if let Value::Object(obj) = &mut e {
                            remove_ci(obj, &sub.name);
                        }
                        Some(e)
                    })
                    .filter(|e| !unassigned(e))
                    .collect();
            }
        }
        Ok(Some(Value::Array(items)))
    }

    // -- Add and replace -----------------------------------------------------

    fn change_attr(&mut self, op: PatchOpKind, t: &AttrTarget<'r>, value: &Value) -> ScimResult<()> {
        let current = self.get_attr(t);
        let updated = if t.def.multi_valued {
            self.changed_items(op, t, into_items(current), value)?
        } else {
            self.changed_single(t, current, value)?
        };
        self.put_attr(t, updated)
    }

    /// Add and replace agree on singular attributes: set a simple value, merge
    /// a complex one (RFC 7644 §3.5.2.3), set a sub-attribute.
    fn changed_single(&self, t: &AttrTarget<'_>, current: Option<Value>, value: &Value) -> ScimResult<Option<Value>> {
        match t.sub {
            Some(sub) => {
                let mut obj = match current {
                    Some(Value::Object(obj)) => obj,
                    _ => Map::new(),
                };
                set_ci(&mut obj, &sub.name, value.clone());
                Ok(Some(Value::Object(obj)))
            }
            None if t.def.is_complex() => {
                let given = match value {
                    Value::Object(obj) => canonical(t.def, obj, &t.shown)?,
                    // Entra ID sends the enterprise `manager` as the manager's id alone.
                    Value::String(s) => match t.def.sub_attribute("value") {
                        Some(_) if s.is_empty() => return Ok(None),
                        Some(sub) => Map::from_iter([(sub.name.clone(), value.clone())]),
                        None => return Ok(Some(value.clone())),
                    },
                    // validate_write reports the wrong type.
                    other => return Ok(Some(other.clone())),
                };
                let mut obj = match current {
                    Some(Value::Object(obj)) => obj,
                    _ => Map::new(),
                };
                merge(&mut obj, given);
                Ok(Some(Value::Object(obj)))
            }
            None => Ok(Some(value.clone())),
        }
    }

    fn changed_items(
        &self,
        op: PatchOpKind,
        t: &AttrTarget<'_>,
        mut items: Vec<Value>,
        value: &Value,
    ) -> ScimResult<Option<Value>> {
        let changed: Vec<usize> = match (op, &t.filter, t.sub) {
            (PatchOpKind::Replace, None, None) => {
                items = self.elements(t, value)?;
                Vec::new()
            }
            (_, None, None) => {
                let start = items.len();
                let mut seen: HashSet<String> = items.iter().map(fingerprint).collect();
                for element in self.elements(t, value)? {
                    if seen.insert(fingerprint(&element)) {
                        items.push(element);
                    }
                }
                (start..items.len()).collect()
            }
            (_, filter, sub) => {
                let mut selected = select(&items, filter.as_ref());
                if selected.is_empty() {
                    let template = filter.as_ref().filter(|_| op == PatchOpKind::Add);
                    let Some(template) = template.and_then(|f| template_element(t.def, f)) else {
                        return Err(no_match(t));
                    };
                    items.push(Value::Object(template));
                    selected.push(items.len() - 1);
                }
                let given = match (sub, value) {
                    (Some(_), _) => None,
                    (None, Value::Object(obj)) => Some(canonical(t.def, obj, &t.shown)?),
                    (None, _) => {
                        return Err(ScimError::invalid_syntax(format!(
                            "the value for '{}' must be an object of its sub-attributes",
                            t.shown
                        )));
                    }
                };
                for &i in &selected {
                    let Some(element) = items.get_mut(i) else { continue };
                    if !element.is_object() {
                        *element = Value::Object(Map::new());
                    }
                    let Value::Object(obj) = element else { continue };
                    match (sub, &given) {
                        (Some(sub), _) => set_ci(obj, &sub.name, value.clone()),
                        (None, Some(given)) if op == PatchOpKind::Replace => {
                            *obj = without_nulls(given.clone());
                        }
                        (None, Some(given)) => merge(obj, given.clone()),
                        (None, None) => {}
                    }
                }
                selected
            }
        };
        clear_other_primaries(&mut items, &changed);
        items.retain(|e| !unassigned(e));
        Ok(Some(Value::Array(items)))
    }

    fn change_members(&mut self, op: PatchOpKind, filter: Option<&Filter>, value: &Value) -> ScimResult<()> {
        if filter.is_some() {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!(
                    "a value filter on members is supported by remove only, not by {}",
                    op.as_str()
                ),
            ));
        }
        let list = member_values(value)?;
        match op {
            PatchOpKind::Replace => self.members.replace_members(list),
            _ => self.members.add_members(list),
        }
        Ok(())
    }

    /// The elements of a multi-valued attribute a value gives: an array or a
    /// single value, sub-attribute names made canonical, `null`s dropped.
    fn elements(&self, t: &AttrTarget<'_>, value: &Value) -> ScimResult<Vec<Value>> {
        let mut out = Vec::new();
        for item in items_of(value) {
            let element = match item {
                Value::Object(obj) if t.def.is_complex() => {
                    Value::Object(without_nulls(canonical(t.def, obj, &t.shown)?))
                }
                other => other.clone(),
            };
            if !unassigned(&element) {
                out.push(element);
            }
        }
        Ok(out)
    }

    // -- The document --------------------------------------------------------

    fn get_attr(&self, t: &AttrTarget<'_>) -> Option<Value> {
        let container = match t.ext {
            None => &self.doc,
            Some(urn) => get_ci(&self.doc, urn)?.as_object()?,
        };
        get_ci(container, &t.def.name).filter(|v| !unassigned(v)).cloned()
    }

    /// Stores a new value (`None` or empty: unassigned), refusing to
    /// unassign a required attribute.
    fn put_attr(&mut self, t: &AttrTarget<'_>, value: Option<Value>) -> ScimResult<()> {
        let value = value.filter(|v| !unassigned(v));
        if value.is_none() && t.def.required && t.def.mutability != Mutability::ReadOnly {
            return Err(ScimError::invalid_value(format!(
                "'{}' is required and cannot be removed",
                t.def.name
            )));
        }
        let Some(urn) = t.ext else {
            put(&mut self.doc, &t.def.name, value);
            return Ok(());
        };
        let mut container = match get_ci(&self.doc, urn) {
            Some(Value::Object(obj)) => obj.clone(),
            _ => Map::new(),
        };
        put(&mut container, &t.def.name, value);
        set_ci(&mut self.doc, urn, Value::Object(container));
        Ok(())
    }

    /// RFC 7644 §3.5.2: an immutable attribute that has a value keeps it
    /// (a multi-valued one keeps its values and may gain others).
    fn check_immutable(&self, original: &Map<String, Value>) -> ScimResult<()> {
        let reg = self.reg;
        let mut containers: Vec<(Option<&str>, &[AttributeDef])> = vec![
            (None, reg.common_attributes()),
            (None, reg.core_schema(self.kind).attributes.as_slice()),
        ];
        for ext in reg.extensions(self.kind) {
            if let Some(schema) = reg.schema(ext.schema_urn) {
                containers.push((Some(ext.schema_urn), schema.attributes.as_slice()));
            }
        }
        for (ext, defs) in containers {
            let lookup = |doc: &'_ Map<String, Value>, name: &str| -> Option<Value> {
                let container = match ext {
                    None => doc,
                    Some(urn) => get_ci(doc, urn)?.as_object()?,
                };
                get_ci(container, name).filter(|v| !unassigned(v)).cloned()
            };
            for def in defs.iter().filter(|d| d.mutability == Mutability::Immutable) {
                let Some(old) = lookup(original, &def.name) else {
                    continue;
                };
                let new = lookup(&self.doc, &def.name);
                let kept = match &new {
                    None => false,
                    Some(new) if def.multi_valued => {
                        let new = items_of(new);
                        items_of(&old).iter().all(|o| new.iter().any(|n| same_value(def, o, n)))
                    }
                    Some(new) => same_value(def, &old, new),
                };
                if !kept {
                    let path = match ext {
                        Some(urn) => format!("{urn}:{}", def.name),
                        None => def.name.clone(),
                    };
                    return Err(ScimError::mutability(format!(
                        "'{path}' is immutable and already has a value"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The document with `members` left out and `schemas` listing exactly
    /// the extensions that hold data.
    fn finish(mut self) -> PatchOutcome {
        if self.kind == ResourceKind::Group {
            remove_ci(&mut self.doc, "members");
        }
        for ext in self.reg.extensions(self.kind) {
            let urn = ext.schema_urn;
            let holds_data = get_ci(&self.doc, urn).is_some_and(|v| !unassigned(v));
            if !holds_data {
                remove_ci(&mut self.doc, urn);
            }
            let listed = match get_ci(&self.doc, "schemas") {
                Some(Value::Array(urns)) => urns
                    .iter()
                    .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn))),
                _ => false,
            };
            if holds_data && !listed {
                let core = Value::from(self.kind.core_schema());
                let mut schemas = match remove_ci(&mut self.doc, "schemas") {
                    Some(Value::Array(urns)) => urns,
                    _ => vec![core],
                };
                schemas.push(Value::from(urn));
                self.doc.insert("schemas".into(), Value::Array(schemas));
            } else if !holds_data
                && listed
                && let Some(Value::Array(urns)) = get_ci_mut(&mut self.doc, "schemas")
            {
                urns.retain(|u| !u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn)));
            }
        }
        PatchOutcome {
            document: Value::Object(self.doc),
            members: self.members,
        }
    }
}

// ---------------------------------------------------------------------------
// Members

/// The members a value lists: an array of (or one) `{"value": id, "type": …}`;
/// `display` and `$ref` are ignored.
fn member_values(value: &Value) -> ScimResult<Vec<MemberValue>> {
    let mut out = Vec::new();
    for item in items_of(value) {
        let Value::Object(fields) = item else {
            return Err(ScimError::invalid_value(
                "each member must be an object with a 'value' holding the member's id",
            ));
        };
        let mut id = None;
        let mut kind = None;
        for (key, v) in fields {
            if key.eq_ignore_ascii_case("value") {
                match v {
                    Value::String(s) if !s.trim().is_empty() => id = Some(s.clone()),
                    _ => return Err(ScimError::invalid_value("'members.value' must be a non-empty string")),
                }
            } else if key.eq_ignore_ascii_case("type") {
                kind = match v {
                    Value::Null => None,
                    Value::String(s) => match ["User", "Group"].into_iter().find(|t| t.eq_ignore_ascii_case(s)) {
                        Some(t) => Some(t.to_string()),
                        None => return Err(ScimError::invalid_value("'members.type' must be one of User, Group")),
                    },
                    _ => return Err(ScimError::invalid_value("'members.type' must be a string")),
                };
            } else if !key.eq_ignore_ascii_case("display") && !key.eq_ignore_ascii_case("$ref") {
                return Err(ScimError::bad_request(
                    ScimType::InvalidPath,
                    format!("unknown attribute 'members.{key}'"),
                ));
            }
        }
        let Some(value) = id else {
            return Err(ScimError::invalid_value("'members.value' is required"));
        };
        out.push(MemberValue { value, kind });
    }
    Ok(out)
}

/// Collects the ids of `members[value eq "a" or value eq "b"]`; false for
/// any other filter.
fn member_ids(filter: &Filter, out: &mut Vec<String>) -> bool {
    match filter {
        Filter::ValuePath(_, inner) => member_ids(inner, out),
        Filter::Or(a, b) => member_ids(a, out) && member_ids(b, out),
        Filter::Compare(attr, CompareOp::Eq, Operand::Text(id)) if attr.sub_attribute_name() == Some("value") => {
            out.push(id.clone());
            true
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Values

fn no_match(t: &AttrTarget<'_>) -> ScimError {
    ScimError::bad_request(
        ScimType::NoTarget,
        format!("no value of '{}' matches the path", t.shown),
    )
}

/// `obj` with its keys renamed to the sub-attribute names of `def`; `null`s kept.
fn canonical(def: &AttributeDef, obj: &Map<String, Value>, shown: &str) -> ScimResult<Map<String, Value>> {
    let mut out = Map::new();
    for (key, value) in obj {
        let Some(sub) = def.sub_attribute(key) else {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!("unknown attribute '{shown}.{key}'"),
            ));
        };
        if out.insert(sub.name.clone(), value.clone()).is_some() {
            return Err(ScimError::invalid_syntax(format!(
                "attribute '{shown}.{}' is given more than once",
                sub.name
            )));
        }
    }
    Ok(out)
}

fn without_nulls(mut obj: Map<String, Value>) -> Map<String, Value> {
    obj.retain(|_, v| !v.is_null());
    obj
}

/// Sets each given sub-attribute of `obj`; `null` unassigns it.
fn merge(obj: &mut Map<String, Value>, given: Map<String, Value>) {
    for (key, value) in given {
        put(obj, &key, Some(value).filter(|v| !v.is_null()));
    }
}

/// The element an equality filter describes (`type eq "work" and primary eq
/// true` → `{"type": "work", "primary": true}`); `None` for other filters.
fn template_element(def: &AttributeDef, filter: &Filter) -> Option<Map<String, Value>> {
    fn collect(def: &AttributeDef, filter: &Filter, out: &mut Map<String, Value>) -> Option<()> {
        match filter {
            Filter::ValuePath(_, inner) => collect(def, inner, out),
            Filter::And(a, b) => {
                collect(def, a, out)?;
                collect(def, b, out)
            }
            Filter::Compare(attr, CompareOp::Eq, operand) => {
                let sub = def.sub_attribute(attr.sub_attribute_name()?)?;
                let value = match operand {
                    Operand::Text(s) | Operand::DateTime(s) => Value::String(s.clone()),
                    Operand::Bool(b) => Value::Bool(*b),
                    Operand::Number(n) => Value::Number(Number::from_f64(*n)?),
                    Operand::Null => return None,
                };
                out.insert(sub.name.clone(), value);
                Some(())
            }
            _ => None,
        }
    }
    let mut out = Map::new();
    collect(def, filter, &mut out)?;
    Some(out)
}

/// The positions of the elements `filter` selects; all when there is none.
fn select(items: &[Value], filter: Option<&Filter>) -> Vec<usize> {
    (0..items.len())
        .filter(|&i| match (filter, items.get(i)) {
            (None, _) => true,
            (Some(f), Some(e)) => e.is_object() && matches_element(f, e),
            (Some(_), None) => false,
        })
        .collect()
}

/// RFC 7644 §3.5.2: a value made primary takes `primary` from the others.
fn clear_other_primaries(items: &mut [Value], changed: &[usize]) {
    let made_primary = changed
        .iter()
        .any(|&i| items.get(i).is_some_and(|e| is_true(e.get("primary"))));
    if !made_primary {
        return;
    }
    let changed: HashSet<usize> = changed.iter().copied().collect();
    for (i, element) in items.iter_mut().enumerate() {
        if !changed.contains(&i)
            && let Value::Object(obj) = element
            && is_true(obj.get("primary"))
        {
            obj.insert("primary".into(), Value::Bool(false));
        }
    }
}

/// `true`, or Entra's `"True"`.
fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Whether `element` has every sub-attribute value `given` has (or equals it).
fn contains(def: &AttributeDef, given: &Value, element: &Value) -> bool {
    match (given, element) {
        (Value::Object(g), Value::Object(e)) if def.is_complex() => g.iter().all(|(k, v)| {
            let sub = def.sub_attribute(k);
            get_ci(e, k).is_some_and(|w| sub.is_some_and(|s| same_value(s, v, w)))
        }),
        _ => same_value(def, given, element),
    }
}

/// Equality as the attribute's `caseExact` has it.
fn same_value(def: &AttributeDef, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y))
            if !def.case_exact && matches!(def.attr_type, AttrType::String | AttrType::Reference) =>
        {
            x.to_lowercase() == y.to_lowercase()
        }
        (Value::Object(x), Value::Object(y)) if def.is_complex() => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    let sub = def.sub_attribute(k);
                    get_ci(y, k).is_some_and(|w| sub.map_or(v == w, |s| same_value(s, v, w)))
                })
        }
        _ => a == b,
    }
}

/// A text equal for equal JSON values, whatever their key order.
fn fingerprint(value: &Value) -> String {
    match value {
        Value::Object(obj) => {
            let mut entries: Vec<_> = obj.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let fields: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), fingerprint(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        other => other.to_string(),
    }
}

fn unassigned(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(obj) => obj.is_empty(),
        _ => false,
    }
}

fn items_of(value: &Value) -> &[Value] {
    match value {
        Value::Null => &[],
        Value::Array(items) => items,
        single => std::slice::from_ref(single),
    }
}

fn into_items(value: Option<Value>) -> Vec<Value> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(single) => vec![single],
    }
}

/// Removes every spelling of `key`; returns the value of one of them.
fn remove_ci(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let spellings: Vec<String> = map.keys().filter(|k| k.eq_ignore_ascii_case(key)).cloned().collect();
    let mut removed = None;
    for spelling in spellings {
        let value = map.remove(&spelling);
        if removed.is_none() || spelling == key {
            removed = value;
        }
    }
    removed
}

/// Sets `key` (other spellings removed), in place when it is present.
fn set_ci(map: &mut Map<String, Value>, key: &str, value: Value) {
    let others: Vec<String> = map
        .keys()
        .filter(|k| k.as_str() != key && k.eq_ignore_ascii_case(key))
        .cloned()
        .collect();
    for other in others {
        map.remove(&other);
    }
    map.insert(key.to_string(), value);
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => set_ci(map, key, v),
        None => {
            remove_ci(map, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::scim::ENTERPRISE_USER_SCHEMA;
    use crate::scim::resource::validate_write;

    const USER: ResourceKind = ResourceKind::User;
    const GROUP: ResourceKind = ResourceKind::Group;
    const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
    const ID1: &str = "2819c223-7f76-453a-919d-413861904646";
    const ID2: &str = "902c246b-6245-4190-8e05-00816be7344a";

    fn reg() -> &'static SchemaRegistry {
        SchemaRegistry::builtin()
    }

    fn body(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    }

    fn run_with(reg: &SchemaRegistry, kind: ResourceKind, doc: &Value, ops: Value) -> ScimResult<PatchOutcome> {
        let request = parse_patch_request(&body(ops))?;
        apply_patch(reg, kind, doc, &request)
    }

    fn run(kind: ResourceKind, doc: &Value, ops: Value) -> ScimResult<PatchOutcome> {
        run_with(reg(), kind, doc, ops)
    }

    fn user() -> Value {
        json!({
            "schemas": [CORE_USER],
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ]
        })
    }

    fn group() -> Value {
        json!({"schemas": [CORE_GROUP], "displayName": "Tour Guides"})
    }

    fn patched(kind: ResourceKind, doc: &Value, ops: Value) -> PatchOutcome {
        run(kind, doc, ops).unwrap_or_else(|e| panic!("patch failed: {e}"))
    }

    fn patched_user(ops: Value) -> Value {
        patched(USER, &user(), ops).document
    }

    fn member_changes(ops: Value) -> MemberChanges {
        let outcome = patched(GROUP, &group(), ops);
        assert!(outcome.document.get("members").is_none());
        outcome.members
    }

    fn assert_rejected_doc(kind: ResourceKind, doc: &Value, ops: Value, scim_type: ScimType, mentions: &str) {
        let err = run(kind, doc, ops).expect_err("the patch is rejected");
        assert_eq!((err.status, err.scim_type), (400, Some(scim_type)), "{}", err.detail);
        assert!(
            err.detail.contains(mentions),
            "'{}' does not mention '{mentions}'",
            err.detail
        );
    }

    fn assert_rejected(ops: Value, scim_type: ScimType, mentions: &str) {
        assert_rejected_doc(USER, &user(), ops, scim_type, mentions);
    }

    fn assert_body_rejected(body: Value, scim_type: ScimType) {
        let err = parse_patch_request(&body).expect_err("the body is rejected");
        assert_eq!((err.status, err.scim_type), (400, Some(scim_type)), "{}", err.detail);
    }

    fn revalidated(doc: &Value, existing: &Value) -> Value {
        validate_write(reg(), USER, doc, Some(existing))
            .map(|w| Value::Object(w.document))
            .unwrap_or_else(|e| panic!("re-validation failed: {e}"))
    }

    fn member(id: &str) -> MemberValue {
        MemberValue {
            value: id.to_string(),
            kind: None,
        }
    }

    fn typed_member(id: &str, kind: &str) -> MemberValue {
        MemberValue {
            value: id.to_string(),
            kind: Some(kind.to_string()),
        }
    }

    // -- Parsing -------------------------------------------------------------

    #[test]
    fn a_body_without_schemas_is_accepted() {
        let request = parse_patch_request(&json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}));
        assert_eq!(request.map(|r| r.operations.len()), Ok(1));
    }

    #[test]
    fn schemas_without_the_patch_op_urn_is_rejected_with_invalid_syntax() {
        let ops = json!([{"op": "add", "path": "title", "value": "x"}]);
        assert_body_rejected(
            json!({"schemas": [CORE_USER], "Operations": ops}),
            ScimType::InvalidSyntax,
        );
        assert_body_rejected(
            json!({"schemas": PATCH_OP_SCHEMA, "Operations": ops}),
            ScimType::InvalidSyntax,
        );
        assert_body_rejected(json!({"schemas": [], "Operations": ops}), ScimType::InvalidSyntax);
    }

    #[test]
    fn extra_schema_urns_next_to_patch_op_are_accepted_in_any_case() {
        let ops = json!([{"op": "add", "path": "title", "value": "x"}]);
        let body = json!({"schemas": [CORE_USER, PATCH_OP_SCHEMA.to_uppercase()], "Operations": ops});
        assert!(parse_patch_request(&body).is_ok());
    }

    #[test]
    fn the_operations_key_is_case_insensitive() {
        for key in ["Operations", "operations", "OPERATIONS"] {
            let body = json!({key: [{"op": "add", "path": "title", "value": "x"}]});
            assert!(parse_patch_request(&body).is_ok(), "{key}");
        }
    }

    #[test]
    fn missing_empty_or_non_array_operations_are_rejected_with_invalid_syntax() {
        assert_body_rejected(json!({"schemas": [PATCH_OP_SCHEMA]}), ScimType::InvalidSyntax);
        assert_body_rejected(body(json!([])), ScimType::InvalidSyntax);
        assert_body_rejected(body(json!({"op": "add"})), ScimType::InvalidSyntax);
        assert_body_rejected(json!([{"op": "add"}]), ScimType::InvalidSyntax);
        assert_body_rejected(body(json!(["add"])), ScimType::InvalidSyntax);
    }

    #[test]
    fn op_names_are_case_insensitive() {
        for (name, kind) in [
            ("add", PatchOpKind::Add),
            ("Add", PatchOpKind::Add),
            ("ADD", PatchOpKind::Add),
            ("replace", PatchOpKind::Replace),
            ("Replace", PatchOpKind::Replace),
            ("remove", PatchOpKind::Remove),
            ("Remove", PatchOpKind::Remove),
        ] {
            let request = parse_patch_request(&body(json!([{"op": name, "path": "title", "value": "x"}])));
            assert_eq!(request.map(|r| r.operations[0].op), Ok(kind), "{name}");
        }
    }

    #[test]
    fn an_unknown_missing_or_non_string_op_is_rejected_with_invalid_syntax() {
        for op in [json!("move"), json!("copy"), json!(""), json!(1), json!(null)] {
            assert_body_rejected(
                body(json!([{"op": op, "path": "title", "value": "x"}])),
                ScimType::InvalidSyntax,
            );
        }
        assert_body_rejected(body(json!([{"path": "title", "value": "x"}])), ScimType::InvalidSyntax);
    }

    #[test]
    fn operation_keys_are_case_insensitive() {
        let doc = patched_user(json!([{"Op": "Replace", "Path": "title", "Value": "Tour Guide"}]));
        assert_eq!(doc["title"], "Tour Guide");
    }

    #[test]
    fn remove_without_a_path_is_rejected_with_no_target() {
        assert_body_rejected(body(json!([{"op": "remove"}])), ScimType::NoTarget);
        assert_body_rejected(
            body(json!([{"op": "remove", "value": {"title": "x"}}])),
            ScimType::NoTarget,
        );
    }

    #[test]
    fn add_or_replace_without_a_value_is_rejected_with_invalid_syntax() {
        assert_body_rejected(body(json!([{"op": "add", "path": "title"}])), ScimType::InvalidSyntax);
        assert_body_rejected(
            body(json!([{"op": "add", "path": "title", "value": null}])),
            ScimType::InvalidSyntax,
        );
        assert_body_rejected(
            body(json!([{"op": "replace", "path": "title"}])),
            ScimType::InvalidSyntax,
        );
    }

    #[test]
    fn a_path_less_add_or_replace_needs_an_object_value() {
        for value in [json!("x"), json!([{"title": "x"}]), json!(null), json!(1)] {
            assert_body_rejected(
                body(json!([{"op": "replace", "value": value}])),
                ScimType::InvalidSyntax,
            );
        }
    }

    #[test]
    fn an_empty_or_null_path_is_read_as_absent() {
        for path in [json!(""), json!("  "), json!(null)] {
            let doc = patched_user(json!([{"op": "replace", "path": path, "value": {"title": "Boss"}}]));
            assert_eq!(doc["title"], "Boss");
        }
    }

    #[test]
    fn a_malformed_path_is_rejected_with_invalid_path() {
        for path in [
            json!("emails[type eq"),
            json!("name.givenName.x"),
            json!("a b"),
            json!(5),
        ] {
            assert_body_rejected(
                body(json!([{"op": "add", "path": path, "value": "x"}])),
                ScimType::InvalidPath,
            );
        }
    }

    #[test]
    fn more_than_the_maximum_number_of_operations_is_rejected_with_invalid_value() {
        let op = json!({"op": "add", "path": "title", "value": "x"});
        let ops = Value::Array(vec![op; MAX_OPERATIONS + 1]);
        assert_body_rejected(body(ops), ScimType::InvalidValue);
        let op = json!({"op": "add", "path": "title", "value": "x"});
        assert!(parse_patch_request(&body(Value::Array(vec![op; MAX_OPERATIONS]))).is_ok());
    }

    #[test]
    fn non_object_bodies_and_operations_are_rejected_with_invalid_syntax() {
        assert_body_rejected(json!("add"), ScimType::InvalidSyntax);
        assert_body_rejected(body(json!([null])), ScimType::InvalidSyntax);
    }

    #[test]
    fn errors_name_the_failing_operation() {
        let ops = json!([{"op": "add", "path": "title", "value": "x"}, {"op": "add", "path": "nope", "value": 1}]);
        assert_rejected(ops, ScimType::InvalidPath, "Operations[1]");
    }

    // -- Add -----------------------------------------------------------------

    #[test]
    fn add_sets_a_singular_simple_attribute() {
        let doc = patched_user(json!([{"op": "add", "path": "nickName", "value": "Babs"}]));
        assert_eq!(doc["nickName"], "Babs");
        let doc = patched_user(json!([{"op": "add", "path": "displayName", "value": "B. Jensen"}]));
        assert_eq!(doc["displayName"], "B. Jensen");
    }

    #[test]
    fn add_merges_an_object_into_a_complex_singular_attribute() {
        let doc =
            patched_user(json!([{"op": "add", "path": "name", "value": {"middleName": "Jane", "givenName": "B"}}]));
        assert_eq!(
            doc["name"],
            json!({"givenName": "B", "familyName": "Jensen", "middleName": "Jane"})
        );
    }

    #[test]
    fn add_sets_a_sub_attribute_creating_its_parent() {
        let doc = patched_user(json!([{"op": "add", "path": "name.honorificPrefix", "value": "Ms."}]));
        assert_eq!(doc["name"]["honorificPrefix"], "Ms.");
        assert_eq!(doc["name"]["givenName"], "Barbara");
        let bare = json!({"userName": "u"});
        let doc = patched(
            USER,
            &bare,
            json!([{"op": "add", "path": "name.givenName", "value": "U"}]),
        )
        .document;
        assert_eq!(doc["name"], json!({"givenName": "U"}));
    }

    #[test]
    fn add_appends_to_a_multi_valued_attribute_skipping_exact_duplicates() {
        let doc = patched_user(json!([{"op": "add", "path": "emails", "value": [
            {"value": "babs@jensen.org", "type": "home"},
            {"value": "b@other.org", "type": "other"},
            {"type": "other", "value": "b@other.org"}
        ]}]));
        assert_eq!(doc["emails"].as_array().map(Vec::len), Some(3));
        assert_eq!(doc["emails"][2], json!({"value": "b@other.org", "type": "other"}));
        let doc =
            patched_user(json!([{"op": "add", "path": "phoneNumbers", "value": {"value": "555", "type": "work"}}]));
        assert_eq!(doc["phoneNumbers"], json!([{"value": "555", "type": "work"}]));
    }

    #[test]
    fn add_with_a_value_filter_sets_the_sub_attribute_on_every_matching_element() {
        let doc = patched_user(json!([{"op": "add", "path": "emails[type eq \"work\"].display", "value": "Work"}]));
        assert_eq!(doc["emails"][0]["display"], "Work");
        assert!(doc["emails"][1].get("display").is_none());
    }

    #[test]
    fn add_with_an_equality_filter_and_no_match_creates_the_element() {
        let doc = patched_user(json!([
            {"op": "Add", "path": "emails[type eq \"other\"].value", "value": "b@other.org"},
            {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "100 Universal City Plaza"}
        ]));
        assert_eq!(doc["emails"][2], json!({"type": "other", "value": "b@other.org"}));
        assert_eq!(
            doc["addresses"],
            json!([{"type": "work", "streetAddress": "100 Universal City Plaza"}])
        );
        let doc =
            patched_user(json!([{"op": "add", "path": "phoneNumbers[type eq \"mobile\"]", "value": {"value": "555"}}]));
        assert_eq!(doc["phoneNumbers"], json!([{"type": "mobile", "value": "555"}]));
    }

    #[test]
    fn add_with_another_filter_and_no_match_is_rejected_with_no_target() {
        assert_rejected(
            json!([{"op": "add", "path": "emails[type ne \"work\" and type ne \"home\"].display", "value": "x"}]),
            ScimType::NoTarget,
            "emails",
        );
        assert_rejected(
            json!([{"op": "add", "path": "emails[value co \"@nowhere\"].display", "value": "x"}]),
            ScimType::NoTarget,
            "emails",
        );
    }

    #[test]
    fn add_of_a_sub_attribute_of_a_multi_valued_attribute_sets_it_on_every_element() {
        let doc = patched_user(json!([{"op": "add", "path": "emails.display", "value": "mail"}]));
        assert_eq!(doc["emails"][0]["display"], "mail");
        assert_eq!(doc["emails"][1]["display"], "mail");
        assert_rejected(
            json!([{"op": "add", "path": "phoneNumbers.value", "value": "555"}]),
            ScimType::NoTarget,
            "phoneNumbers",
        );
    }

    #[test]
    fn add_of_an_enterprise_attribute_nests_it_under_the_extension_and_lists_the_schema() {
        let path = format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber");
        let doc = patched_user(json!([{"op": "add", "path": path, "value": "701984"}]));
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA], json!({"employeeNumber": "701984"}));
        assert_eq!(doc["schemas"], json!([CORE_USER, ENTERPRISE_USER_SCHEMA]));
        assert!(doc.get("employeeNumber").is_none());
    }

    #[test]
    fn a_schemas_key_inside_an_extension_object_is_ignored() {
        let reg = SchemaRegistry::builtin();
        let existing = json!({"schemas": [CORE_USER], "userName": "u"});
        let body = json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "add", "path": ENTERPRISE_USER_SCHEMA,
            "value": {"schemas": [ENTERPRISE_USER_SCHEMA], "department": "D"}}]});
        let request = parse_patch_request(&body).expect("parses");
        let outcome = apply_patch(reg, ResourceKind::User, &existing, &request).expect("applies");
        assert_eq!(outcome.document[ENTERPRISE_USER_SCHEMA], json!({"department": "D"}));
    }

    #[test]
    fn add_of_a_bare_extension_urn_merges_its_attributes() {
        let existing = json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"costCenter": "4130"}});
        let ops = json!([{"op": "add", "path": ENTERPRISE_USER_SCHEMA, "value": {"department": "Tour Operations"}}]);
        let doc = patched(USER, &existing, ops).document;
        assert_eq!(
            doc[ENTERPRISE_USER_SCHEMA],
            json!({"costCenter": "4130", "department": "Tour Operations"})
        );
    }

    #[test]
    fn rfc_path_less_add_merges_attributes_and_appends_emails() {
        let doc = patched_user(json!([{"op": "add", "value": {
            "emails": [{"value": "babs@jensen.org", "type": "home"}, {"value": "b@jensen.org", "type": "home"}],
            "nickname": "Babs"
        }}]));
        assert_eq!(doc["nickName"], "Babs");
        assert!(doc.get("nickname").is_none());
        assert_eq!(doc["emails"].as_array().map(Vec::len), Some(3));
    }

    // -- Replace -------------------------------------------------------------

    #[test]
    fn replace_sets_a_singular_attribute() {
        let doc = patched_user(json!([{"op": "replace", "path": "displayName", "value": "Barbara"}]));
        assert_eq!(doc["displayName"], "Barbara");
    }

    #[test]
    fn replace_of_a_complex_attribute_merges_the_given_sub_attributes() {
        let doc = patched_user(json!([{"op": "replace", "path": "name", "value": {"givenName": "Babs"}}]));
        assert_eq!(doc["name"], json!({"givenName": "Babs", "familyName": "Jensen"}));
        let doc = patched_user(json!([{"op": "replace", "path": "name", "value": {"givenName": null}}]));
        assert_eq!(doc["name"], json!({"familyName": "Jensen"}));
    }

    #[test]
    fn replace_of_a_multi_valued_attribute_replaces_all_values() {
        let doc = patched_user(json!([{"op": "replace", "path": "emails", "value": [{"value": "new@example.com"}]}]));
        assert_eq!(doc["emails"], json!([{"value": "new@example.com"}]));
        let doc = patched_user(json!([{"op": "replace", "path": "emails", "value": {"value": "one@example.com"}}]));
        assert_eq!(doc["emails"], json!([{"value": "one@example.com"}]));
        let doc = patched_user(json!([{"op": "replace", "path": "emails", "value": []}]));
        assert!(doc.get("emails").is_none());
    }

    #[test]
    fn rfc_replace_with_a_value_filter_replaces_the_matching_elements() {
        let existing = json!({"userName": "u", "addresses": [
            {"type": "work", "streetAddress": "old", "locality": "Hollywood"},
            {"type": "home", "streetAddress": "456 Hollywood Blvd"}
        ]});
        let address = json!({"type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood",
                             "region": "CA", "postalCode": "91608", "country": "US", "primary": true});
        let ops = json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": address}]);
        let doc = patched(USER, &existing, ops).document;
        assert_eq!(doc["addresses"][0], address);
        assert_eq!(doc["addresses"][1]["streetAddress"], "456 Hollywood Blvd");
    }

    #[test]
    fn rfc_replace_of_a_filtered_sub_attribute_sets_it_on_the_matches() {
        let doc = patched_user(json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "babs@example.com"}
        ]));
        assert_eq!(
            doc["emails"][0],
            json!({"value": "babs@example.com", "type": "work", "primary": true})
        );
        assert_eq!(doc["emails"][1]["value"], "babs@jensen.org");
    }

    #[test]
    fn replace_with_a_value_filter_and_no_match_is_rejected_with_no_target() {
        assert_rejected(
            json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "x@y.z"}]),
            ScimType::NoTarget,
            "emails",
        );
        assert_rejected(
            json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {"locality": "x"}}]),
            ScimType::NoTarget,
            "addresses",
        );
    }

    #[test]
    fn replace_of_an_unassigned_attribute_adds_it() {
        let doc = patched_user(json!([
            {"op": "replace", "path": "title", "value": "Tour Guide"},
            {"op": "replace", "path": "phoneNumbers", "value": [{"value": "555", "type": "work"}]},
            {"op": "replace", "path": format!("{ENTERPRISE_USER_SCHEMA}:manager.value"), "value": ID1}
        ]));
        assert_eq!(doc["title"], "Tour Guide");
        assert_eq!(doc["phoneNumbers"], json!([{"value": "555", "type": "work"}]));
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": ID1}));
    }

    #[test]
    fn replace_with_null_unassigns_the_attribute() {
        let doc = patched_user(json!([
            {"op": "replace", "path": "displayName", "value": null},
            {"op": "replace", "path": "name.givenName", "value": null}
        ]));
        assert!(doc.get("displayName").is_none());
        assert_eq!(doc["name"], json!({"familyName": "Jensen"}));
    }

    #[test]
    fn rfc_path_less_replace_replaces_multi_valued_attributes_wholesale() {
        let doc = patched_user(json!([{"op": "replace", "value": {
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
            "nickname": "Babs"
        }}]));
        assert_eq!(
            doc["emails"],
            json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
        );
        assert_eq!(doc["nickName"], "Babs");
        assert_eq!(doc["name"]["givenName"], "Barbara");
    }

    #[test]
    fn path_less_replace_with_an_extension_urn_key_merges_its_attributes() {
        let existing = json!({"userName": "u", "schemas": [CORE_USER, ENTERPRISE_USER_SCHEMA],
                              ENTERPRISE_USER_SCHEMA: {"costCenter": "4130", "division": "Theme Park"}});
        let ops = json!([{"op": "replace", "value": {
            ENTERPRISE_USER_SCHEMA.to_lowercase(): {"Division": "Parks", "manager": {"value": ID1}}
        }}]);
        let doc = patched(USER, &existing, ops).document;
        assert_eq!(
            doc[ENTERPRISE_USER_SCHEMA],
            json!({"costCenter": "4130", "division": "Parks", "manager": {"value": ID1}})
        );
        let ops = json!([{"op": "replace", "value": {ENTERPRISE_USER_SCHEMA: null}}]);
        let doc = patched(USER, &existing, ops).document;
        assert!(doc.get(ENTERPRISE_USER_SCHEMA).is_none());
        assert_eq!(doc["schemas"], json!([CORE_USER]));
    }

    #[test]
    fn path_less_values_with_a_core_urn_key_apply_its_attributes() {
        let doc = patched_user(json!([{"op": "replace", "value": {CORE_USER: {"title": "Boss", "id": "x"}}}]));
        assert_eq!(doc["title"], "Boss");
    }

    #[test]
    fn path_less_values_ignore_null_on_add_and_unassign_on_replace() {
        let doc = patched_user(json!([{"op": "add", "value": {"displayName": null, "title": "T"}}]));
        assert_eq!(
            (doc["displayName"].clone(), doc["title"].clone()),
            (json!("Babs"), json!("T"))
        );
        let doc = patched_user(json!([{"op": "replace", "value": {"displayName": null}}]));
        assert!(doc.get("displayName").is_none());
    }

    // -- Remove --------------------------------------------------------------

    #[test]
    fn remove_unassigns_simple_complex_and_sub_attributes() {
        let doc = patched_user(json!([{"op": "remove", "path": "displayName"}]));
        assert!(doc.get("displayName").is_none());
        let doc = patched_user(json!([{"op": "remove", "path": "name.givenName"}]));
        assert_eq!(doc["name"], json!({"familyName": "Jensen"}));
        let doc = patched_user(json!([{"op": "remove", "path": "name"}]));
        assert!(doc.get("name").is_none());
        let doc = patched_user(json!([
            {"op": "remove", "path": "name.givenName"},
            {"op": "remove", "path": "name.familyName"}
        ]));
        assert!(doc.get("name").is_none(), "an emptied complex attribute is unassigned");
    }

    #[test]
    fn removing_an_unassigned_attribute_succeeds() {
        let doc = patched_user(json!([{"op": "remove", "path": "title"}, {"op": "remove", "path": "phoneNumbers"}]));
        assert_eq!(doc, user());
    }

    #[test]
    fn remove_of_a_multi_valued_attribute_removes_all_values() {
        let doc = patched_user(json!([{"op": "remove", "path": "emails"}]));
        assert!(doc.get("emails").is_none());
    }

    #[test]
    fn rfc_remove_with_a_value_filter_removes_the_matching_elements() {
        let doc = patched_user(json!([
            {"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}
        ]));
        assert_eq!(doc["emails"], json!([{"value": "babs@jensen.org", "type": "home"}]));
        let doc = patched_user(json!([{"op": "remove", "path": "emails[type eq \"work\" or type eq \"home\"]"}]));
        assert!(doc.get("emails").is_none());
    }

    #[test]
    fn rfc_remove_of_a_certificate_by_value() {
        let existing = json!({"userName": "u", "x509Certificates": [{"value": "MIIDQzCCAqy"}, {"value": "AAAA"}]});
        let ops = json!([{"op": "remove", "path": "x509Certificates[value eq \"MIIDQzCCAqy\"]"}]);
        let doc = patched(USER, &existing, ops).document;
        assert_eq!(doc["x509Certificates"], json!([{"value": "AAAA"}]));
    }

    #[test]
    fn remove_with_a_value_filter_and_no_match_is_rejected_with_no_target() {
        assert_rejected(
            json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
            ScimType::NoTarget,
            "emails",
        );
        assert_rejected(
            json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"].value"}]),
            ScimType::NoTarget,
            "phoneNumbers",
        );
    }

    #[test]
    fn remove_of_a_filtered_sub_attribute_keeps_the_element() {
        let doc = patched_user(json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]));
        assert_eq!(
            doc["emails"][0],
            json!({"value": "bjensen@example.com", "type": "work"})
        );
        let doc = patched_user(json!([{"op": "remove", "path": "emails.type"}]));
        assert_eq!(doc["emails"][1], json!({"value": "babs@jensen.org"}));
    }

    #[test]
    fn remove_with_a_value_list_removes_only_the_equal_elements() {
        let ops = json!([{"op": "remove", "path": "emails", "value": [{"value": "BABS@jensen.org"}]}]);
        let doc = patched_user(ops);
        assert_eq!(
            doc["emails"],
            json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
        );
    }

    #[test]
    fn removing_a_required_attribute_is_rejected_with_invalid_value() {
        assert_rejected(
            json!([{"op": "remove", "path": "userName"}]),
            ScimType::InvalidValue,
            "userName",
        );
        assert_rejected(
            json!([{"op": "replace", "path": "userName", "value": null}]),
            ScimType::InvalidValue,
            "userName",
        );
        assert_rejected_doc(
            GROUP,
            &group(),
            json!([{"op": "remove", "path": "displayName"}]),
            ScimType::InvalidValue,
            "displayName",
        );
    }

    #[test]
    fn removing_the_last_extension_attribute_drops_the_extension_and_its_schema() {
        let existing = json!({"schemas": [CORE_USER, ENTERPRISE_USER_SCHEMA], "userName": "u",
                              ENTERPRISE_USER_SCHEMA: {"employeeNumber": "1"}});
        let path = format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber");
        let doc = patched(USER, &existing, json!([{"op": "remove", "path": path}])).document;
        assert_eq!(doc, json!({"schemas": [CORE_USER], "userName": "u"}));
        let doc = patched(
            USER,
            &existing,
            json!([{"op": "remove", "path": ENTERPRISE_USER_SCHEMA}]),
        )
        .document;
        assert_eq!(doc, json!({"schemas": [CORE_USER], "userName": "u"}));
    }

    // -- Primary -------------------------------------------------------------

    #[test]
    fn a_new_primary_value_clears_primary_on_the_others() {
        let doc = patched_user(json!([{"op": "add", "path": "emails",
            "value": [{"value": "new@example.com", "type": "work", "primary": "True"}]}]));
        assert_eq!(doc["emails"][0]["primary"], false);
        assert_eq!(doc["emails"][2]["primary"], "True");
        assert!(revalidated(&doc, &user())["emails"][2]["primary"] == true);
    }

    #[test]
    fn setting_primary_through_a_filter_clears_it_on_the_others() {
        let doc = patched_user(json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]));
        assert_eq!(doc["emails"][0]["primary"], false);
        assert_eq!(doc["emails"][1]["primary"], true);
    }

    // -- Targets that may not change -----------------------------------------

    #[test]
    fn read_only_targets_are_rejected_with_mutability() {
        let manager = format!("{ENTERPRISE_USER_SCHEMA}:manager.displayName");
        for path in [
            "id",
            "meta",
            "meta.lastModified",
            "schemas",
            "groups",
            "groups[value eq \"x\"]",
            &manager,
        ] {
            for op in ["add", "replace", "remove"] {
                assert_rejected(
                    json!([{"op": op, "path": path, "value": "x"}]),
                    ScimType::Mutability,
                    "read-only",
                );
            }
        }
        assert_rejected(
            json!([{"op": "add", "value": {"groups": [{"value": "x"}]}}]),
            ScimType::Mutability,
            "groups",
        );
    }

    /// The builtin registry with `employeeNumber` and a multi-valued `aliases` immutable.
    fn immutable_registry() -> SchemaRegistry {
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
                attrs.push(
                    json!({"name": "aliases", "type": "string", "multiValued": true, "caseExact": true,
                                  "mutability": "immutable"}),
                );
            }
        }
        SchemaRegistry::from_documents(docs).expect("modified schemas are valid")
    }

    #[test]
    fn an_immutable_attribute_with_a_value_cannot_change() {
        let reg = immutable_registry();
        let path = format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber");
        let existing = json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"employeeNumber": "1"}, "aliases": ["a"]});
        for ops in [
            json!([{"op": "replace", "path": path, "value": "2"}]),
            json!([{"op": "remove", "path": path}]),
            json!([{"op": "replace", "path": "aliases", "value": ["b"]}]),
        ] {
            let err = run_with(&reg, USER, &existing, ops).expect_err("immutable");
            assert_eq!(err.scim_type, Some(ScimType::Mutability), "{}", err.detail);
            assert!(err.detail.contains("immutable"), "{}", err.detail);
        }
        for ops in [
            json!([{"op": "replace", "path": path, "value": "1"}]),
            json!([{"op": "add", "path": "aliases", "value": "b"}]),
        ] {
            assert!(run_with(&reg, USER, &existing, ops).is_ok());
        }
        let unassigned = json!({"userName": "u"});
        let ops = json!([{"op": "add", "path": path, "value": "7"}]);
        assert!(run_with(&reg, USER, &unassigned, ops).is_ok());
    }

    #[test]
    fn an_unknown_attribute_in_a_path_is_rejected_with_invalid_path() {
        for path in [
            "nope",
            "name.nope",
            "emails[type eq \"work\"].nope",
            "emails[nope eq \"work\"]",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope",
            "urn:example:custom:2.0:User:attr",
            "members",
        ] {
            assert_rejected(
                json!([{"op": "add", "path": path, "value": "x"}]),
                ScimType::InvalidPath,
                "",
            );
        }
    }

    #[test]
    fn an_unknown_attribute_in_a_path_less_value_is_rejected_with_invalid_path() {
        assert_rejected(
            json!([{"op": "replace", "value": {"displayName": "x", "favouriteColour": "blue"}}]),
            ScimType::InvalidPath,
            "favouriteColour",
        );
        assert_rejected(
            json!([{"op": "add", "value": {ENTERPRISE_USER_SCHEMA: {"nope": "x"}}}]),
            ScimType::InvalidPath,
            "nope",
        );
    }

    #[test]
    fn an_unknown_sub_attribute_in_a_value_is_rejected_with_invalid_path() {
        assert_rejected(
            json!([{"op": "add", "path": "emails", "value": [{"value": "a@b.c", "kind": "work"}]}]),
            ScimType::InvalidPath,
            "emails.kind",
        );
        assert_rejected(
            json!([{"op": "replace", "path": "name", "value": {"nick": "B"}}]),
            ScimType::InvalidPath,
            "name.nick",
        );
    }

    #[test]
    fn a_value_filter_on_a_singular_attribute_is_rejected_with_invalid_path() {
        assert_rejected(
            json!([{"op": "replace", "path": "name[givenName eq \"Barbara\"].givenName", "value": "B"}]),
            ScimType::InvalidPath,
            "multi-valued",
        );
        assert_rejected(
            json!([{"op": "remove", "path": "userName[value eq \"x\"]"}]),
            ScimType::InvalidPath,
            "",
        );
    }

    #[test]
    fn invalid_value_filters_are_reported_as_invalid_path() {
        assert_rejected(
            json!([{"op": "remove", "path": "emails[primary co \"x\"]"}]),
            ScimType::InvalidPath,
            "primary",
        );
    }

    // -- Atomicity and order -------------------------------------------------

    #[test]
    fn a_failing_later_operation_fails_the_whole_patch() {
        let original = user();
        let ops = json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "remove", "path": "emails[type eq \"other\"]"}
        ]);
        let err = run(USER, &original, ops).expect_err("the second operation fails");
        assert_eq!(err.scim_type, Some(ScimType::NoTarget));
        assert_eq!(original, user());
        let ops = json!([
            {"op": "add", "path": "members", "value": [{"value": ID1}]},
            {"op": "add", "path": "nope", "value": "x"}
        ]);
        assert!(run(GROUP, &group(), ops).is_err());
    }

    #[test]
    fn operations_apply_in_order() {
        let doc = patched_user(json!([
            {"op": "add", "path": "title", "value": "A"},
            {"op": "replace", "path": "title", "value": "B"},
            {"op": "remove", "path": "nickName"},
            {"op": "add", "path": "emails[type eq \"other\"].value", "value": "o@x.y"},
            {"op": "remove", "path": "emails[type eq \"other\"]"}
        ]));
        assert_eq!(doc["title"], "B");
        assert_eq!(doc["emails"], user()["emails"]);
    }

    #[test]
    fn a_patched_user_passes_revalidation() {
        let ops = json!([
            {"op": "add", "path": "emails", "value": [{"value": "x@example.com", "type": "Other"}]},
            {"op": "replace", "path": "name.familyName", "value": "Smith"},
            {"op": "add", "path": format!("{ENTERPRISE_USER_SCHEMA}:manager"), "value": ID1},
            {"op": "remove", "path": "displayName"}
        ]);
        let doc = revalidated(&patched_user(ops), &user());
        assert_eq!(doc["emails"][2], json!({"value": "x@example.com", "type": "other"}));
        assert_eq!(doc["name"]["familyName"], "Smith");
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": ID1}));
        assert_eq!(doc["schemas"], json!([CORE_USER, ENTERPRISE_USER_SCHEMA]));
    }

    #[test]
    fn a_non_object_document_is_an_internal_error() {
        let request = parse_patch_request(&body(json!([{"op": "add", "path": "title", "value": "x"}])));
        let request = request.expect("valid request");
        let err = apply_patch(reg(), USER, &json!([]), &request).expect_err("not a document");
        assert_eq!(err.status, 500);
    }

    // -- Identity provider dialects ------------------------------------------

    #[test]
    fn entra_pascal_case_ops_are_accepted() {
        let doc = patched_user(json!([
            {"op": "Replace", "path": "displayName", "value": "B"},
            {"op": "Add", "path": "title", "value": "T"},
            {"op": "Remove", "path": "nickName"}
        ]));
        assert_eq!(
            (doc["displayName"].clone(), doc["title"].clone()),
            (json!("B"), json!("T"))
        );
    }

    #[test]
    fn entra_string_booleans_survive_revalidation() {
        let doc = patched_user(json!([{"op": "Replace", "path": "active", "value": "False"}]));
        assert_eq!(doc["active"], "False");
        assert_eq!(revalidated(&doc, &user())["active"], false);
    }

    #[test]
    fn entra_path_less_replace_with_path_keys() {
        let ops = json!([{"op": "Replace", "value": {
            "name.givenName": "B",
            format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber"): "9",
            "emails[type eq \"work\"].value": "b@example.com"
        }}]);
        let doc = patched_user(ops);
        assert_eq!(doc["name"], json!({"givenName": "B", "familyName": "Jensen"}));
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "9");
        assert_eq!(doc["emails"][0]["value"], "b@example.com");
        assert_eq!(doc["schemas"], json!([CORE_USER, ENTERPRISE_USER_SCHEMA]));
    }

    #[test]
    fn entra_manager_as_plain_string_or_value_object() {
        let path = format!("{ENTERPRISE_USER_SCHEMA}:manager");
        let doc = patched_user(json!([{"op": "Add", "path": path, "value": ID1}]));
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": ID1}));
        let doc = patched_user(json!([{"op": "Replace", "path": path, "value": {"value": ID2}}]));
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": ID2}));
        let with_manager = patched_user(json!([{"op": "Add", "path": path, "value": ID1}]));
        let doc = patched(
            USER,
            &with_manager,
            json!([{"op": "Replace", "path": path, "value": ""}]),
        )
        .document;
        assert!(doc.get(ENTERPRISE_USER_SCHEMA).is_none());
        let doc = patched_user(json!([{"op": "Replace", "path": "name", "value": ""}]));
        assert_eq!(doc["name"], "", "left for validate_write to reject");
        let ops = json!([{"op": "Remove", "path": path, "value": [{"value": ID1}]}]);
        let doc = patched(USER, &with_manager, ops).document;
        assert!(doc.get(ENTERPRISE_USER_SCHEMA).is_none());
    }

    #[test]
    fn pascal_case_names_in_paths_and_value_keys_are_made_canonical() {
        let doc = patched_user(json!([
            {"op": "Replace", "path": "DisplayName", "value": "B"},
            {"op": "Replace", "path": "Name.GivenName", "value": "G"},
            {"op": "Add", "path": "Emails", "value": [{"Value": "x@y.z", "Type": "other"}]},
            {"op": "Replace", "value": {"Title": "T", "Name": {"FamilyName": "F"}}},
            {"op": "Replace", "path": "EMAILS[TYPE EQ \"home\"].VALUE", "value": "h@y.z"}
        ]));
        assert_eq!(doc["displayName"], "B");
        assert_eq!(doc["name"], json!({"givenName": "G", "familyName": "F"}));
        assert_eq!(doc["emails"][2], json!({"value": "x@y.z", "type": "other"}));
        assert_eq!(doc["emails"][1]["value"], "h@y.z");
        assert_eq!(doc["title"], "T");
        assert!(doc.get("DisplayName").is_none() && doc.get("Title").is_none());
        revalidated(&doc, &user());
    }

    #[test]
    fn entra_member_ref_null_is_ignored() {
        let changes = member_changes(json!([{"op": "Add", "path": "members",
            "value": [{"value": ID1, "$ref": null}, {"value": ID2, "$ref": "https://x/Users/2", "display": "B"}]}]));
        assert_eq!(changes.add, vec![member(ID1), member(ID2)]);
    }

    #[test]
    fn entra_legacy_member_removal_with_a_value_list_removes_only_those_members() {
        let changes = member_changes(json!([{"op": "Remove", "path": "members", "value": [{"value": ID1}]}]));
        assert_eq!(
            changes,
            MemberChanges {
                remove: vec![ID1.to_string()],
                ..MemberChanges::default()
            }
        );
    }

    #[test]
    fn okta_path_less_replace_of_active_false() {
        let doc = patched_user(json!([{"op": "replace", "value": {"active": false}}]));
        assert_eq!(doc["active"], false);
    }

    #[test]
    fn okta_group_rename_ignores_id_meta_and_schemas() {
        let ops = json!([{"op": "replace", "value": {"id": "abc", "displayName": "New", "schemas": [CORE_GROUP],
                                                       "meta": {"resourceType": "Group"}}}]);
        let outcome = patched(GROUP, &group(), ops);
        assert_eq!(outcome.document, json!({"schemas": [CORE_GROUP], "displayName": "New"}));
        assert!(outcome.members.is_empty());
    }

    #[test]
    fn okta_member_add_with_display_and_remove_by_filter() {
        let changes = member_changes(json!([
            {"op": "add", "path": "members", "value": [{"value": ID1, "display": "Babs"}]},
            {"op": "remove", "path": format!("members[value eq \"{ID2}\"]")}
        ]));
        assert_eq!(
            changes,
            MemberChanges {
                replace_all: None,
                add: vec![member(ID1)],
                remove: vec![ID2.to_string()],
            }
        );
    }

    #[test]
    fn onelogin_legacy_urn_prefixes_are_accepted() {
        let doc = patched_user(json!([
            {"op": "replace", "path": "urn:scim:schemas:core:2.0:User:displayName", "value": "B"},
            {"op": "add", "path": "urn:scim:schemas:extension:enterprise:2.0:User:department", "value": "D"},
            {"op": "replace", "value": {"urn:scim:schemas:core:2.0:User:title": "T"}}
        ]));
        assert_eq!(doc["displayName"], "B");
        assert_eq!(doc["title"], "T");
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["department"], "D");
    }

    #[test]
    fn urn_qualified_core_paths_are_accepted() {
        let doc = patched_user(json!([
            {"op": "replace", "path": format!("{CORE_USER}:name.givenName"), "value": "B"},
            {"op": "replace", "path": format!("{CORE_USER}:emails[type eq \"home\"].value"), "value": "h@x.y"}
        ]));
        assert_eq!(doc["name"]["givenName"], "B");
        assert_eq!(doc["emails"][1]["value"], "h@x.y");
    }

    // -- Group members -------------------------------------------------------

    #[test]
    fn rfc_add_member() {
        let changes = member_changes(json!([{"op": "add", "path": "members", "value": [{
            "display": "Babs Jensen",
            "$ref": format!("https://example.com/v2/Users/{ID1}"),
            "value": ID1
        }]}]));
        assert_eq!(
            changes,
            MemberChanges {
                add: vec![member(ID1)],
                ..MemberChanges::default()
            }
        );
    }

    #[test]
    fn rfc_replace_members_sets_the_whole_list() {
        let changes = member_changes(json!([{"op": "replace", "path": "members", "value": [
            {"display": "Babs Jensen", "value": ID1},
            {"display": "James Smith", "value": ID2, "type": "user"}
        ]}]));
        assert_eq!(changes.replace_all, Some(vec![member(ID1), typed_member(ID2, "User")]));
        assert!(changes.add.is_empty() && changes.remove.is_empty());
        let changes = member_changes(json!([{"op": "replace", "path": "members", "value": []}]));
        assert_eq!(changes.replace_all, Some(vec![]));
    }

    #[test]
    fn rfc_remove_member_by_filter() {
        let changes = member_changes(json!([{"op": "remove", "path": format!("members[value eq \"{ID1}\"]")}]));
        assert_eq!(changes.remove, vec![ID1.to_string()]);
        assert!(changes.replace_all.is_none() && changes.add.is_empty());
    }

    #[test]
    fn rfc_remove_all_members() {
        let changes = member_changes(json!([{"op": "remove", "path": "members"}]));
        assert_eq!(
            changes,
            MemberChanges {
                replace_all: Some(vec![]),
                ..MemberChanges::default()
            }
        );
    }

    #[test]
    fn rfc_remove_all_members_then_add_replaces_the_list() {
        let changes = member_changes(json!([
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"display": "James Smith", "value": ID2}]}
        ]));
        assert_eq!(changes.replace_all, Some(vec![member(ID2)]));
        assert!(changes.add.is_empty() && changes.remove.is_empty());
    }

    #[test]
    fn members_are_removed_by_an_or_chain_of_value_equalities() {
        let path = format!("members[value eq \"{ID1}\" or value eq \"{ID2}\" or value eq \"{ID1}\"]");
        let changes = member_changes(json!([{"op": "remove", "path": path}]));
        assert_eq!(changes.remove, vec![ID1.to_string(), ID2.to_string()]);
    }

    #[test]
    fn a_member_filter_on_anything_but_value_is_rejected_with_invalid_filter() {
        for path in [
            "members[type eq \"Group\"]",
            "members[display co \"x\"]",
            "members[value ne \"x\"]",
            "members[value eq \"x\" and type eq \"User\"]",
        ] {
            assert_rejected_doc(
                GROUP,
                &group(),
                json!([{"op": "remove", "path": path}]),
                ScimType::InvalidFilter,
                "value",
            );
        }
        assert_rejected_doc(
            GROUP,
            &group(),
            json!([{"op": "add", "path": "members[value eq \"x\"]", "value": {"value": "x"}}]),
            ScimType::InvalidPath,
            "remove only",
        );
    }

    #[test]
    fn member_sub_attribute_targets_are_rejected_with_mutability() {
        for path in ["members.display", "members.value", "members[value eq \"x\"].type"] {
            assert_rejected_doc(
                GROUP,
                &group(),
                json!([{"op": "replace", "path": path, "value": "x"}]),
                ScimType::Mutability,
                "members",
            );
        }
    }

    #[test]
    fn a_later_replace_of_members_resets_earlier_adds_and_removes() {
        let changes = member_changes(json!([
            {"op": "add", "path": "members", "value": [{"value": "a"}]},
            {"op": "remove", "path": "members[value eq \"b\"]"},
            {"op": "replace", "path": "members", "value": [{"value": "c"}]}
        ]));
        assert_eq!(
            changes,
            MemberChanges {
                replace_all: Some(vec![member("c")]),
                ..MemberChanges::default()
            }
        );
    }

    #[test]
    fn adds_and_removes_after_a_replace_edit_its_list() {
        let changes = member_changes(json!([
            {"op": "replace", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
            {"op": "add", "path": "members", "value": [{"value": "c"}, {"value": "a", "type": "Group"}]},
            {"op": "remove", "path": "members[value eq \"b\"]"}
        ]));
        assert_eq!(changes.replace_all, Some(vec![member("c"), typed_member("a", "Group")]));
        assert!(changes.add.is_empty() && changes.remove.is_empty());
    }

    #[test]
    fn adds_and_removes_of_the_same_member_keep_the_last() {
        let changes = member_changes(json!([
            {"op": "remove", "path": "members[value eq \"a\"]"},
            {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}, {"value": "b"}]},
            {"op": "remove", "path": "members", "value": [{"value": "b"}]}
        ]));
        assert_eq!(
            changes,
            MemberChanges {
                replace_all: None,
                add: vec![member("a")],
                remove: vec!["b".to_string()],
            }
        );
    }

    #[test]
    fn path_less_values_with_members_become_member_changes() {
        let outcome = patched(
            GROUP,
            &group(),
            json!([{"op": "replace", "value": {"displayName": "New", "members": [{"value": ID1}]}}]),
        );
        assert_eq!(outcome.document, json!({"schemas": [CORE_GROUP], "displayName": "New"}));
        assert_eq!(outcome.members.replace_all, Some(vec![member(ID1)]));
        let changes = member_changes(json!([{"op": "add", "value": {"members": [{"value": ID2}]}}]));
        assert_eq!(changes.add, vec![member(ID2)]);
    }

    #[test]
    fn members_never_appear_in_the_output_document() {
        let stored = json!({"schemas": [CORE_GROUP], "displayName": "g", "members": [{"value": "old"}]});
        let outcome = patched(
            GROUP,
            &stored,
            json!([{"op": "add", "path": "members", "value": {"value": "a"}}]),
        );
        assert_eq!(outcome.document, json!({"schemas": [CORE_GROUP], "displayName": "g"}));
        assert_eq!(outcome.members.add, vec![member("a")]);
    }

    #[test]
    fn malformed_members_are_rejected_with_invalid_value() {
        for value in [
            json!([{"display": "no id"}]),
            json!([{"value": ""}]),
            json!([{"value": 12}]),
            json!(["id"]),
            json!([{"value": "a", "type": "Robot"}]),
        ] {
            assert_rejected_doc(
                GROUP,
                &group(),
                json!([{"op": "add", "path": "members", "value": value}]),
                ScimType::InvalidValue,
                "member",
            );
        }
        assert_rejected_doc(
            GROUP,
            &group(),
            json!([{"op": "add", "path": "members", "value": [{"value": "a", "colour": "red"}]}]),
            ScimType::InvalidPath,
            "members.colour",
        );
    }

    // -- Robustness ----------------------------------------------------------

    #[test]
    fn arbitrary_operations_never_panic() {
        let mut deep = json!("x");
        for _ in 0..100 {
            deep = json!([{"value": deep}]);
        }
        let values = [
            json!(null),
            json!(true),
            json!("x"),
            json!(""),
            json!(-1.5),
            json!(1e300),
            json!([]),
            json!([null, 1, "x", [], {}]),
            json!({}),
            json!({"value": "x", "primary": "True", "type": null}),
            json!([{"value": "x", "primary": true}, {"value": "y", "primary": true}]),
            json!({"value": {"value": "x"}}),
            deep,
        ];
        let paths = [
            "userName",
            "name",
            "name.givenName",
            "emails",
            "emails.value",
            "emails[type eq \"work\"]",
            "emails[type eq \"work\"].primary",
            "emails[value pr].value",
            "addresses[type eq \"x\" and primary eq true]",
            "x509Certificates[value eq \"AA==\"]",
            "password",
            "active",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "members",
            "members[value eq \"x\"]",
            "displayName",
        ];
        let docs = [
            (USER, user()),
            (GROUP, group()),
            (USER, json!({})),
            (GROUP, json!({"members": 1})),
        ];
        for (kind, doc) in &docs {
            for path in paths {
                for value in &values {
                    for op in ["add", "replace", "remove"] {
                        let with_path = json!([{"op": op, "path": path, "value": value}]);
                        let _ = run(*kind, doc, with_path);
                        let path_less = json!([{"op": op, "value": {path: value}}]);
                        let _ = run(*kind, doc, path_less);
                    }
                }
            }
        }
    }

    #[test]
    fn large_lists_are_handled_without_quadratic_work() {
        let ids: Vec<Value> = (0..20_000).map(|i| json!({"value": format!("m{i}")})).collect();
        let changes = member_changes(json!([
            {"op": "add", "path": "members", "value": ids},
            {"op": "remove", "path": "members", "value": ids},
            {"op": "replace", "path": "members", "value": ids},
            {"op": "remove", "path": "members", "value": ids}
        ]));
        assert_eq!(changes.replace_all, Some(vec![]));
        let mut emails: Vec<Value> = (0..20_000)
            .map(|i| json!({"value": format!("u{i}@example.com")}))
            .collect();
        emails.push(json!({"value": "p@example.com", "primary": true}));
        let doc = patched_user(json!([{"op": "add", "path": "emails", "value": emails}]));
        assert_eq!(doc["emails"].as_array().map(Vec::len), Some(20_003));
        assert_eq!(doc["emails"][0]["primary"], false);
    }

    fn arbitrary_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop::sample::select(vec!["", "x", "True", "work", "User", "a@b.c"]).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec!["value", "Type", "primary", "givenName", "display", "$ref", "zz"]),
                        inner
                    ),
                    0..4
                )
                .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    fn arbitrary_path() -> impl Strategy<Value = String> {
        let fragments = vec![
            "emails",
            "name",
            "members",
            "manager",
            ".",
            "value",
            "givenName",
            "[",
            "]",
            " eq ",
            " or ",
            " and ",
            "\"work\"",
            "type",
            "primary",
            " pr",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            ":",
            "urn:scim:schemas:core:2.0:User:",
            "id",
            "userName",
            "displayName",
            "(",
            ")",
            "not",
        ];
        prop::collection::vec(prop::sample::select(fragments), 0..8).prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        #[test]
        fn random_patches_never_panic_and_keep_schemas_consistent(
            is_group in any::<bool>(),
            op in prop::sample::select(vec!["add", "Replace", "REMOVE"]),
            path in prop::option::of(arbitrary_path()),
            value in prop::option::of(arbitrary_value()),
        ) {
            let (kind, doc) = if is_group { (GROUP, group()) } else { (USER, user()) };
            let mut operation = json!({"op": op});
            if let Some(path) = path {
                operation["path"] = Value::String(path);
            }
            if let Some(value) = value {
                operation["value"] = value;
            }
            if let Ok(outcome) = run(kind, &doc, json!([operation])) {
                let document = outcome.document;
                prop_assert!(document.get("members").is_none());
                let listed = document["schemas"]
                    .as_array()
                    .is_some_and(|s| s.contains(&Value::from(ENTERPRISE_USER_SCHEMA)));
                prop_assert_eq!(listed, document.get(ENTERPRISE_USER_SCHEMA).is_some());
                let _ = validate_write(reg(), kind, &document, Some(&doc));
            }
        }
    }
}
