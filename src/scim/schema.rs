//! The schema registry: the SCIM schema documents bundled from `schemas/`
//! (RFC 7643 §8.7), parsed once into [`AttributeDef`] trees, plus attribute
//! path resolution for filters, `sortBy` and `attributes` parameters.
//!
//! The JSON files are the single source of truth for attribute rules; the
//! only rules written here are the common attributes of RFC 7643 §3.1, which
//! belong to no schema document.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use super::{ENTERPRISE_USER_SCHEMA, ResourceKind};

pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// The bundled documents, in the order `/Schemas` lists them.
const BUNDLED: [(&str, &str); 6] = [
    ("User.json", include_str!("../../schemas/User.json")),
    ("Group.json", include_str!("../../schemas/Group.json")),
    ("EnterpriseUser.json", include_str!("../../schemas/EnterpriseUser.json")),
    (
        "ServiceProviderConfig.json",
        include_str!("../../schemas/ServiceProviderConfig.json"),
    ),
    ("ResourceType.json", include_str!("../../schemas/ResourceType.json")),
    ("Schema.json", include_str!("../../schemas/Schema.json")),
];

/// RFC 7643 §3.1: attributes every resource has, outside any schema. Written
/// in the schema-document form so they parse like the bundled files.
const COMMON_ATTRIBUTES: &str = r#"[
  {"name": "id", "type": "string", "multiValued": false, "required": true, "caseExact": true,
   "mutability": "readOnly", "returned": "always", "uniqueness": "server",
   "description": "A unique identifier for a SCIM resource as defined by the service provider."},
  {"name": "externalId", "type": "string", "multiValued": false, "required": false, "caseExact": true,
   "mutability": "readWrite", "returned": "default", "uniqueness": "none",
   "description": "A String that is an identifier for the resource as defined by the provisioning client."},
  {"name": "meta", "type": "complex", "multiValued": false, "required": false,
   "mutability": "readOnly", "returned": "default", "uniqueness": "none",
   "description": "A complex attribute containing resource metadata.",
   "subAttributes": [
     {"name": "resourceType", "type": "string", "multiValued": false, "required": false, "caseExact": true,
      "mutability": "readOnly", "returned": "default", "uniqueness": "none",
      "description": "The name of the resource type of the resource."},
     {"name": "created", "type": "dateTime", "multiValued": false, "required": false,
      "mutability": "readOnly", "returned": "default", "uniqueness": "none",
      "description": "The DateTime that the resource was added to the service provider."},
     {"name": "lastModified", "type": "dateTime", "multiValued": false, "required": false,
      "mutability": "readOnly", "returned": "default", "uniqueness": "none",
      "description": "The most recent DateTime that the details of this resource were updated at the service provider."},
     {"name": "location", "type": "reference", "referenceTypes": ["uri"], "multiValued": false, "required": false,
      "caseExact": true, "mutability": "readOnly", "returned": "default", "uniqueness": "none",
      "description": "The URI of the resource being returned."},
     {"name": "version", "type": "string", "multiValued": false, "required": false, "caseExact": true,
      "mutability": "readOnly", "returned": "default", "uniqueness": "none",
      "description": "The version of the resource being returned."}
   ]},
  {"name": "schemas", "type": "reference", "referenceTypes": ["uri"], "multiValued": true, "required": true,
   "caseExact": false, "mutability": "readOnly", "returned": "always", "uniqueness": "none",
   "description": "The schema URIs of the resource."}
]"#;

const USER_EXTENSIONS: [ExtensionRef; 1] = [ExtensionRef {
    schema_urn: ENTERPRISE_USER_SCHEMA,
    required: false,
}];

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    /// The name used in schema documents and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    #[default]
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    #[default]
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    #[default]
    None,
    Server,
    Global,
}

/// One attribute (or sub-attribute) definition of a schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDef {
    pub name: String,
    #[serde(rename = "type")]
    pub attr_type: AttrType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default)]
    pub mutability: Mutability,
    #[serde(default)]
    pub returned: Returned,
    #[serde(default)]
    pub uniqueness: Uniqueness,
    #[serde(default)]
    pub canonical_values: Vec<String>,
    #[serde(default)]
    pub reference_types: Vec<String>,
    #[serde(default)]
    pub sub_attributes: Vec<AttributeDef>,
}

impl AttributeDef {
    /// The sub-attribute called `name`, compared case-insensitively.
    pub fn sub_attribute(&self, name: &str) -> Option<&AttributeDef> {
        find_attribute(&self.sub_attributes, name)
    }

    pub fn is_complex(&self) -> bool {
        self.attr_type == AttrType::Complex
    }
}

/// A parsed schema document.
#[derive(Debug, Clone, Deserialize)]
pub struct Schema {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub attributes: Vec<AttributeDef>,
}

impl Schema {
    /// The attribute called `name`, compared case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        find_attribute(&self.attributes, name)
    }
}

/// A schema extension a resource type admits (RFC 7643 §6 `schemaExtensions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionRef {
    pub schema_urn: &'static str,
    pub required: bool,
}

/// An attribute path resolved against a resource type's schemas.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAttr<'a> {
    /// The schema defining the attribute; `None` for the common attributes
    /// (`id`, `externalId`, `meta`, `schemas`).
    pub schema_urn: Option<&'a str>,
    /// Whether the attribute belongs to an extension schema, so lives under
    /// the extension's URN key in a resource.
    pub extension: bool,
    /// The top-level attribute.
    pub attribute: &'a AttributeDef,
    /// The sub-attribute, when the path names one.
    pub sub_attribute: Option<&'a AttributeDef>,
}

impl<'a> ResolvedAttr<'a> {
    /// The definition of the attribute the path ends at.
    pub fn leaf(&self) -> &'a AttributeDef {
        self.sub_attribute.unwrap_or(self.attribute)
    }

    /// The parent definition, when the path ends at a sub-attribute.
    pub fn parent(&self) -> Option<&'a AttributeDef> {
        self.sub_attribute.map(|_| self.attribute)
    }

    /// The path segments in their canonical case: `["name", "familyName"]`.
    pub fn segments(&self) -> Vec<&'a str> {
        let mut out = vec![self.attribute.name.as_str()];
        if let Some(sub) = self.sub_attribute {
            out.push(sub.name.as_str());
        }
        out
    }

    /// The canonical dotted path without schema URN: `name.familyName`.
    pub fn dotted(&self) -> String {
        self.segments().join(".")
    }

    /// The key under which [`crate::scim::resource::index_values`] reports
    /// this attribute: lowercase, extension attributes prefixed by their
    /// lowercase URN and a colon.
    pub fn index_key(&self) -> String {
        let dotted = self.dotted().to_ascii_lowercase();
        match (self.extension, self.schema_urn) {
            (true, Some(urn)) => format!("{}:{dotted}", urn.to_ascii_lowercase()),
            _ => dotted,
        }
    }
}

/// All schemas scimd knows, with the raw documents served by `/Schemas`.
#[derive(Debug)]
pub struct SchemaRegistry {
    documents: Vec<Value>,
    schemas: Vec<Schema>,
    common: Vec<AttributeDef>,
    user: usize,
    group: usize,
}

static BUILTIN: LazyLock<SchemaRegistry> =
    LazyLock::new(|| SchemaRegistry::from_bundled().unwrap_or_else(|e| panic!("bundled SCIM schemas: {e}")));

impl SchemaRegistry {
    /// The registry built from the schema files compiled into the binary.
    pub fn builtin() -> &'static SchemaRegistry {
        &BUILTIN
    }

    fn from_bundled() -> Result<Self, String> {
        let mut documents = Vec::with_capacity(BUNDLED.len());
        for (file, text) in BUNDLED {
            documents.push(serde_json::from_str(text).map_err(|e| format!("{file} is not JSON: {e}"))?);
        }
        Self::from_documents(documents)
    }

    /// Builds a registry from schema documents, which must include the core
    /// User and Group schemas and the extensions resource types refer to.
    pub fn from_documents(documents: Vec<Value>) -> Result<Self, String> {
        let mut schemas = Vec::with_capacity(documents.len());
        for doc in &documents {
            let schema: Schema = serde_json::from_value(doc.clone())
                .map_err(|e| format!("{} is not a schema document: {e}", doc["id"].as_str().unwrap_or("?")))?;
            schemas.push(schema);
        }
        let common: Vec<AttributeDef> =
            serde_json::from_str(COMMON_ATTRIBUTES).map_err(|e| format!("common attributes: {e}"))?;
        let position = |urn: &str| {
            schemas
                .iter()
                .position(|s| s.id == urn)
                .ok_or_else(|| format!("schema {urn} is missing"))
        };
        let user = position(ResourceKind::User.core_schema())?;
        let group = position(ResourceKind::Group.core_schema())?;
        for ext in USER_EXTENSIONS {
            position(ext.schema_urn)?;
        }
        Ok(Self {
            documents,
            schemas,
            common,
            user,
            group,
        })
    }

    /// The raw schema documents, as served by `/Schemas`.
    pub fn schema_documents(&self) -> impl Iterator<Item = &Value> {
        self.documents.iter()
    }

    /// The raw document of one schema, looked up by URN (case-insensitively).
    pub fn schema_document(&self, id: &str) -> Option<&Value> {
        let index = self.schemas.iter().position(|s| s.id.eq_ignore_ascii_case(id))?;
        self.documents.get(index)
    }

    /// A parsed schema by URN (case-insensitively).
    pub fn schema(&self, id: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(id))
    }

    /// The core schema of a resource type.
    pub fn core_schema(&self, kind: ResourceKind) -> &Schema {
        match kind {
            ResourceKind::User => &self.schemas[self.user],
            ResourceKind::Group => &self.schemas[self.group],
        }
    }

    /// The schema extensions a resource type admits.
    pub fn extensions(&self, kind: ResourceKind) -> &'static [ExtensionRef] {
        match kind {
            ResourceKind::User => &USER_EXTENSIONS,
            ResourceKind::Group => &[],
        }
    }

    /// The extension of `kind` whose URN is `urn` (case-insensitively).
    pub fn extension(&self, kind: ResourceKind, urn: &str) -> Option<(ExtensionRef, &Schema)> {
        let ext = self
            .extensions(kind)
            .iter()
            .find(|e| e.schema_urn.eq_ignore_ascii_case(urn))?;
        Some((*ext, self.schema(ext.schema_urn)?))
    }

    /// The common attributes: `id`, `externalId`, `meta`, `schemas`.
    pub fn common_attributes(&self) -> &[AttributeDef] {
        &self.common
    }

    /// A common attribute by name (case-insensitively).
    pub fn common_attribute(&self, name: &str) -> Option<&AttributeDef> {
        find_attribute(&self.common, name)
    }

    /// Resolves an attribute path (`userName`, `name.familyName`,
    /// `meta.lastModified`, `urn:…:User:userName`, `urn:…:enterprise:2.0:User:manager.value`)
    /// case-insensitively. A bare schema URN is not an attribute: `None`.
    pub fn resolve_path(&self, kind: ResourceKind, path: &str) -> Option<ResolvedAttr<'_>> {
        let core = self.core_schema(kind);
        if let Some(rest) = strip_urn_prefix(path, &core.id) {
            return self.resolve_in(Some(core), false, rest);
        }
        for ext in self.extensions(kind) {
            if let Some(rest) = strip_urn_prefix(path, ext.schema_urn) {
                return self.resolve_in(Some(self.schema(ext.schema_urn)?), true, rest);
            }
        }
        self.resolve_in(Some(core), false, path)
    }

    fn resolve_in<'a>(&'a self, schema: Option<&'a Schema>, extension: bool, path: &str) -> Option<ResolvedAttr<'a>> {
        let mut parts = path.split('.');
        let top = parts.next()?;
        let sub = parts.next();
        if parts.next().is_some() || top.is_empty() {
            return None;
        }
        let (schema_urn, attribute) = match schema {
            Some(s) if extension => (Some(s.id.as_str()), s.attribute(top)?),
            Some(s) => match self.common_attribute(top) {
                Some(common) => (None, common),
                None => (Some(s.id.as_str()), s.attribute(top)?),
            },
            None => (None, self.common_attribute(top)?),
        };
        let sub_attribute = match sub {
            Some(name) => Some(attribute.sub_attribute(name)?),
            None => None,
        };
        Some(ResolvedAttr {
            schema_urn,
            extension,
            attribute,
            sub_attribute,
        })
    }
}

/// `path` without a leading `urn` and colon, compared case-insensitively.
pub(crate) fn strip_urn_prefix<'p>(path: &'p str, urn: &str) -> Option<&'p str> {
    let head = path.get(..urn.len())?;
    if !head.eq_ignore_ascii_case(urn) {
        return None;
    }
    path.get(urn.len()..)?.strip_prefix(':')
}

fn find_attribute<'a>(attrs: &'a [AttributeDef], name: &str) -> Option<&'a AttributeDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    fn reg() -> &'static SchemaRegistry {
        SchemaRegistry::builtin()
    }

    fn check_characteristics(attr: &Value, where_: &str, problems: &mut Vec<String>) {
        let name = attr["name"].as_str().unwrap_or("?");
        let here = format!("{where_}.{name}");
        for key in [
            "name",
            "type",
            "multiValued",
            "description",
            "required",
            "mutability",
            "returned",
            "uniqueness",
        ] {
            if attr.get(key).is_none() {
                problems.push(format!("{here} lacks {key}"));
            }
        }
        let ty = attr["type"].as_str().unwrap_or("");
        let stringish = matches!(ty, "string" | "reference" | "binary");
        if stringish != attr.get("caseExact").is_some() {
            problems.push(format!("{here}: caseExact presence does not match type {ty}"));
        }
        if (ty == "reference") != attr.get("referenceTypes").is_some() {
            problems.push(format!("{here}: referenceTypes presence does not match type {ty}"));
        }
        if (ty == "complex") != attr.get("subAttributes").is_some() {
            problems.push(format!("{here}: subAttributes presence does not match type {ty}"));
        }
        for sub in attr["subAttributes"].as_array().into_iter().flatten() {
            check_characteristics(sub, &here, problems);
        }
    }

    #[test]
    fn every_bundled_attribute_carries_the_full_characteristic_set() {
        let mut problems = Vec::new();
        for doc in reg().schema_documents() {
            let id = doc["id"].as_str().unwrap_or("?");
            for attr in doc["attributes"].as_array().into_iter().flatten() {
                check_characteristics(attr, id, &mut problems);
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn every_bundled_document_has_schema_meta_with_its_location() {
        let ids: Vec<_> = reg().schema_documents().map(|d| d["id"].clone()).collect();
        assert_eq!(ids.len(), 6);
        for doc in reg().schema_documents() {
            let id = doc["id"].as_str().unwrap_or_default();
            assert_eq!(doc["meta"]["resourceType"], "Schema");
            assert_eq!(doc["meta"]["location"], format!("/v2/Schemas/{id}"));
            assert!(doc["name"].is_string() && doc["description"].is_string());
        }
    }

    #[test]
    fn schema_document_is_found_by_urn_in_any_case() {
        let doc = reg().schema_document(&USER.to_uppercase());
        assert_eq!(doc.map(|d| d["name"].clone()), Some(Value::from("User")));
        assert!(reg().schema_document("urn:nope").is_none());
    }

    #[test]
    fn user_schema_fixes_the_rfc_errata() {
        let user = reg().core_schema(ResourceKind::User);
        assert!(user.attribute("id").is_none(), "id is a common attribute");
        let groups = user.attribute("groups").map(|a| a.mutability);
        assert_eq!(groups, Some(Mutability::ReadOnly));
        let password = user.attribute("password");
        assert_eq!(
            password.map(|p| (p.mutability, p.returned)),
            Some((Mutability::WriteOnly, Returned::Never))
        );
        let addresses = user.attribute("addresses");
        assert!(addresses.and_then(|a| a.sub_attribute("primary")).is_some());
        let cert = user
            .attribute("x509Certificates")
            .and_then(|a| a.sub_attribute("value"));
        assert_eq!(
            cert.map(|c| (c.attr_type, c.case_exact)),
            Some((AttrType::Binary, true))
        );
    }

    #[test]
    fn group_members_have_the_sub_attribute_rules_scimd_enforces() {
        let members = reg().core_schema(ResourceKind::Group).attribute("members");
        let sub = |n: &str| members.and_then(|m| m.sub_attribute(n));
        assert_eq!(
            sub("value").map(|v| (v.mutability, v.required)),
            Some((Mutability::Immutable, true))
        );
        assert_eq!(sub("$ref").map(|v| v.mutability), Some(Mutability::Immutable));
        assert_eq!(
            sub("$ref").map(|v| v.reference_types.clone()),
            Some(vec!["User".into(), "Group".into()])
        );
        assert_eq!(sub("display").map(|v| v.mutability), Some(Mutability::ReadOnly));
        assert_eq!(
            sub("type").map(|v| v.canonical_values.clone()),
            Some(vec!["User".into(), "Group".into()])
        );
    }

    #[test]
    fn user_has_the_optional_enterprise_extension_and_group_none() {
        assert_eq!(
            reg().extensions(ResourceKind::User),
            &[ExtensionRef {
                schema_urn: ENTERPRISE_USER_SCHEMA,
                required: false
            }]
        );
        assert!(reg().extensions(ResourceKind::Group).is_empty());
        assert!(
            reg()
                .extension(ResourceKind::User, &ENTERPRISE_USER_SCHEMA.to_lowercase())
                .is_some()
        );
    }

    #[test]
    fn resolve_path_finds_core_attributes_case_insensitively() {
        let r = reg().resolve_path(ResourceKind::User, "USERNAME");
        let r = r.map(|r| (r.schema_urn, r.segments(), r.extension));
        assert_eq!(r, Some((Some(USER), vec!["userName"], false)));
    }

    #[test]
    fn resolve_path_finds_sub_attributes_with_their_parent() {
        let r = reg().resolve_path(ResourceKind::User, "name.FAMILYname");
        assert_eq!(r.map(|r| r.segments()), Some(vec!["name", "familyName"]));
        assert_eq!(r.and_then(|r| r.parent()).map(|p| p.name.as_str()), Some("name"));
        let r = reg().resolve_path(ResourceKind::User, "emails.value");
        assert_eq!(r.map(|r| r.leaf().attr_type), Some(AttrType::String));
    }

    #[test]
    fn resolve_path_finds_common_attributes() {
        let id = reg().resolve_path(ResourceKind::Group, "id");
        assert_eq!(
            id.map(|r| (r.schema_urn, r.leaf().returned, r.leaf().case_exact)),
            Some((None, Returned::Always, true))
        );
        let ext = reg().resolve_path(ResourceKind::User, "externalId");
        assert_eq!(
            ext.map(|r| (r.leaf().mutability, r.leaf().case_exact)),
            Some((Mutability::ReadWrite, true))
        );
        let lm = reg().resolve_path(ResourceKind::User, "meta.lastModified");
        assert_eq!(lm.map(|r| r.leaf().attr_type), Some(AttrType::DateTime));
        let loc = reg().resolve_path(ResourceKind::User, "meta.location");
        assert_eq!(loc.map(|r| r.leaf().attr_type), Some(AttrType::Reference));
        assert!(reg().resolve_path(ResourceKind::User, "schemas").is_some());
    }

    #[test]
    fn resolve_path_accepts_urn_qualified_names() {
        let r = reg().resolve_path(
            ResourceKind::User,
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        );
        assert_eq!(r.map(|r| r.dotted()), Some("userName".to_string()));
        let r = reg().resolve_path(
            ResourceKind::User,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:MANAGER.value",
        );
        assert_eq!(
            r.map(|r| (r.extension, r.schema_urn, r.dotted(), r.index_key())),
            Some((
                true,
                Some(ENTERPRISE_USER_SCHEMA),
                "manager.value".to_string(),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value".to_string()
            ))
        );
        let r = reg().resolve_path(
            ResourceKind::User,
            "urn:ietf:params:scim:schemas:core:2.0:User:meta.created",
        );
        assert_eq!(r.map(|r| r.schema_urn), Some(None));
    }

    #[test]
    fn resolve_path_rejects_unknown_and_malformed_paths() {
        for path in [
            "",
            "nope",
            "name.nope",
            "name.familyName.x",
            "userName.",
            "employeeNumber",
            "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:",
            "members",
        ] {
            assert!(reg().resolve_path(ResourceKind::User, path).is_none(), "{path}");
        }
        assert!(reg().resolve_path(ResourceKind::Group, "members.value").is_some());
    }
}
