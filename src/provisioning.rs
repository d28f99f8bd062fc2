//! The SCIM operations on Users and Groups: validate (scim) → hash → store →
//! render. The HTTP layer (and later Bulk) calls these and nothing below.

use serde_json::{Map, Value, json};

use crate::scim::json_text::{self, ObjectWriter};

use crate::auth::hashing::Hasher;
use crate::scim::resource::{self, IndexedScalar, Projection};
use crate::scim::schema::{AttrType, SchemaRegistry};
use crate::scim::{ResourceKind, ScimError, ScimResult, ScimType};
use crate::scim::{filter, patch};
use crate::store::audit::AuditContext;
use crate::store::query::{ListSpec, Page, Position, SortSpec};
use crate::store::resources::{
    Document, IndexRow, Load, MemberDelta, MemberRef, ResourceWrite, StoredGroupRef, StoredMember, StoredResource,
    action,
};
use crate::store::{Store, StoreError};

pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Page size when the client gives no `count`, and the most one page holds.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Where a request happens: its tenant and the SCIM base URL it used
/// (`…/scim/v2` or `…/t/{tenant}/scim/v2`), for `meta.location` and `$ref`.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub tenant_id: &'a str,
    pub base_url: &'a str,
    /// Who acts: every write is audited in its own transaction.
    pub audit: &'a AuditContext,
}

/// A resource as answered: its id, body (serialised JSON), weak ETag and
/// location.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub id: String,
    pub body: Vec<u8>,
    pub etag: String,
    pub location: String,
}

/// An `If-Match` / `If-None-Match` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    Any,
    /// Versions named by the tags; tags that are not ours are dropped.
    Versions(Vec<i64>),
}

impl Precondition {
    pub fn parse(header: &str) -> Precondition {
        if header.trim() == "*" {
            return Precondition::Any;
        }
        let versions = header.split(',').filter_map(|tag| parse_etag(tag.trim())).collect();
        Precondition::Versions(versions)
    }

    pub fn matches(&self, version: i64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::Versions(v) => v.contains(&version),
        }
    }
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

fn parse_etag(tag: &str) -> Option<i64> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

pub struct Provisioning {
    store: Store,
    hasher: Hasher,
    registry: &'static SchemaRegistry,
    /// Users, Groups: whether a stored document is its own default view
    /// ([`resource::stored_is_default_view`]), so reads can send its text.
    stored_is_default_view: (bool, bool),
}

impl Provisioning {
    pub fn new(store: Store, hasher: Hasher) -> Self {
        let registry = SchemaRegistry::builtin();
        Provisioning {
            store,
            hasher,
            registry,
            stored_is_default_view: (
                resource::stored_is_default_view(registry, ResourceKind::User),
                resource::stored_is_default_view(registry, ResourceKind::Group),
            ),
        }
    }

    fn sends_stored_text(&self, kind: ResourceKind, projection: &Projection) -> bool {
        let stored_is_view = match kind {
            ResourceKind::User => self.stored_is_default_view.0,
            ResourceKind::Group => self.stored_is_default_view.1,
        };
        stored_is_view && projection.is_default()
    }

    pub fn registry(&self) -> &'static SchemaRegistry {
        self.registry
    }

    /// The same operations, all inside one new store transaction (see
    /// [`Store::batch`]) until [`Provisioning::commit_batch`]; dropping the
    /// batch instead undoes them all.
    pub async fn batch(&self) -> ScimResult<Provisioning> {
        let store = self.store.batch().await.map_err(|e| store_error(e.into()))?;
        Ok(Provisioning {
            store,
            hasher: self.hasher.clone(),
            registry: self.registry,
            stored_is_default_view: self.stored_is_default_view,
        })
    }

    /// The most operations a batch should hold, if the store bounds them
    /// ([`Store::batch_units_limit`]).
    pub fn batch_limit(&self) -> Option<usize> {
        self.store.batch_units_limit()
    }

    pub async fn commit_batch(self) -> ScimResult<()> {
        self.store.commit_batch().await.map_err(|e| store_error(e.into()))
    }

    pub async fn create(
        &self,
        scope: &Scope<'_>,
        kind: ResourceKind,
        input: &Value,
        projection: &Projection,
    ) -> ScimResult<Rendered> {
        let write = self.prepare_write(kind, input, None).await?;
        let mut stored = self
            .store
            .create_grouped(scope.audit, kind, write)
            .await
            .map_err(store_error)?;
        if kind == ResourceKind::User {
            // A user just created belongs to no group yet: nothing to load.
            stored.groups = Some(Vec::new());
        }
        self.render_fresh(scope, stored, projection).await
    }

    /// Validates a user to create (hashing its password, if any), for
    /// [`Provisioning::create_users_together`].
    pub async fn prepare_user(&self, input: &Value) -> ScimResult<ResourceWrite> {
        self.prepare_write(ResourceKind::User, input, None).await
    }

    /// Creates users prepared by [`Provisioning::prepare_user`] as one unit
    /// in this provisioning's store (a Bulk batch): all of them or, on any
    /// error (a taken userName among them), none. Answers (id, ETag) each,
    /// in order: a Bulk answers no body, so nothing is rendered.
    pub async fn create_users_together(
        &self,
        scope: &Scope<'_>,
        writes: Vec<ResourceWrite>,
    ) -> ScimResult<Vec<(String, String)>> {
        let creates: Vec<(&AuditContext, &ResourceWrite)> = writes.iter().map(|w| (scope.audit, w)).collect();
        let created = self
            .store
            .create_resources_together(ResourceKind::User, &creates)
            .await
            .map_err(store_error)?;
        Ok(created.into_iter().map(|c| (c.id, etag(c.version))).collect())
    }

    pub async fn get(
        &self,
        scope: &Scope<'_>,
        kind: ResourceKind,
        id: &str,
        projection: &Projection,
    ) -> ScimResult<Rendered> {
        let load = load_for(kind, projection);
        let stored = self
            .store
            .get_resource(scope.tenant_id, kind, id, load)
            .await
            .map_err(store_error)?;
        let stored = stored.ok_or_else(|| not_found(kind, id))?;
        self.render(scope, stored, projection)
    }

    /// The current version of a resource, for `If-None-Match` on GET.
    pub async fn version(&self, scope: &Scope<'_>, kind: ResourceKind, id: &str) -> ScimResult<i64> {
        let stored = self
            .store
            .get_resource(scope.tenant_id, kind, id, Load::default())
            .await
            .map_err(store_error)?;
        Ok(stored.ok_or_else(|| not_found(kind, id))?.version)
    }

    pub async fn replace(
        &self,
        scope: &Scope<'_>,
        kind: ResourceKind,
        id: &str,
        input: &Value,
        if_match: Option<&Precondition>,
        projection: &Projection,
    ) -> ScimResult<Rendered> {
        let current = self
            .store
            .get_resource(scope.tenant_id, kind, id, Load::default())
            .await
            .map_err(store_error)?
            .ok_or_else(|| not_found(kind, id))?;
        check_precondition(if_match, current.version)?;
        let existing = Value::Object(current.document.into_values().map_err(store_error)?);
        let write = self.prepare_write(kind, input, Some(&existing)).await?;
        // The version read above is the one the precondition approved: the
        // store refuses the write if it changed in between.
        let (audit, id, version) = (scope.audit.clone(), id.to_string(), current.version);
        let stored = self
            .store
            .grouped(move |store| {
                let (audit, id, write) = (audit.clone(), id.clone(), write.clone());
                async move {
                    let replaced = action(kind, "replaced");
                    store
                        .replace_resource(&audit, replaced, kind, &id, Some(version), write)
                        .await
                }
            })
            .await
            .map_err(store_error)?;
        self.render_fresh(scope, stored, projection).await
    }

    /// PATCH (RFC 7644 §3.5.2): the operations are applied to the stored
    /// document, the result is validated like a replace, and membership
    /// changes are applied row by row. Without `If-Match`, a concurrent write
    /// that wins the race makes this re-read and re-apply (a few times), so
    /// concurrent member changes are never lost; with `If-Match` it is a 412.
    pub async fn patch(
        &self,
        scope: &Scope<'_>,
        kind: ResourceKind,
        id: &str,
        body: &Value,
        if_match: Option<&Precondition>,
        projection: &Projection,
    ) -> ScimResult<Rendered> {
        const ATTEMPTS: u32 = 30;
        let request = patch::parse_patch_request(body)?;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let current = self
                .store
                .get_resource(scope.tenant_id, kind, id, Load::default())
                .await
                .map_err(store_error)?
                .ok_or_else(|| not_found(kind, id))?;
            check_precondition(if_match, current.version)?;
            let existing = Value::Object(current.document.into_values().map_err(store_error)?);
            let outcome = patch::apply_patch(self.registry, kind, &existing, &request)?;
            let write = if outcome.document == existing {
                None
            } else {
                let mut write = self.prepare_write(kind, &outcome.document, Some(&existing)).await?;
                write.members = None;
                Some(write).filter(|w| existing.as_object() != Some(&w.document) || w.password_hash.is_some())
            };
            let delta = MemberDelta {
                replace_all: outcome
                    .members
                    .replace_all
                    .map(|all| all.into_iter().map(member_ref).collect()),
                add: outcome.members.add.into_iter().map(member_ref).collect(),
                remove: outcome.members.remove,
            };
            // Membership-only changes are row-level and commute: no version check.
            let expected = (write.is_some() || if_match.is_some()).then_some(current.version);
            let (audit, target) = (scope.audit.clone(), id.to_string());
            let patched = self
                .store
                .grouped(move |store| {
                    let (audit, target) = (audit.clone(), target.clone());
                    let (write, delta) = (write.clone(), delta.clone());
                    async move {
                        store
                            .patch_resource(&audit, kind, &target, expected, write, delta)
                            .await
                    }
                })
                .await;
            match patched {
                Ok(stored) => return self.render_fresh(scope, stored, projection).await,
                Err(StoreError::VersionMismatch) if if_match.is_none() && attempt < ATTEMPTS => {
                    // Lost a race with another write: back off a little, at random, and re-apply.
                    let jitter = rand::random_range(1..=5 * u64::from(attempt.min(10)));
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                    continue;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    pub async fn delete(
        &self,
        scope: &Scope<'_>,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&Precondition>,
    ) -> ScimResult<()> {
        let expected = match if_match {
            None => None,
            Some(precondition) => {
                let version = self.version(scope, kind, id).await?;
                check_precondition(Some(precondition), version)?;
                Some(version)
            }
        };
        let (audit, id) = (scope.audit.clone(), id.to_string());
        self.store
            .grouped(move |store| {
                let (audit, id) = (audit.clone(), id.clone());
                async move { store.delete_resource(&audit, kind, &id, expected).await }
            })
            .await
            .map_err(store_error)
    }

    /// A ListResponse page of one resource type (GET and `POST /.search`).
    pub async fn list(
        &self,
        scope: &Scope<'_>,
        kind: ResourceKind,
        request: &ListRequest<'_>,
        projection: &Projection,
    ) -> ScimResult<Vec<u8>> {
        let query = self.compile_query(kind, request)?;
        let (start_index, count) = request.page();
        let cursor_binding = request.cursor_binding(kind);
        let page = match request.cursor {
            Some(cursor) => Page::After(decode_cursor(cursor, cursor_binding)?),
            None => Page::Offset(start_index - 1),
        };
        let spec = ListSpec {
            filter: query.filter.as_ref(),
            sort: query.sort.as_ref(),
            page,
            limit: count,
        };
        let found = self
            .store
            .query_resources(scope.tenant_id, kind, &spec, load_for(kind, projection))
            .await
            .map_err(store_error)?;
        let resources = found
            .resources
            .into_iter()
            .map(|r| Ok(self.render(scope, r, projection)?.body))
            .collect::<ScimResult<Vec<_>>>()?;
        // RFC 9865: no startIndex in cursor paging; nextCursor unless this is the last page.
        let paging = match request.cursor {
            Some(_) => Paging::Cursor(found.next.map(|next| encode_cursor(&next, cursor_binding))),
            None => Paging::Index(start_index),
        };
        list_response(found.total, paging, &resources)
    }

    /// Root `POST /.search`: Users then Groups, paged as one list. A test of
    /// an attribute one type lacks is false for that type's resources
    /// ([`filter::validate_across`]). Sorted by an attribute one type lacks,
    /// that type's resources have no value to sort by, so they come after the
    /// other's, as missing values do.
    pub async fn search_all(
        &self,
        scope: &Scope<'_>,
        request: &ListRequest<'_>,
        projections: [&Projection; 2],
    ) -> ScimResult<Vec<u8>> {
        let kinds = [ResourceKind::User, ResourceKind::Group];
        let filters = match request.filter.map(str::trim) {
            Some(text) if !text.is_empty() => {
                let expr = filter::parse_expression(text)?;
                filter::validate_across(self.registry, &kinds, &expr)?
                    .into_iter()
                    .map(Some)
                    .collect()
            }
            _ => vec![None; kinds.len()],
        };
        let sorts: Vec<ScimResult<Option<SortSpec>>> = kinds.iter().map(|k| self.compile_sort(*k, request)).collect();
        if let Some(Err(e)) = sorts
            .iter()
            .find(|s| s.is_err())
            .filter(|_| sorts.iter().all(Result::is_err))
        {
            return Err(e.clone());
        }
        let mut queries: Vec<(ResourceKind, CompiledQuery, &Projection)> = kinds
            .into_iter()
            .zip(filters)
            .zip(sorts)
            .zip(projections)
            .map(|(((kind, filter), sort), projection)| {
                let sort = sort.ok().flatten();
                (kind, CompiledQuery { filter, sort }, projection)
            })
            .collect();
        if request.sort_by.is_some_and(|s| !s.trim().is_empty()) {
            // Stable: Users stay first unless only Groups have the attribute.
            queries.sort_by_key(|(_, query, _)| query.sort.is_none());
        }
        if request.cursor.is_some() {
            return Err(ScimError::bad_request(
                ScimType::InvalidCursor,
                "cursor paging is available on /Users and /Groups, not on the root /.search",
            ));
        }
        let (start_index, count) = request.page();
        let mut offset = start_index - 1;
        let mut remaining = count;
        let mut total = 0;
        let mut resources = Vec::new();
        for (kind, query, projection) in &queries {
            let spec = ListSpec {
                filter: query.filter.as_ref(),
                sort: query.sort.as_ref(),
                page: Page::Offset(offset),
                limit: remaining,
            };
            let found = self
                .store
                .query_resources(scope.tenant_id, *kind, &spec, load_for(*kind, projection))
                .await
                .map_err(store_error)?;
            total += found.total;
            offset = offset.saturating_sub(found.total);
            remaining -= found.resources.len() as u64;
            for resource in found.resources {
                resources.push(self.render(scope, resource, projection)?.body);
            }
        }
        list_response(total, Paging::Index(start_index), &resources)
    }

    fn compile_query(&self, kind: ResourceKind, request: &ListRequest<'_>) -> ScimResult<CompiledQuery> {
        let filter = match request.filter.map(str::trim) {
            Some(text) if !text.is_empty() => Some(filter::parse_filter(self.registry, kind, text)?),
            _ => None,
        };
        let sort = self.compile_sort(kind, request)?;
        Ok(CompiledQuery { filter, sort })
    }

    fn compile_sort(&self, kind: ResourceKind, request: &ListRequest<'_>) -> ScimResult<Option<SortSpec>> {
        Ok(match request.sort_by.map(str::trim) {
            Some(path) if !path.is_empty() => {
                let parsed = filter::parse_attr_path(path).map_err(|_| invalid_sort(path))?;
                let mut attr = filter::attr_ref(self.registry, kind, &parsed).map_err(|_| invalid_sort(path))?;
                // A complex attribute sorts by its `value` (RFC 7644
                // §3.4.2.3), held and compared as that sub-attribute is
                // (`x509Certificates.value` is case-exact binary).
                if attr.attr_type == AttrType::Complex {
                    let value = filter::AttrPath {
                        sub_attr: Some("value".into()),
                        ..parsed
                    };
                    if let Ok(value) = filter::attr_ref(self.registry, kind, &value) {
                        attr = value;
                    }
                }
                let descending = match request.sort_order.map(str::trim) {
                    None | Some("") => false,
                    Some(o) if o.eq_ignore_ascii_case("ascending") => false,
                    Some(o) if o.eq_ignore_ascii_case("descending") => true,
                    Some(o) => {
                        return Err(ScimError::invalid_value(format!(
                            "sortOrder must be \"ascending\" or \"descending\", not \"{o}\""
                        )));
                    }
                };
                Some(SortSpec { attr, descending })
            }
            _ => None,
        })
    }

    async fn prepare_write(
        &self,
        kind: ResourceKind,
        input: &Value,
        existing: Option<&Value>,
    ) -> ScimResult<ResourceWrite> {
        let validated = resource::validate_write(self.registry, kind, input, existing)?;
        let mut document = validated.document;
        let members = match kind {
            ResourceKind::Group => Some(take_members(&mut document)?),
            ResourceKind::User => None,
        };
        let index = resource::index_values(self.registry, kind, &Value::Object(document.clone()))
            .into_iter()
            .map(index_row)
            .collect();
        let password_hash = match validated.password {
            Some(password) => Some(self.hasher.hash(password).await.map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                ScimError::internal()
            })?),
            None => None,
        };
        Ok(ResourceWrite {
            document,
            index,
            password_hash,
            members,
        })
    }

    /// Renders a resource just written, loading what the projection needs.
    async fn render_fresh(
        &self,
        scope: &Scope<'_>,
        stored: StoredResource,
        projection: &Projection,
    ) -> ScimResult<Rendered> {
        let load = load_for(stored.kind, projection);
        let loaded = (!load.members || stored.members.is_some()) && (!load.groups || stored.groups.is_some());
        if loaded {
            return self.render(scope, stored, projection);
        }
        let reloaded = self
            .store
            .get_resource(scope.tenant_id, stored.kind, &stored.id, load)
            .await
            .map_err(store_error)?
            .unwrap_or(stored);
        self.render(scope, reloaded, projection)
    }

    /// A stored resource as answered. With the default projection the
    /// stored text is sent as it is, the top level read only to put the
    /// members in order ([`stored_text_view`]); otherwise the document is
    /// parsed and projected. Both give the same members in the same order.
    fn render(&self, scope: &Scope<'_>, stored: StoredResource, projection: &Projection) -> ScimResult<Rendered> {
        let location = format!("{}/{}/{}", scope.base_url, stored.kind.endpoint(), stored.id);
        let etag = etag(stored.version);
        let StoredResource {
            id,
            kind,
            document,
            created,
            last_modified,
            members,
            groups,
            ..
        } = stored;
        let mut derived: Vec<(&'static str, Value)> = Vec::with_capacity(3);
        if let Some(members) = members.filter(|m| !m.is_empty()) {
            derived.push(("members", members_value(scope, &members)));
        }
        if let Some(groups) = groups.filter(|g| !g.is_empty()) {
            derived.push(("groups", groups_value(scope, &groups)));
        }
        derived.push((
            "meta",
            json!({
                "resourceType": kind.name(),
                "created": created,
                "lastModified": last_modified,
                "location": location,
                "version": etag,
            }),
        ));
        let body = match document {
            Document::Text(text) if self.sends_stored_text(kind, projection) => {
                stored_text_view(kind, &id, &text, &derived)
            }
            document => {
                let document = document.into_values().map_err(store_error)?;
                let body = full_view(kind, &id, document, derived);
                serde_json::to_vec(&resource::project(self.registry, kind, body, projection))
            }
        }
        .map_err(|e| store_error(StoreError::Corrupt(format!("stored document of {id}: {e}"))))?;
        Ok(Rendered {
            id,
            body,
            etag,
            location,
        })
    }
}

/// Every member of a resource, stored and derived, to project.
fn full_view(kind: ResourceKind, id: &str, mut document: Map<String, Value>, derived: Vec<(&str, Value)>) -> Value {
    let mut body = Map::new();
    body.insert(
        "schemas".into(),
        // shift_remove: `remove` would move the last member (an extension) into its place.
        document
            .shift_remove("schemas")
            .unwrap_or_else(|| json!([kind.core_schema()])),
    );
    body.insert("id".into(), json!(id));
    body.extend(document);
    body.extend(derived.into_iter().map(|(k, v)| (k.to_string(), v)));
    Value::Object(body)
}

/// The default view of a stored document, from its text: `schemas`, `id`,
/// `externalId`, the other stored members as stored, then `derived`
/// (`members`, `groups`, `meta`), as [`resource::project`] orders them.
/// Members the server supplies are never stored; any found are skipped
/// rather than sent twice.
fn stored_text_view(
    kind: ResourceKind,
    id: &str,
    text: &str,
    derived: &[(&'static str, Value)],
) -> Result<Vec<u8>, serde_json::Error> {
    let members = json_text::object_members(text)?;
    let stored = |key: &str| members.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    let mut out = ObjectWriter::with_capacity(text.len() + 512);
    match stored("schemas") {
        Some(schemas) => out.raw("schemas", schemas)?,
        None => out.value("schemas", &[kind.core_schema()])?,
    }
    out.value("id", &id)?;
    if let Some(external_id) = stored("externalId") {
        out.raw("externalId", external_id)?;
    }
    for (key, value) in &members {
        if !matches!(
            key.as_str(),
            "schemas" | "id" | "externalId" | "members" | "groups" | "meta"
        ) {
            out.raw(key, value)?;
        }
    }
    for (key, value) in derived {
        out.value(key, value)?;
    }
    Ok(out.finish())
}

fn members_value(scope: &Scope<'_>, members: &[StoredMember]) -> Value {
    // No `display`: it is optional, and clients compare what they sent
    // (value, $ref, type) with what comes back.
    let members = members
        .iter()
        .map(|m| {
            json!({
                "value": m.id,
                "$ref": format!("{}/{}/{}", scope.base_url, m.kind.endpoint(), m.id),
                "type": m.kind.name(),
            })
        })
        .collect();
    Value::Array(members)
}

fn groups_value(scope: &Scope<'_>, groups: &[StoredGroupRef]) -> Value {
    let groups = groups
        .iter()
        .map(|g| {
            let mut group = json!({
                "value": g.id,
                "$ref": format!("{}/Groups/{}", scope.base_url, g.id),
                "type": if g.direct { "direct" } else { "indirect" },
            });
            if let Some(display) = &g.display {
                group["display"] = json!(display);
            }
            group
        })
        .collect();
    Value::Array(groups)
}

/// What a list or search asks for, as received (query string or SearchRequest).
#[derive(Debug, Clone, Default)]
pub struct ListRequest<'a> {
    pub filter: Option<&'a str>,
    pub sort_by: Option<&'a str>,
    pub sort_order: Option<&'a str>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    /// RFC 9865 cursor paging: `Some("")` asks for the first page.
    pub cursor: Option<&'a str>,
}

impl ListRequest<'_> {
    /// Ties a cursor to the query it pages through, so that a cursor replayed
    /// with another filter or order is refused instead of mis-paging.
    fn cursor_binding(&self, kind: ResourceKind) -> u32 {
        let text = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            kind.code(),
            self.filter.unwrap_or_default().trim(),
            self.sort_by.unwrap_or_default().trim().to_lowercase(),
            self.sort_order.unwrap_or_default().trim().to_lowercase()
        );
        crc32fast::hash(text.as_bytes())
    }

    /// RFC 7644 §3.4.2.4: a startIndex below 1 is 1; a negative count is 0;
    /// counts above the maximum are clamped (the SPC advertises it).
    fn page(&self) -> (u64, u64) {
        let start_index = self.start_index.map_or(1, |i| u64::try_from(i).unwrap_or(1).max(1));
        let count = self
            .count
            .map_or(DEFAULT_PAGE_SIZE, |c| u64::try_from(c).unwrap_or(0))
            .min(MAX_PAGE_SIZE);
        (start_index, count)
    }
}

struct CompiledQuery {
    filter: Option<filter::Filter>,
    sort: Option<SortSpec>,
}

/// Cursors are opaque to clients: hex of a small JSON document holding the
/// keyset position and the query binding.
fn encode_cursor(position: &Position, binding: u32) -> String {
    let doc = json!({ "b": binding, "p": position }).to_string();
    doc.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str, binding: u32) -> ScimResult<Option<Position>> {
    let cursor = cursor.trim();
    if cursor.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        ScimError::bad_request(
            ScimType::InvalidCursor,
            "invalid cursor: send an empty cursor for the first page, then the nextCursor of the previous page with the same query",
        )
    };
    if !cursor.len().is_multiple_of(2) || cursor.len() > 8192 {
        return Err(invalid());
    }
    let bytes: Vec<u8> = (0..cursor.len())
        .step_by(2)
        .map(|i| cursor.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<_>>()
        .ok_or_else(invalid)?;
    #[derive(serde::Deserialize)]
    struct Cursor {
        b: u32,
        p: Position,
    }
    let decoded: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if decoded.b != binding {
        return Err(invalid());
    }
    Ok(Some(decoded.p))
}

fn invalid_sort(path: &str) -> ScimError {
    ScimError::invalid_value(format!("sortBy \"{path}\" is not a sortable attribute"))
}

/// How a list was paged, as its ListResponse says.
enum Paging {
    /// RFC 7644 index paging: the page's `startIndex`.
    Index(u64),
    /// RFC 9865 cursor paging: the next page's cursor, unless this is the last.
    Cursor(Option<String>),
}

/// A ListResponse around resources rendered already (JSON text each).
fn list_response(total: u64, paging: Paging, resources: &[Vec<u8>]) -> ScimResult<Vec<u8>> {
    let mut out = ObjectWriter::with_capacity(resources.iter().map(|r| r.len() + 1).sum::<usize>() + 256);
    let written = (|| {
        out.value("schemas", &[LIST_RESPONSE_SCHEMA])?;
        out.value("totalResults", &total)?;
        if let Paging::Index(start_index) = paging {
            out.value("startIndex", &start_index)?;
        }
        out.value("itemsPerPage", &resources.len())?;
        out.raw_bytes("Resources", &json_text::raw_array(resources))?;
        if let Paging::Cursor(Some(next)) = &paging {
            out.value("nextCursor", next)?;
        }
        Ok::<_, serde_json::Error>(())
    })();
    written.map_err(|e| store_error(StoreError::Corrupt(format!("list response: {e}"))))?;
    Ok(out.finish())
}

fn load_for(kind: ResourceKind, projection: &Projection) -> Load {
    Load {
        members: kind == ResourceKind::Group && projection.includes("members"),
        groups: kind == ResourceKind::User && projection.includes("groups"),
    }
}

fn check_precondition(if_match: Option<&Precondition>, version: i64) -> ScimResult<()> {
    match if_match {
        Some(p) if !p.matches(version) => Err(ScimError::precondition_failed(format!(
            "If-Match does not match the current version {}",
            etag(version)
        ))),
        _ => Ok(()),
    }
}

/// Moves `members` out of a validated Group document into member references.
fn take_members(document: &mut Map<String, Value>) -> ScimResult<Vec<MemberRef>> {
    let Some(members) = document.remove("members") else {
        return Ok(Vec::new());
    };
    let Value::Array(members) = members else {
        return Err(ScimError::invalid_value("members must be an array"));
    };
    members
        .iter()
        .map(|member| {
            let id = member
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| ScimError::invalid_value("members.value is required"))?;
            let kind = match member.get("type").and_then(Value::as_str) {
                None => None,
                Some(t) if t.eq_ignore_ascii_case("User") => Some(ResourceKind::User),
                Some(t) if t.eq_ignore_ascii_case("Group") => Some(ResourceKind::Group),
                Some(t) => {
                    return Err(ScimError::invalid_value(format!(
                        "members.type \"{t}\" is neither User nor Group"
                    )));
                }
            };
            Ok(MemberRef {
                id: id.to_string(),
                kind,
            })
        })
        .collect()
}

fn member_ref(member: patch::MemberValue) -> MemberRef {
    let kind = match member.kind.as_deref() {
        Some("User") => Some(ResourceKind::User),
        Some("Group") => Some(ResourceKind::Group),
        _ => None,
    };
    MemberRef { id: member.value, kind }
}

fn index_row(value: resource::IndexValue) -> IndexRow {
    let element = value
        .element
        .map(|e| i32::try_from(e).unwrap_or(i32::MAX))
        .unwrap_or(-1);
    // Only the column the attribute's filters and sorts read (migration
    // 11): each is indexed, so a second copy would cost an index entry that
    // no query uses.
    let (text, folded, number) = match value.value {
        IndexedScalar::Text {
            value,
            case_exact: false,
        } => (None, Some(value.to_lowercase()), None),
        IndexedScalar::Text {
            value,
            case_exact: true,
        } => (Some(value), None, None),
        IndexedScalar::Bool(b) => (Some(b.to_string()), None, None),
        IndexedScalar::Number(n) => (None, None, Some(n)),
        IndexedScalar::DateTime(t) => (Some(t), None, None),
    };
    IndexRow {
        attr: value.attr,
        element,
        text,
        folded,
        number,
    }
}

fn not_found(kind: ResourceKind, id: &str) -> ScimError {
    ScimError::not_found(format!("{} \"{id}\" not found", kind.name()))
}

/// Maps store failures to SCIM errors, in one place. Causes of 5xx are
/// logged here; the client gets a plain message.
pub fn store_error(e: StoreError) -> ScimError {
    match e {
        StoreError::Conflict(what) => ScimError::uniqueness(what),
        StoreError::NotFound => ScimError::not_found("resource not found"),
        StoreError::VersionMismatch => ScimError::precondition_failed("the resource was modified: version mismatch"),
        StoreError::InvalidReference(what) => ScimError::invalid_value(what),
        StoreError::Unsupported(what) => ScimError::bad_request(crate::scim::ScimType::InvalidFilter, what),
        StoreError::Contention(_) => {
            tracing::warn!(error = %e, "write lost lock races on every attempt");
            contention_error()
        }
        StoreError::Db(_) | StoreError::Corrupt(_) => {
            tracing::error!(error = %e, "store failure");
            ScimError::internal()
        }
    }
}

/// What a write that lost a lock race answers; Bulk recognises it and runs
/// the operation again in a new transaction.
pub fn contention_error() -> ScimError {
    ScimError::new(
        503,
        None,
        "the write collided with concurrent writes and was not saved; retry it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value goes in the one column the query builder compares for its
    /// attribute (`store::query`), the column whose index holds it.
    #[test]
    fn index_rows_hold_each_value_once_in_the_column_its_filters_read() {
        let row = |value: IndexedScalar| {
            let row = index_row(resource::IndexValue {
                attr: "a".into(),
                element: Some(2),
                value,
            });
            assert_eq!((row.attr.as_str(), row.element), ("a", 2));
            (row.text, row.folded, row.number)
        };
        let text = |value: &str, case_exact| IndexedScalar::Text {
            value: value.into(),
            case_exact,
        };
        assert_eq!(
            row(text("BJensen@Example.com", false)),
            (None, Some("bjensen@example.com".into()), None)
        );
        assert_eq!(row(text("MIIDQzCC", true)), (Some("MIIDQzCC".into()), None, None));
        assert_eq!(row(IndexedScalar::Bool(false)), (Some("false".into()), None, None));
        assert_eq!(
            row(IndexedScalar::DateTime("2011-05-13T04:42:34.000000Z".into())),
            (Some("2011-05-13T04:42:34.000000Z".into()), None, None)
        );
        assert_eq!(row(IndexedScalar::Number(1.5)), (None, None, Some(1.5)));
    }

    #[test]
    fn stored_text_is_sent_as_the_projected_default_view_byte_for_byte() {
        let reg = SchemaRegistry::builtin();
        let user = json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ],
            "userName": "bjensen@example.com",
            "externalId": "e-1",
            "password": "t1meMa$heen",
            "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "b@home.example"}],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
            "addresses": [{"streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "type": "work"}],
            "active": "True",
            "title": "Tour \"Guide\" \u{e9}",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            }
        });
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Tour Guides", "externalId": "g"});
        for (kind, input) in [(ResourceKind::User, user), (ResourceKind::Group, group)] {
            assert!(resource::stored_is_default_view(reg, kind));
            let written = resource::validate_write(reg, kind, &input, None).expect("valid");
            let text = Value::Object(written.document.clone()).to_string();
            let derived = vec![
                (
                    "groups",
                    json!([{"value": "g", "type": "direct", "display": "Tour \"Guides\""}]),
                ),
                ("meta", json!({"resourceType": kind.name(), "version": "W/\"1\""})),
            ];
            let sent = stored_text_view(kind, "id-1", &text, &derived).expect("renders");
            let projected = resource::project(
                reg,
                kind,
                full_view(kind, "id-1", written.document, derived),
                &Projection::all(),
            );
            let projected = serde_json::to_vec(&projected).expect("serialises");
            assert_eq!(String::from_utf8(sent), String::from_utf8(projected));
        }
    }

    #[test]
    fn a_list_response_holds_the_rendered_resources_and_pages_as_asked() {
        let resources = vec![br#"{"id":"a"}"#.to_vec(), br#"{"id":"b"}"#.to_vec()];
        let by_index: Value =
            serde_json::from_slice(&list_response(7, Paging::Index(3), &resources).expect("list")).expect("JSON");
        assert_eq!(
            by_index,
            json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 7, "startIndex": 3, "itemsPerPage": 2,
                   "Resources": [{"id": "a"}, {"id": "b"}]})
        );
        let by_cursor: Value =
            serde_json::from_slice(&list_response(7, Paging::Cursor(Some("c2".into())), &resources).expect("list"))
                .expect("JSON");
        assert_eq!(by_cursor.get("startIndex"), None);
        assert_eq!(by_cursor["nextCursor"], json!("c2"));
        let last: Value =
            serde_json::from_slice(&list_response(2, Paging::Cursor(None), &[]).expect("list")).expect("JSON");
        assert_eq!(last.get("nextCursor"), None);
        assert_eq!(last["Resources"], json!([]));
    }

    #[test]
    fn if_match_accepts_weak_strong_and_star() {
        assert!(Precondition::parse("W/\"3\"").matches(3));
        assert!(Precondition::parse("\"3\"").matches(3));
        assert!(Precondition::parse("W/\"2\", W/\"3\"").matches(3));
        assert!(!Precondition::parse("W/\"2\"").matches(3));
        assert!(!Precondition::parse("garbage").matches(3));
        assert!(Precondition::parse("*").matches(7));
    }
}
