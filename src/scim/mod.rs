//! The SCIM 2.0 protocol, free of HTTP and SQL: the schema registry loaded
//! from `schemas/`, validation of written resources, projection of returned
//! ones, and the protocol's error type.

pub mod error;
pub mod filter;
pub mod json;
pub mod json_text;
pub mod patch;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};

/// The resource types scimd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    /// The `resourceType` name used in `meta` and `/ResourceTypes`.
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }
    /// The URL segment under `/scim/v2`.
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "Users",
            ResourceKind::Group => "Groups",
        }
    }
    pub fn core_schema(self) -> &'static str {
        match self {
            ResourceKind::User => "urn:ietf:params:scim:schemas:core:2.0:User",
            ResourceKind::Group => "urn:ietf:params:scim:schemas:core:2.0:Group",
        }
    }
    /// Stable storage code; never change an existing value.
    pub fn code(self) -> &'static str {
        match self {
            ResourceKind::User => "user",
            ResourceKind::Group => "group",
        }
    }
}

pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
