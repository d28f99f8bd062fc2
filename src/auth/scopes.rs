//! Scopes and built-in roles (contract §3).

use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    UsersRead,
    UsersWrite,
    UsersDelete,
    GroupsRead,
    GroupsWrite,
    GroupsDelete,
    AdminServiceUsers,
    AdminKeysCreate,
    AdminKeysManage,
    AdminAuditRead,
    AdminTenants,
}

impl Scope {
    pub const ALL: [Scope; 11] = [
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::UsersDelete,
        Scope::GroupsRead,
        Scope::GroupsWrite,
        Scope::GroupsDelete,
        Scope::AdminServiceUsers,
        Scope::AdminKeysCreate,
        Scope::AdminKeysManage,
        Scope::AdminAuditRead,
        Scope::AdminTenants,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsersRead => "scim:users:read",
            Scope::UsersWrite => "scim:users:write",
            Scope::UsersDelete => "scim:users:delete",
            Scope::GroupsRead => "scim:groups:read",
            Scope::GroupsWrite => "scim:groups:write",
            Scope::GroupsDelete => "scim:groups:delete",
            Scope::AdminServiceUsers => "admin:service-users",
            Scope::AdminKeysCreate => "admin:keys:create",
            Scope::AdminKeysManage => "admin:keys:manage",
            Scope::AdminAuditRead => "admin:audit:read",
            Scope::AdminTenants => "admin:tenants",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    pub fn is_admin(self) -> bool {
        self.as_str().starts_with("admin:")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub type ScopeSet = BTreeSet<Scope>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Provisioner,
    Reader,
    UserCleanup,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Provisioner, Role::Reader, Role::UserCleanup];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Provisioner => "provisioner",
            Role::Reader => "reader",
            Role::UserCleanup => "user-cleanup",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == s)
    }

    pub fn scopes(self) -> ScopeSet {
        use Scope::*;
        match self {
            Role::Admin => Scope::ALL.into_iter().filter(|s| *s != AdminTenants).collect(),
            Role::Provisioner => [
                UsersRead,
                UsersWrite,
                UsersDelete,
                GroupsRead,
                GroupsWrite,
                GroupsDelete,
            ]
            .into(),
            Role::Reader => [UsersRead, GroupsRead].into(),
            Role::UserCleanup => [UsersRead, UsersDelete].into(),
        }
    }
}

/// Parses stored scope names; unknown names (from a newer version) are ignored.
pub fn parse_scope_list(names: &[String]) -> ScopeSet {
    names.iter().filter_map(|n| Scope::parse(n)).collect()
}

pub fn scope_names(scopes: &ScopeSet) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_role_has_every_scope_but_tenants() {
        let scopes = Role::Admin.scopes();
        assert_eq!(scopes.len(), 10);
        assert!(!scopes.contains(&Scope::AdminTenants));
    }

    #[test]
    fn user_cleanup_can_only_read_and_delete_users() {
        let scopes = Role::UserCleanup.scopes();
        assert_eq!(scopes, [Scope::UsersRead, Scope::UsersDelete].into());
    }

    #[test]
    fn every_scope_round_trips_through_its_name() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("scim:users:admin"), None);
    }
}
