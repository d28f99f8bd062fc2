//! SCIM Users and Groups: documents, the filter index, and memberships.
//!
//! A resource is one `scim_resources` row holding its validated JSON document
//! (without `id`, `meta`, `members`, `groups` or `password`) plus columns for
//! the attributes looked up most (userName, externalId, displayName, times).
//! `scim_values` holds one typed row per scalar value so that filters on any
//! attribute run in SQL. `group_members` holds one row per membership:
//! adding or removing a member touches one row, never the member list, and a
//! User's `groups` is derived from it. See `docs/storage.md`.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::sea_query::{
    Alias, DeleteStatement, Expr, ExprTrait, OnConflict, Order, Query, SelectStatement, SimpleExpr,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value as DbValue};
use serde_json::{Map, Value};

use super::audit::{AuditContext, Event, record, record_many_statement, record_statement};
use super::direct::{DirectReads, DirectRow, ResultRow, Snapshot, read_rows};
use super::rows_insert::RowsInsert;
use super::{Conn, Store, StoreError, StoreResult, now, scim_timestamp};
use crate::scim::ResourceKind;
use crate::scim::json_text::object_members;

/// Rows per multi-row INSERT: well under SQLite's bound-parameter limit.
const INSERT_CHUNK: usize = 500;

/// One scalar value of a resource, as indexed for filtering. One of the
/// three values is set: the one the attribute's filters compare
/// ([`super::query`] picks it from the attribute's definition). Rows written
/// before migration 11 may also hold the text of a case-insensitive string;
/// nothing reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    /// Lowercase canonical attribute path (`emails.value`).
    pub attr: String,
    /// Index of the multi-valued element, -1 for singular attributes.
    pub element: i32,
    /// Case-exact strings, booleans, normalised dateTimes.
    pub text: Option<String>,
    /// Case-insensitive strings, lowercased.
    pub folded: Option<String>,
    pub number: Option<f64>,
}

/// A member named by a write: its id and, if the client said, its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub id: String,
    pub kind: Option<ResourceKind>,
}

/// What a create or replace writes.
#[derive(Debug, Clone)]
pub struct ResourceWrite {
    pub document: Map<String, Value>,
    pub index: Vec<IndexRow>,
    /// A new password hash; `None` keeps the current one on replace.
    pub password_hash: Option<String>,
    /// Groups only: the complete member set.
    pub members: Option<Vec<MemberRef>>,
}

/// Membership changes of a PATCH, applied row by row: adding or removing a
/// member never reads the member list.
#[derive(Debug, Clone, Default)]
pub struct MemberDelta {
    /// The member set becomes exactly this (reads the current ids once).
    pub replace_all: Option<Vec<MemberRef>>,
    pub add: Vec<MemberRef>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub id: String,
    pub kind: ResourceKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroupRef {
    pub id: String,
    pub display: Option<String>,
    /// false when the membership is through a nested group.
    pub direct: bool,
}

/// A resource's attributes as stored. Reads keep the JSON text as the
/// database returned it and parse it only where values are needed (a write,
/// a projection that picks attributes): a plain GET or page sends the text
/// on without building and serialising a tree of values.
#[derive(Debug, Clone)]
pub enum Document {
    Text(String),
    Values(Map<String, Value>),
}

impl Document {
    pub fn into_values(self) -> StoreResult<Map<String, Value>> {
        match self {
            Document::Values(values) => Ok(values),
            Document::Text(text) => match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(StoreError::Corrupt("resource document is not a JSON object".into())),
            },
        }
    }

    /// One top-level attribute, without building a tree of the others.
    pub fn attribute(&self, name: &str) -> StoreResult<Option<Value>> {
        match self {
            Document::Values(values) => Ok(values.get(name).cloned()),
            Document::Text(text) => {
                let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("resource document: {e}"));
                let members = object_members(text).map_err(corrupt)?;
                match members.into_iter().find(|(key, _)| key == name) {
                    Some((_, raw)) => Ok(Some(serde_json::from_str(raw.get()).map_err(corrupt)?)),
                    None => Ok(None),
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredResource {
    pub id: String,
    pub kind: ResourceKind,
    pub document: Document,
    pub version: i64,
    pub created: String,
    pub last_modified: String,
    /// Loaded only when asked for (Groups).
    pub members: Option<Vec<StoredMember>>,
    /// Loaded only when asked for (Users).
    pub groups: Option<Vec<StoredGroupRef>>,
}

/// Which derived collections to load with a resource.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub members: bool,
    pub groups: bool,
}

impl Store {
    pub async fn create_resource(
        &self,
        audit: &AuditContext,
        kind: ResourceKind,
        write: ResourceWrite,
    ) -> StoreResult<StoredResource> {
        let (mut created, statements) = new_resources(self.backend(), kind, &[(audit, &write)])?;
        let created = created
            .pop()
            .ok_or_else(|| StoreError::Corrupt("a create built no resource".into()))?;
        match &write.members {
            // A user, or a group without members: nothing to read first,
            // so the statements go together.
            None => self.writer().write_unit(statements).await.map_err(taken)?,
            Some(refs) => {
                let tenant_id = audit.tenant_id.as_str();
                let txn = self.writer().begin().await?;
                let members = resolve_members(&txn, tenant_id, &created.id, refs).await?;
                for statement in statements {
                    txn.execute_raw(statement).await.map_err(taken)?;
                }
                insert_members(&txn, tenant_id, &created.id, &members).await?;
                let joined: Vec<String> = members.iter().map(|(m, _)| m.clone()).collect();
                touch_users_from(&txn, tenant_id, &joined, &created.created).await?;
                txn.commit().await?;
            }
        }
        Ok(created)
    }

    /// Creates resources that name no members (users) as one unit, each
    /// with its own audit context (several requests' creates may go
    /// together): one multi-row INSERT each for their rows, their values
    /// and their audit events, one call to the database for all of them.
    /// All are created or none: one taken userName refuses them all, and
    /// the caller then creates them one by one ([`Store::create_resource`])
    /// to learn which; so they are borrowed, not taken.
    pub async fn create_resources_together(
        &self,
        kind: ResourceKind,
        creates: &[(&AuditContext, &ResourceWrite)],
    ) -> StoreResult<Vec<StoredResource>> {
        if creates.iter().any(|(_, w)| w.members.is_some()) {
            return Err(StoreError::Corrupt(
                "resources with members are created one by one".into(),
            ));
        }
        if creates.is_empty() {
            return Ok(Vec::new());
        }
        let (created, statements) = new_resources(self.backend(), kind, creates)?;
        self.writer().write_unit(statements).await.map_err(taken)?;
        Ok(created)
    }

    pub async fn get_resource(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        id: &str,
        load: Load,
    ) -> StoreResult<Option<StoredResource>> {
        let db = self.reader();
        if kind == ResourceKind::User && load.groups {
            // On SQLite's direct path the walk for `groups` as one statement
            // (two materialised CTEs, two temporary b-trees) cost ~25 times
            // a lookup by id. There the user is looked up first with whether
            // it is in any group; if it is, it is read again and its groups
            // walked up by lookups ([`walk_up_groups`]) in one read
            // transaction, so that both come from one snapshot. Elsewhere
            // (PostgreSQL, where each lookup would be a round trip) one
            // statement reads the user and its groups together.
            if let Some(direct) = self.direct() {
                let stmt = user_in_groups_statement(self.backend(), tenant_id, id);
                let decode = |row: &DirectRow<'_, '_>| -> StoreResult<_> {
                    Ok((resource_from_row(row, kind)?, row.flag("in_groups")?))
                };
                match direct.query(&stmt, decode)?.pop() {
                    None => return Ok(None),
                    Some((mut user, false)) => {
                        user.groups = Some(Vec::new());
                        return Ok(Some(user));
                    }
                    Some((_, true)) => {}
                }
                return direct.snapshot(|reads| {
                    let Some((mut user, _)) = reads.query(&stmt, decode)?.pop() else {
                        return Ok(None);
                    };
                    user.groups = Some(walk_up_groups(reads, tenant_id, id)?);
                    Ok(Some(user))
                });
            }
            let stmt = user_with_groups_statement(self.backend(), tenant_id, id);
            // Every row repeats the user's columns; only the first is decoded.
            let mut first = true;
            let rows = read_rows(db, self.direct(), stmt, |row| {
                let user = if std::mem::take(&mut first) {
                    Some(resource_from_row(row, kind)?)
                } else {
                    None
                };
                Ok((user, group_ref(row)?))
            })
            .await?;
            return Ok(user_with_groups(rows));
        }
        let stmt = self.backend().build(&select_row(tenant_id, kind, id));
        let resource = read_rows(db, self.direct(), stmt, |row| resource_from_row(row, kind))
            .await?
            .pop();
        let Some(mut resource) = resource else {
            return Ok(None);
        };
        self.load_derived(db, tenant_id, std::slice::from_mut(&mut resource), load)
            .await?;
        Ok(Some(resource))
    }

    /// The stored password hash of a user, for callers that verify passwords.
    pub async fn password_hash(&self, tenant_id: &str, id: &str) -> StoreResult<Option<String>> {
        let stmt = Query::select()
            .column("password_hash")
            .from("scim_resources")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("id").eq(id))
            .to_owned();
        match self.reader().query_one(&stmt).await? {
            Some(row) => Ok(row.try_get::<Option<String>>("", "password_hash")?),
            None => Err(StoreError::NotFound),
        }
    }

    /// Replaces a resource. `expected_version` is the `If-Match` version, if any.
    pub async fn replace_resource(
        &self,
        audit: &AuditContext,
        audit_action: &'static str,
        kind: ResourceKind,
        id: &str,
        expected_version: Option<i64>,
        write: ResourceWrite,
    ) -> StoreResult<StoredResource> {
        let tenant_id = audit.tenant_id.as_str();
        let backend = self.backend();
        let current = fetch_expected(self.writer(), tenant_id, kind, id, expected_version).await?;
        let at = scim_timestamp(now());
        let version = current.version + 1;
        let cols = IndexedColumns::of(kind, &write.document);
        let renamed = renamed(kind, &current.document, &write.document)?;
        let document = Value::Object(write.document).to_string();
        let mut update = Query::update();
        update
            .table("scim_resources")
            .value("user_name", cols.user_name.clone())
            .value("user_name_folded", cols.user_name.as_deref().map(str::to_lowercase))
            .value("external_id", cols.external_id)
            .value("display_name", cols.display_name.clone())
            .value(
                "display_name_folded",
                cols.display_name.as_deref().map(str::to_lowercase),
            )
            .value("document", document.clone())
            .value("version", version)
            .value("last_modified", at.clone())
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("id").eq(id))
            // Unchanged since it was read: a write in between makes this one
            // a VersionMismatch, which the caller reports or re-applies.
            .and_where(Expr::col("version").eq(current.version));
        if let Some(hash) = write.password_hash {
            update.value("password_hash", hash);
        }
        let update = backend.build(&update);
        let mut reindex = vec![backend.build(&delete_index(tenant_id, id))];
        reindex.extend(index_statements(backend, [(tenant_id, id, write.index.as_slice())]));
        let replaced = Event::success(audit_action, kind.code(), id);
        match write.members {
            // Nothing to read or walk: the statements go together.
            None if !renamed => {
                update_alone(
                    self.writer(),
                    update,
                    reindex,
                    record_statement(backend, audit, replaced),
                )
                .await?;
            }
            members => {
                let txn = self.writer().begin().await?;
                let members = match &members {
                    Some(refs) => Some(resolve_members(&txn, tenant_id, id, refs).await?),
                    None => None,
                };
                update_in(&txn, update, reindex).await?;
                let mut changed = match members {
                    Some(members) => replace_members(&txn, tenant_id, id, members).await?,
                    None => Vec::new(),
                };
                if renamed {
                    changed.push(id.to_string());
                }
                touch_users_from(&txn, tenant_id, &changed, &at).await?;
                record(&txn, audit, replaced).await?;
                txn.commit().await?;
            }
        }
        Ok(StoredResource {
            id: id.to_string(),
            kind,
            document: Document::Text(document),
            version,
            created: current.created,
            last_modified: at,
            members: None,
            groups: None,
        })
    }

    /// Applies a PATCH: the new document (if it changed) and membership
    /// changes, in one transaction. With `expected_version` the resource must
    /// still be at that version (else [`StoreError::VersionMismatch`]: the
    /// caller re-reads and re-applies). Membership-only changes pass `None`:
    /// each touches its own rows, so concurrent ones need no ordering and
    /// the version is simply incremented.
    pub async fn patch_resource(
        &self,
        audit: &AuditContext,
        kind: ResourceKind,
        id: &str,
        expected_version: Option<i64>,
        write: Option<ResourceWrite>,
        delta: MemberDelta,
    ) -> StoreResult<StoredResource> {
        let tenant_id = audit.tenant_id.as_str();
        let backend = self.backend();
        let current = fetch_expected(self.writer(), tenant_id, kind, id, expected_version).await?;
        let at = scim_timestamp(now());
        let mut update = Query::update();
        update
            .table("scim_resources")
            .value("version", Expr::col("version").add(1))
            .value("last_modified", at.clone())
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("id").eq(id));
        if let Some(expected) = expected_version {
            update.and_where(Expr::col("version").eq(expected));
        }
        let renamed = match &write {
            Some(w) => renamed(kind, &current.document, &w.document)?,
            None => false,
        };
        let document = match &write {
            Some(write) => {
                let text = serde_json::to_string(&write.document).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let cols = IndexedColumns::of(kind, &write.document);
                update
                    .value("user_name", cols.user_name.clone())
                    .value("user_name_folded", cols.user_name.as_deref().map(str::to_lowercase))
                    .value("external_id", cols.external_id)
                    .value("display_name", cols.display_name.clone())
                    .value(
                        "display_name_folded",
                        cols.display_name.as_deref().map(str::to_lowercase),
                    )
                    .value("document", text.clone());
                if let Some(hash) = &write.password_hash {
                    update.value("password_hash", hash.clone());
                }
                Some(text)
            }
            None => None,
        };
        let update = backend.build(&update);
        let mut reindex = Vec::new();
        if let Some(write) = &write {
            reindex.push(backend.build(&delete_index(tenant_id, id)));
            reindex.extend(index_statements(backend, [(tenant_id, id, write.index.as_slice())]));
        }
        let patched = Event::success(action(kind, "patched"), kind.code(), id);
        let members_unchanged = delta.replace_all.is_none() && delta.add.is_empty() && delta.remove.is_empty();
        let version = match (expected_version, members_unchanged, renamed) {
            // Attributes only (what IdPs send most): nothing to read or walk,
            // and the version this write produces is known.
            (Some(expected), true, false) => {
                update_alone(
                    self.writer(),
                    update,
                    reindex,
                    record_statement(backend, audit, patched),
                )
                .await?;
                expected + 1
            }
            _ => {
                let txn = self.writer().begin().await?;
                update_in(&txn, update, reindex).await?;
                let mut touched: Vec<String> = Vec::new();
                if let Some(all) = &delta.replace_all {
                    let members = resolve_members(&txn, tenant_id, id, all).await?;
                    touched.extend(replace_members(&txn, tenant_id, id, members).await?);
                }
                if !delta.add.is_empty() {
                    let added = resolve_members(&txn, tenant_id, id, &delta.add).await?;
                    insert_members(&txn, tenant_id, id, &added).await?;
                    touched.extend(added.into_iter().map(|(m, _)| m));
                }
                if renamed {
                    touched.push(id.to_string());
                }
                for chunk in delta.remove.chunks(INSERT_CHUNK) {
                    let delete = Query::delete()
                        .from_table("group_members")
                        .and_where(Expr::col("tenant_id").eq(tenant_id))
                        .and_where(Expr::col("group_id").eq(id))
                        .and_where(Expr::col("member_id").is_in(chunk.iter().cloned()))
                        .to_owned();
                    txn.execute(&delete).await?;
                    touched.extend(chunk.iter().cloned());
                }
                touch_users_from(&txn, tenant_id, &touched, &at).await?;
                record(&txn, audit, patched).await?;
                // The version this write produced (concurrent member changes may each have added one).
                let version = fetch_row(&txn, tenant_id, kind, id)
                    .await?
                    .map_or(current.version + 1, |r| r.version);
                txn.commit().await?;
                version
            }
        };
        Ok(StoredResource {
            id: id.to_string(),
            kind,
            document: document.map_or(current.document, Document::Text),
            version,
            created: current.created,
            last_modified: at,
            members: None,
            groups: None,
        })
    }

    /// Deletes a resource; memberships it had or held go with it.
    pub async fn delete_resource(
        &self,
        audit: &AuditContext,
        kind: ResourceKind,
        id: &str,
        expected_version: Option<i64>,
    ) -> StoreResult<()> {
        let tenant_id = audit.tenant_id.as_str();
        let backend = self.backend();
        let mut delete = Query::delete();
        delete
            .from_table("scim_resources")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("resource_type").eq(kind.code()))
            .and_where(Expr::col("id").eq(id));
        if let Some(expected) = expected_version {
            delete.and_where(Expr::col("version").eq(expected));
        }
        let deleted = Event::success(action(kind, "deleted"), kind.code(), id);
        let at = scim_timestamp(now());
        let holders = groups_holding(self.writer(), tenant_id, id).await?;
        if kind == ResourceKind::User && holders.is_empty() {
            // A user in no group (what a clean-up job deletes most): no
            // other resource changes, so the statements go together.
            let rest = vec![record_statement(backend, audit, deleted)];
            if self.writer().guarded_write_unit(backend.build(&delete), rest).await? {
                return Ok(());
            }
            return Err(match fetch_row(self.writer(), tenant_id, kind, id).await? {
                Some(_) if expected_version.is_some() => StoreError::VersionMismatch,
                _ => StoreError::NotFound,
            });
        }
        let txn = self.writer().begin().await?;
        if let Some(expected) = expected_version {
            fetch_expected(&txn, tenant_id, kind, id, Some(expected)).await?;
        }
        if kind == ResourceKind::Group {
            // Before the memberships go: the walk down needs them.
            touch_users_from(&txn, tenant_id, &[id.to_string()], &at).await?;
        }
        let result = txn.execute(&delete).await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        touch_resources(&txn, tenant_id, &holders, &at).await?;
        record(&txn, audit, deleted).await?;
        txn.commit().await?;
        Ok(())
    }

    /// One page of resources in creation order, and the total count.
    /// `offset` is zero-based.
    pub async fn list_resources(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        offset: u64,
        limit: u64,
        load: Load,
    ) -> StoreResult<(u64, Vec<StoredResource>)> {
        let db = self.reader();
        let count = Query::select()
            .expr_as(Expr::col("id").count(), Alias::new("n"))
            .from("scim_resources")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("resource_type").eq(kind.code()))
            .to_owned();
        let total = match db.query_one(&count).await? {
            Some(row) => u64::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0),
            None => 0,
        };
        if limit == 0 || offset >= total {
            return Ok((total, Vec::new()));
        }
        let page = select_resources()
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("resource_type").eq(kind.code()))
            .order_by("created_at", Order::Asc)
            .order_by("id", Order::Asc)
            .limit(limit)
            .offset(offset)
            .to_owned();
        let mut resources = db
            .query_all(&page)
            .await?
            .iter()
            .map(|row| resource_from_row(row, kind))
            .collect::<StoreResult<Vec<_>>>()?;
        self.load_derived(db, tenant_id, &mut resources, load).await?;
        Ok((total, resources))
    }

    pub(super) async fn load_derived(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: &str,
        resources: &mut [StoredResource],
        load: Load,
    ) -> StoreResult<()> {
        if load.members {
            for resource in resources.iter_mut().filter(|r| r.kind == ResourceKind::Group) {
                resource.members = Some(members_of(db, tenant_id, &resource.id).await?);
            }
        }
        if load.groups {
            let user_ids: Vec<&str> = resources
                .iter()
                .filter(|r| r.kind == ResourceKind::User)
                .map(|r| r.id.as_str())
                .collect();
            let mut groups = groups_of(db, self.direct(), tenant_id, &user_ids).await?;
            for resource in resources.iter_mut().filter(|r| r.kind == ResourceKind::User) {
                resource.groups = Some(groups.remove(&resource.id).unwrap_or_default());
            }
        }
        Ok(())
    }
}

/// `user.created`, `group.deleted`, …: the audit action of a SCIM write.
pub fn action(kind: ResourceKind, verb: &str) -> &'static str {
    match (kind, verb) {
        (ResourceKind::User, "created") => "user.created",
        (ResourceKind::User, "replaced") => "user.replaced",
        (ResourceKind::User, "patched") => "user.patched",
        (ResourceKind::User, _) => "user.deleted",
        (ResourceKind::Group, "created") => "group.created",
        (ResourceKind::Group, "replaced") => "group.replaced",
        (ResourceKind::Group, "patched") => "group.patched",
        (ResourceKind::Group, _) => "group.deleted",
    }
}

/// The attributes kept in their own columns for indexed lookups.
struct IndexedColumns {
    user_name: Option<String>,
    external_id: Option<String>,
    display_name: Option<String>,
}

impl IndexedColumns {
    fn of(kind: ResourceKind, document: &Map<String, Value>) -> Self {
        let text = |name: &str| document.get(name).and_then(Value::as_str).map(str::to_string);
        IndexedColumns {
            user_name: if kind == ResourceKind::User {
                text("userName")
            } else {
                None
            },
            external_id: text("externalId"),
            display_name: text("displayName"),
        }
    }
}

/// The columns a [`StoredResource`] is read from ([`resource_from_row`]).
const RESOURCE_COLUMNS: [&str; 6] = [
    "id",
    "resource_type",
    "document",
    "version",
    "created_at",
    "last_modified",
];

pub(super) fn select_resources() -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .columns(RESOURCE_COLUMNS)
        .from("scim_resources")
        .to_owned()
}

/// [`RESOURCE_COLUMNS`] of the table aliased `alias`, for hand-written SQL.
fn resource_columns_of(alias: &str) -> String {
    RESOURCE_COLUMNS.map(|column| format!("{alias}.{column}")).join(", ")
}

/// The resource a write is about to change: `NotFound` if it does not
/// exist, `VersionMismatch` if `expected_version` (If-Match) names another.
async fn fetch_expected(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    kind: ResourceKind,
    id: &str,
    expected_version: Option<i64>,
) -> StoreResult<StoredResource> {
    let current = fetch_row(db, tenant_id, kind, id).await?.ok_or(StoreError::NotFound)?;
    if expected_version.is_some_and(|v| v != current.version) {
        return Err(StoreError::VersionMismatch);
    }
    Ok(current)
}

async fn fetch_row(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    kind: ResourceKind,
    id: &str,
) -> StoreResult<Option<StoredResource>> {
    match db.query_one(&select_row(tenant_id, kind, id)).await? {
        Some(row) => Ok(Some(resource_from_row(&row, kind)?)),
        None => Ok(None),
    }
}

fn select_row(tenant_id: &str, kind: ResourceKind, id: &str) -> SelectStatement {
    select_resources()
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("resource_type").eq(kind.code()))
        .and_where(Expr::col("id").eq(id))
        .to_owned()
}

pub(super) fn resource_from_row(row: &(impl ResultRow + ?Sized), kind: ResourceKind) -> StoreResult<StoredResource> {
    Ok(StoredResource {
        id: row.required_text("id")?,
        kind,
        document: Document::Text(row.required_text("document")?),
        version: row.required_integer("version")?,
        created: row.required_text("created_at")?,
        last_modified: row.required_text("last_modified")?,
        members: None,
        groups: None,
    })
}

/// A write's error, with the unique index on userName refusing it as a conflict.
fn taken(e: sea_orm::DbErr) -> StoreError {
    StoreError::from_db(e, "userName is already taken")
}

/// A replace or PATCH that changes no other resource: `update` (guarded by
/// the version read), the resource's new values and its audit event as one
/// guarded unit on `writer`.
async fn update_alone(
    writer: &Conn,
    update: Statement,
    mut reindex: Vec<Statement>,
    event: Statement,
) -> StoreResult<()> {
    reindex.push(event);
    match writer.guarded_write_unit(update, reindex).await.map_err(taken)? {
        true => Ok(()),
        false => Err(StoreError::VersionMismatch),
    }
}

/// In `txn`: `update` (guarded by the version read), then the resource's
/// new values.
async fn update_in(txn: &impl ConnectionTrait, update: Statement, reindex: Vec<Statement>) -> StoreResult<()> {
    if txn.execute_raw(update).await.map_err(taken)?.rows_affected() != 1 {
        return Err(StoreError::VersionMismatch);
    }
    for statement in reindex {
        txn.execute_raw(statement).await?;
    }
    Ok(())
}

/// Removes a resource's filterable values (before writing its new ones).
fn delete_index(tenant_id: &str, resource_id: &str) -> DeleteStatement {
    Query::delete()
        .from_table("scim_values")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("resource_id").eq(resource_id))
        .to_owned()
}

/// The INSERTs of resources' filterable values, a chunk of rows each:
/// `(tenant id, resource id, its rows)` for one resource or several
/// created together.
fn index_statements<'a>(
    backend: DbBackend,
    resources: impl IntoIterator<Item = (&'a str, &'a str, &'a [IndexRow])>,
) -> Vec<Statement> {
    let rows: Vec<(&str, &str, &IndexRow)> = resources
        .into_iter()
        .flat_map(|(tenant_id, resource_id, rows)| rows.iter().map(move |row| (tenant_id, resource_id, row)))
        .collect();
    let mut statements = Vec::new();
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut insert = RowsInsert::new(
            backend,
            "scim_values",
            [
                "tenant_id",
                "resource_id",
                "attr",
                "element",
                "value_text",
                "value_folded",
                "value_number",
            ],
        );
        for (tenant_id, resource_id, row) in chunk {
            insert.row([
                (*tenant_id).into(),
                (*resource_id).into(),
                row.attr.as_str().into(),
                row.element.into(),
                row.text.clone().into(),
                row.folded.clone().into(),
                row.number.into(),
            ]);
        }
        statements.push(insert.build());
    }
    statements
}

/// The statements that create new resources (version 1), each with its own
/// audit context, and the resources as they will be stored: one multi-row
/// INSERT for their rows, then their values and their audit events. The
/// only statement that can refuse the input (a taken userName) comes first.
/// Members, if any, are the caller's to write.
fn new_resources(
    backend: DbBackend,
    kind: ResourceKind,
    creates: &[(&AuditContext, &ResourceWrite)],
) -> StoreResult<(Vec<StoredResource>, Vec<Statement>)> {
    let at = scim_timestamp(now());
    let mut insert = RowsInsert::new(
        backend,
        "scim_resources",
        [
            "id",
            "tenant_id",
            "resource_type",
            "user_name",
            "user_name_folded",
            "external_id",
            "display_name",
            "display_name_folded",
            "document",
            "password_hash",
            "version",
            "created_at",
            "last_modified",
        ],
    );
    let mut created = Vec::with_capacity(creates.len());
    for (audit, write) in creates {
        // Time-ordered ids: a create appends to the id-keyed indexes (the
        // rows', their values', the audit target's) instead of dirtying a
        // random page of each, which the writer must read and write back.
        let id = uuid::Uuid::now_v7().to_string();
        let cols = IndexedColumns::of(kind, &write.document);
        let document = serde_json::to_string(&write.document).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let user_name_folded = cols.user_name.as_deref().map(str::to_lowercase);
        let display_name_folded = cols.display_name.as_deref().map(str::to_lowercase);
        insert.row([
            id.as_str().into(),
            audit.tenant_id.as_str().into(),
            kind.code().into(),
            cols.user_name.into(),
            user_name_folded.into(),
            cols.external_id.into(),
            cols.display_name.into(),
            display_name_folded.into(),
            document.as_str().into(),
            write.password_hash.clone().into(),
            1i64.into(),
            at.as_str().into(),
            at.as_str().into(),
        ]);
        created.push(StoredResource {
            id,
            kind,
            document: Document::Text(document),
            version: 1,
            created: at.clone(),
            last_modified: at.clone(),
            members: None,
            groups: None,
        });
    }
    let mut statements = vec![insert.build()];
    statements.extend(index_statements(
        backend,
        created
            .iter()
            .zip(creates)
            .map(|(c, (audit, write))| (audit.tenant_id.as_str(), c.id.as_str(), write.index.as_slice())),
    ));
    let events = created
        .iter()
        .zip(creates)
        .map(|(c, (audit, _))| (*audit, Event::success(action(kind, "created"), kind.code(), &c.id)));
    statements.push(record_many_statement(backend, events));
    Ok((created, statements))
}

/// Checks that every member exists in the tenant and fills in its type.
/// Unknown IDs, a type that contradicts the stored one, or a group naming
/// itself are [`StoreError::InvalidReference`].
async fn resolve_members(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    group_id: &str,
    refs: &[MemberRef],
) -> StoreResult<Vec<(String, ResourceKind)>> {
    let mut wanted: Vec<&MemberRef> = Vec::with_capacity(refs.len());
    let mut seen = HashSet::new();
    for r in refs {
        if r.id == group_id {
            return Err(StoreError::InvalidReference(
                "a group cannot be a member of itself".into(),
            ));
        }
        if seen.insert(r.id.as_str()) {
            wanted.push(r);
        }
    }
    let mut found: HashMap<String, ResourceKind> = HashMap::with_capacity(wanted.len());
    for chunk in wanted.chunks(INSERT_CHUNK) {
        let ids: Vec<SimpleExpr> = chunk.iter().map(|r| Expr::val(r.id.clone())).collect();
        let stmt = Query::select()
            .columns(["id", "resource_type"])
            .from("scim_resources")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("id").is_in(ids))
            .to_owned();
        for row in db.query_all(&stmt).await? {
            let id: String = row.try_get("", "id")?;
            let code: String = row.try_get("", "resource_type")?;
            found.insert(id, kind_from_code(&code)?);
        }
    }
    wanted
        .into_iter()
        .map(|r| match found.get(&r.id) {
            None => Err(StoreError::InvalidReference(format!(
                "member \"{}\" does not exist",
                r.id
            ))),
            Some(actual) if r.kind.is_some_and(|k| k != *actual) => Err(StoreError::InvalidReference(format!(
                "member \"{}\" is a {}, not a {}",
                r.id,
                actual.name(),
                r.kind.map(ResourceKind::name).unwrap_or_default()
            ))),
            Some(actual) => Ok((r.id.clone(), *actual)),
        })
        .collect()
}

async fn insert_members(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    group_id: &str,
    members: &[(String, ResourceKind)],
) -> StoreResult<()> {
    for chunk in members.chunks(INSERT_CHUNK) {
        let mut insert = Query::insert();
        insert
            .into_table("group_members")
            .columns(["tenant_id", "group_id", "member_id", "member_type"]);
        for (id, kind) in chunk {
            insert
                .values([tenant_id.into(), group_id.into(), id.clone().into(), kind.name().into()])
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
        // Adding a member that is already there is a no-op, not a conflict.
        insert.on_conflict(OnConflict::columns(["group_id", "member_id"]).do_nothing().to_owned());
        db.execute(&insert).await?;
    }
    Ok(())
}

/// Brings the member set to `members`, touching only the rows that change.
async fn replace_members(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    group_id: &str,
    members: Vec<(String, ResourceKind)>,
) -> StoreResult<Vec<String>> {
    let current_stmt = Query::select()
        .column("member_id")
        .column("member_type")
        .from("group_members")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("group_id").eq(group_id))
        .to_owned();
    let current_rows: Vec<(String, String)> = db
        .query_all(&current_stmt)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "member_id")?,
                row.try_get::<String>("", "member_type")?,
            ))
        })
        .collect::<Result<_, sea_orm::DbErr>>()?;
    let current: HashSet<String> = current_rows.iter().map(|(id, _)| id.clone()).collect();
    let wanted: HashSet<String> = members.iter().map(|(id, _)| id.clone()).collect();
    let removed: Vec<SimpleExpr> = current
        .iter()
        .filter(|id| !wanted.contains(*id))
        .map(|id| Expr::val(id.clone()))
        .collect();
    for chunk in removed.chunks(INSERT_CHUNK) {
        let delete = Query::delete()
            .from_table("group_members")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("group_id").eq(group_id))
            .and_where(Expr::col("member_id").is_in(chunk.to_vec()))
            .to_owned();
        db.execute(&delete).await?;
    }
    let added: Vec<(String, ResourceKind)> = members.into_iter().filter(|(id, _)| !current.contains(id)).collect();
    insert_members(db, tenant_id, group_id, &added).await?;
    // Members that joined or left (see [`touch_users_from`]).
    let mut changed: Vec<String> = added.into_iter().map(|(id, _)| id).collect();
    changed.extend(
        current_rows
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !wanted.contains(id)),
    );
    Ok(changed)
}

/// Whether a write changes a group's name, which every user below it shows
/// in its derived `groups`.
fn renamed(kind: ResourceKind, before: &Document, after: &Map<String, Value>) -> StoreResult<bool> {
    if kind != ResourceKind::Group {
        return Ok(false);
    }
    Ok(before.attribute("displayName")?.as_ref() != after.get("displayName"))
}

/// Gives a new version to the users whose derived `groups` changed because
/// `from` joined or left a group, or is a group renamed or deleted: the
/// users among `from` and every user below a group among them, directly
/// or through nested groups. Each step is a primary-key search: a member
/// change of one user costs a lookup and an update by id. (One UPDATE
/// over a recursive walk was planned by PostgreSQL as a pass over the
/// tenant's resources, 20 ms, with the group's row locked throughout.)
async fn touch_users_from(db: &impl ConnectionTrait, tenant_id: &str, from: &[String], at: &str) -> StoreResult<()> {
    let backend = db.get_database_backend();
    let mut groups: HashSet<String> = HashSet::new();
    for chunk in from.chunks(INSERT_CHUNK) {
        let stmt = Query::select()
            .column("id")
            .from("scim_resources")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("resource_type").eq(ResourceKind::Group.code()))
            .and_where(Expr::col("id").is_in(chunk.iter().cloned()))
            .to_owned();
        for row in db.query_all(&stmt).await? {
            groups.insert(row.try_get("", "id")?);
        }
    }
    let mut users: Vec<String> = from.iter().filter(|id| !groups.contains(*id)).cloned().collect();
    let groups: Vec<String> = groups.into_iter().collect();
    for chunk in groups.chunks(INSERT_CHUNK) {
        let sql = walk_down(&format!("({})", placeholders(backend, 1, chunk.len())));
        let values: Vec<DbValue> = chunk.iter().map(|id| DbValue::from(id.as_str())).collect();
        for row in db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            users.push(row.try_get("", "id")?);
        }
    }
    touch_resources_of_type(db, tenant_id, Some(ResourceKind::User), &users, at).await
}

/// Every member below the groups `roots` names (an SQL `IN` operand: a
/// parenthesised list or subquery), directly or through nested groups, as
/// one query with one column, `id`. UNION ends the walk on membership
/// cycles. Each step looks memberships up by the primary key (group_id,
/// member_id): CROSS JOIN makes SQLite drive it from the rows found so far,
/// and there is no tenant condition on group_members (the groups are the
/// tenant's, and so are their memberships), which SQLite preferred to serve
/// from ix_group_members_member by tenant alone: a pass over all memberships.
pub(super) fn walk_down(roots: &str) -> String {
    format!(
        "WITH RECURSIVE below(id) AS ( \
            SELECT gm.member_id FROM group_members gm WHERE gm.group_id IN {roots} \
            UNION \
            SELECT gm2.member_id FROM below CROSS JOIN group_members gm2 \
            WHERE gm2.group_id = below.id) \
         SELECT id FROM below"
    )
}

/// Gives resources whose derived attributes changed a new version.
async fn touch_resources(db: &impl ConnectionTrait, tenant_id: &str, ids: &[String], at: &str) -> StoreResult<()> {
    touch_resources_of_type(db, tenant_id, None, ids, at).await
}

/// [`touch_resources`], of one type only when `kind` is given.
async fn touch_resources_of_type(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    kind: Option<ResourceKind>,
    ids: &[String],
    at: &str,
) -> StoreResult<()> {
    for chunk in ids.chunks(INSERT_CHUNK) {
        let mut update = Query::update();
        update
            .table("scim_resources")
            .value("version", Expr::col("version").add(1))
            .value("last_modified", at)
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("id").is_in(chunk.iter().cloned()));
        if let Some(kind) = kind {
            update.and_where(Expr::col("resource_type").eq(kind.code()));
        }
        db.execute(&update).await?;
    }
    Ok(())
}

/// The groups that hold `id`: deleting it changes their `members`.
async fn groups_holding(db: &impl ConnectionTrait, tenant_id: &str, id: &str) -> StoreResult<Vec<String>> {
    let stmt = Query::select()
        .column("group_id")
        .from("group_members")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("member_id").eq(id))
        .to_owned();
    db.query_all(&stmt)
        .await?
        .iter()
        .map(|row| Ok(row.try_get("", "group_id")?))
        .collect()
}

/// A group's members: one index range of `group_members`, no join.
async fn members_of(db: &impl ConnectionTrait, tenant_id: &str, group_id: &str) -> StoreResult<Vec<StoredMember>> {
    let stmt = Query::select()
        .columns(["member_id", "member_type"])
        .from("group_members")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("group_id").eq(group_id))
        .order_by("member_id", Order::Asc)
        .to_owned();
    db.query_all(&stmt)
        .await?
        .iter()
        .map(|row| {
            let kind = kind_from_name(&row.try_get::<String>("", "member_type")?)?;
            Ok(StoredMember {
                id: row.try_get("", "member_id")?,
                kind,
            })
        })
        .collect()
}

/// Direct and indirect (nested) groups of each user, in one query.
async fn groups_of(
    db: &impl ConnectionTrait,
    direct: Option<&DirectReads>,
    tenant_id: &str,
    user_ids: &[&str],
) -> StoreResult<HashMap<String, Vec<StoredGroupRef>>> {
    let mut result: HashMap<String, Vec<StoredGroupRef>> = HashMap::new();
    for chunk in user_ids.chunks(INSERT_CHUNK) {
        if chunk.is_empty() {
            continue;
        }
        let stmt = groups_of_statement(db.get_database_backend(), tenant_id, chunk);
        let rows = read_rows(db, direct, stmt, |row| member_group_row(row)).await?;
        for (member, group) in rows {
            if let Some(group) = group {
                result.entry(member).or_default().push(group);
            }
        }
    }
    Ok(result)
}

fn member_group_row(row: &(impl ResultRow + ?Sized)) -> StoreResult<(String, Option<StoredGroupRef>)> {
    Ok((row.required_text("member_id")?, group_ref(row)?))
}

/// One `groups` entry from a row of [`groups_walk`]'s `derived` (columns
/// `group_id`, `display_name`, `direct`); `None` where the row has no group
/// (a user in none, left-joined).
fn group_ref(row: &(impl ResultRow + ?Sized)) -> StoreResult<Option<StoredGroupRef>> {
    let Some(id) = row.text("group_id")? else {
        return Ok(None);
    };
    Ok(Some(StoredGroupRef {
        id,
        display: row.text("display_name")?,
        direct: row.flag("direct")?,
    }))
}

/// The common table expressions that derive `groups`: `anc` walks up from
/// the members in `members` (SQL: placeholders) to each group they are in
/// and each group above those; `derived` has one row per member and group,
/// with the group's displayName and whether the membership is direct.
/// `tenant_first` and `tenant_step` are the placeholders for the tenant id.
///
/// UNION (not UNION ALL) ends the recursion on membership cycles: a row
/// found again, with the same `direct` flag, is not walked again. In the
/// recursive step, CROSS JOIN makes SQLite drive from the few rows found so
/// far and look each up in ix_group_members_member: left to itself, SQLite
/// 3.51 scans the tenant's whole membership table once per row instead.
/// `direct` travels with the rows rather than being looked up afterwards,
/// which PostgreSQL planned as a pass over all of the tenant's memberships.
fn groups_walk(members: &str, tenant_first: &str, tenant_step: &str) -> String {
    format!(
        "WITH RECURSIVE anc(member_id, group_id, direct) AS ( \
            SELECT member_id, group_id, 1 FROM group_members \
            WHERE tenant_id = {tenant_first} AND member_id IN ({members}) \
            UNION \
            SELECT anc.member_id, gm.group_id, 0 FROM anc CROSS JOIN group_members gm \
            WHERE gm.tenant_id = {tenant_step} AND gm.member_id = anc.group_id \
         ), derived AS ( \
            SELECT anc.member_id, anc.group_id, g.display_name, MAX(anc.direct) = 1 AS direct \
            FROM anc JOIN scim_resources g ON g.id = anc.group_id \
            GROUP BY anc.member_id, anc.group_id, g.display_name \
         )"
    )
}

/// The query behind [`groups_of`]: the derived groups of several users.
fn groups_of_statement(backend: DbBackend, tenant_id: &str, user_ids: &[&str]) -> Statement {
    let mut values: Vec<DbValue> = vec![tenant_id.into()];
    values.extend(user_ids.iter().map(|id| DbValue::from(*id)));
    values.push(tenant_id.into());
    let walk = groups_walk(
        &placeholders(backend, 2, user_ids.len()),
        &placeholder(backend, 1),
        &placeholder(backend, user_ids.len() + 2),
    );
    let sql = format!(
        "{walk} SELECT member_id, group_id, display_name, direct FROM derived \
         ORDER BY member_id, group_id"
    );
    Statement::from_sql_and_values(backend, sql, values)
}

/// A user and its derived `groups` from the rows of
/// [`user_with_groups_statement`]: the user decoded from the first row, and
/// one group or none from each.
fn user_with_groups(rows: Vec<(Option<StoredResource>, Option<StoredGroupRef>)>) -> Option<StoredResource> {
    let mut rows = rows.into_iter();
    let (user, first_group) = rows.next()?;
    let mut user = user?;
    let groups = first_group
        .into_iter()
        .chain(rows.filter_map(|(_, group)| group))
        .collect();
    user.groups = Some(groups);
    Some(user)
}

/// A user and its derived `groups`, in one round trip: GET /Users/{id} is
/// the most frequent read, and a second query for the groups cost as much as
/// the first. [`groups_walk`] for one user, left-joined to the user's row:
/// one row per group, or one row with NULL group columns for a user in no
/// group.
fn user_with_groups_statement(backend: DbBackend, tenant_id: &str, user_id: &str) -> Statement {
    let p = |n| placeholder(backend, n);
    let walk = groups_walk(&p(2), &p(1), &p(3));
    let sql = format!(
        "{walk} SELECT {user}, derived.group_id, derived.display_name, derived.direct \
         FROM scim_resources r LEFT JOIN derived ON 1 = 1 \
         WHERE r.tenant_id = {p4} AND r.resource_type = {p5} AND r.id = {p6} \
         ORDER BY derived.group_id",
        p4 = p(4),
        p5 = p(5),
        p6 = p(6),
        user = resource_columns_of("r"),
    );
    let values: Vec<DbValue> = vec![
        tenant_id.into(),
        user_id.into(),
        tenant_id.into(),
        tenant_id.into(),
        ResourceKind::User.code().into(),
        user_id.into(),
    ];
    Statement::from_sql_and_values(backend, sql, values)
}

/// The derived `groups` of `member_id`, as [`groups_walk`] derives them,
/// found level by level with one indexed lookup per group reached: the
/// groups it is in (direct), the groups those are in, and so on. Each group
/// is walked once, which ends the walk on membership cycles; one reached
/// both directly and through another group is direct.
fn walk_up_groups(reads: &Snapshot<'_>, tenant_id: &str, member_id: &str) -> StoreResult<Vec<StoredGroupRef>> {
    let mut found: BTreeMap<String, StoredGroupRef> = BTreeMap::new();
    let mut level = vec![member_id.to_string()];
    let mut direct = true;
    while !level.is_empty() {
        let mut next = Vec::new();
        for member in &level {
            let stmt = Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT gm.group_id, g.display_name FROM group_members gm \
                 JOIN scim_resources g ON g.id = gm.group_id \
                 WHERE gm.tenant_id = ? AND gm.member_id = ?",
                [tenant_id.into(), member.as_str().into()],
            );
            for (id, display) in reads.query(&stmt, |row| {
                Ok((row.required_text("group_id")?, row.text("display_name")?))
            })? {
                if let Entry::Vacant(slot) = found.entry(id.clone()) {
                    slot.insert(StoredGroupRef {
                        id: id.clone(),
                        display,
                        direct,
                    });
                    next.push(id);
                }
            }
        }
        level = next;
        direct = false;
    }
    Ok(found.into_values().collect())
}

/// A user's row, and whether it is a direct member of any group (`in_groups`).
fn user_in_groups_statement(backend: DbBackend, tenant_id: &str, user_id: &str) -> Statement {
    let p = |n| placeholder(backend, n);
    let sql = format!(
        "SELECT {user}, EXISTS (SELECT 1 FROM group_members m WHERE m.tenant_id = {p1} AND m.member_id = {p2}) AS in_groups \
         FROM scim_resources r \
         WHERE r.tenant_id = {p3} AND r.resource_type = {p4} AND r.id = {p5}",
        p1 = p(1),
        p2 = p(2),
        p3 = p(3),
        p4 = p(4),
        p5 = p(5),
        user = resource_columns_of("r"),
    );
    let values: Vec<DbValue> = vec![
        tenant_id.into(),
        user_id.into(),
        tenant_id.into(),
        ResourceKind::User.code().into(),
        user_id.into(),
    ];
    Statement::from_sql_and_values(backend, sql, values)
}

impl Store {
    /// The database's plan for deriving a user's `groups`, one line per step
    /// (see [`Store::explain_filter`] for how it is taken).
    pub async fn explain_groups_of(&self, tenant_id: &str, user_id: &str) -> StoreResult<Vec<String>> {
        self.explain(groups_of_statement(self.backend(), tenant_id, &[user_id]))
            .await
    }

    /// The plan for reading one user and whether it is in any group (GET
    /// /Users/{id} on SQLite, before any walk).
    pub async fn explain_user_in_groups(&self, tenant_id: &str, user_id: &str) -> StoreResult<Vec<String>> {
        self.explain(user_in_groups_statement(self.backend(), tenant_id, user_id))
            .await
    }

    /// The plan for reading one user with its `groups` (GET /Users/{id}).
    pub async fn explain_user_with_groups(&self, tenant_id: &str, user_id: &str) -> StoreResult<Vec<String>> {
        self.explain(user_with_groups_statement(self.backend(), tenant_id, user_id))
            .await
    }
}

fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_string(),
    }
}

/// `count` placeholders numbered from `first`, comma-separated.
fn placeholders(backend: DbBackend, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| placeholder(backend, n))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_from_code(code: &str) -> StoreResult<ResourceKind> {
    match code {
        "user" => Ok(ResourceKind::User),
        "group" => Ok(ResourceKind::Group),
        other => Err(StoreError::Corrupt(format!("unknown resource type {other}"))),
    }
}

fn kind_from_name(name: &str) -> StoreResult<ResourceKind> {
    match name {
        "User" => Ok(ResourceKind::User),
        "Group" => Ok(ResourceKind::Group),
        other => Err(StoreError::Corrupt(format!("unknown member type {other}"))),
    }
}
