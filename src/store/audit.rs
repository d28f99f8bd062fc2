//! The append-only audit log: events are inserted in the transaction of the
//! change they record, and nothing updates or deletes them.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select, Statement,
};
use serde_json::Value;

use super::entities::audit_event;
use super::rows_insert::RowsInsert;
use super::{Store, StoreResult};
use crate::auth::key::KeyId;

pub use audit_event::Model as AuditEventRow;

/// Who acts, and from where. Never holds a secret.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub tenant_id: String,
    /// `None` for the command line.
    pub key_id: Option<String>,
    pub service_user_id: Option<String>,
    /// The acting service user's name, or `cli`.
    pub actor_name: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

impl AuditContext {
    /// The command line acting in a tenant.
    pub fn cli(tenant_id: &str) -> Self {
        AuditContext {
            tenant_id: tenant_id.to_string(),
            key_id: None,
            service_user_id: None,
            actor_name: "cli".into(),
            ip: None,
            request_id: None,
        }
    }

    /// Recording into a tenant being created by an actor of another tenant:
    /// the actor's key and service user are not the new tenant's to know, so
    /// the events there name the system, and the creating tenant's own log
    /// holds the full `tenant.created` event.
    pub fn system_in(tenant_id: &str) -> Self {
        AuditContext {
            tenant_id: tenant_id.to_string(),
            key_id: None,
            service_user_id: None,
            actor_name: "system".into(),
            ip: None,
            request_id: None,
        }
    }
}

/// One event to record.
pub struct Event<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: Option<Value>,
}

impl<'a> Event<'a> {
    pub fn success(action: &'a str, target_type: &'a str, target_id: &'a str) -> Self {
        Event {
            action,
            target_type,
            target_id: Some(target_id),
            outcome: "success",
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

pub(crate) async fn record(db: &impl ConnectionTrait, ctx: &AuditContext, event: Event<'_>) -> StoreResult<()> {
    db.execute_raw(record_statement(db.get_database_backend(), ctx, event))
        .await?;
    Ok(())
}

/// The INSERT that records `event`, for writes that send their statements
/// together ([`super::Conn::write_unit`]).
pub(crate) fn record_statement(backend: DbBackend, ctx: &AuditContext, event: Event<'_>) -> Statement {
    record_many_statement(backend, [(ctx, event)])
}

/// One INSERT recording several events (at least one), each with who acted.
/// Without RETURNING or a read-back: nothing needs the rows again, and
/// every SCIM write records one.
pub(crate) fn record_many_statement<'a>(
    backend: DbBackend,
    events: impl IntoIterator<Item = (&'a AuditContext, Event<'a>)>,
) -> Statement {
    let at = super::now();
    let mut insert = RowsInsert::new(
        backend,
        "audit_events",
        [
            "id",
            "tenant_id",
            "at",
            "action",
            "actor_key_id",
            "actor_service_user_id",
            "actor_service_user_name",
            "target_type",
            "target_id",
            "ip",
            "request_id",
            "outcome",
            "detail",
        ],
    );
    for (ctx, event) in events {
        insert.row([
            uuid::Uuid::now_v7().to_string().into(),
            ctx.tenant_id.as_str().into(),
            at.into(),
            event.action.into(),
            ctx.key_id.clone().into(),
            ctx.service_user_id.clone().into(),
            ctx.actor_name.as_str().into(),
            event.target_type.into(),
            event.target_id.map(str::to_string).into(),
            ctx.ip.clone().into(),
            ctx.request_id.clone().into(),
            event.outcome.into(),
            event.detail.map(|d| d.to_string()).into(),
        ]);
    }
    insert.build()
}

/// Filters of `GET /admin/v1/audit-events`.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub action: Option<String>,
    /// A key ID or a service user id.
    pub actor: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Where the page starts: after this event (the previous page's last).
    pub after: Option<EventPosition>,
    pub limit: u64,
}

/// An event's place in the list order, newest first: `(at, id)` descending.
/// Pages start at a position rather than an offset because events arrive
/// all the time, and an offset counted from the newest would repeat events
/// on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPosition {
    pub at: DateTime<Utc>,
    pub id: String,
}

/// A page of events and how many match in all.
#[derive(Debug)]
pub struct EventPage {
    pub total: u64,
    pub events: Vec<AuditEventRow>,
    /// Whether events follow this page.
    pub more: bool,
}

impl Store {
    /// Records one event on its own (for events that change nothing else).
    pub async fn record_event(&self, ctx: &AuditContext, event: Event<'_>) -> StoreResult<()> {
        record(self.writer(), ctx, event).await
    }

    /// A page of a tenant's events, newest first, and how many match.
    pub async fn list_audit_events(&self, tenant_id: &str, q: &AuditQuery) -> StoreResult<EventPage> {
        let total = matching_events(tenant_id, q).count(self.reader()).await?;
        let mut events = events_page(tenant_id, q).all(self.reader()).await?;
        let more = events.len() as u64 > q.limit;
        events.truncate(usize::try_from(q.limit).unwrap_or(usize::MAX));
        Ok(EventPage { total, events, more })
    }

    /// The plan of a page of events (tests; see [`Store::explain_filter`]).
    pub async fn explain_audit_events(&self, tenant_id: &str, q: &AuditQuery) -> StoreResult<Vec<String>> {
        self.explain(events_page(tenant_id, q).build(self.backend())).await
    }
}

/// The events `q`'s filters select, in no order.
fn matching_events(tenant_id: &str, q: &AuditQuery) -> Select<audit_event::Entity> {
    use audit_event::Column as C;
    let mut select = audit_event::Entity::find().filter(C::TenantId.eq(tenant_id));
    if let Some(action) = &q.action {
        select = select.filter(C::Action.eq(action.as_str()));
    }
    if let Some(actor) = &q.actor {
        // A key ID and a service user id never look alike, so one indexed
        // column answers (an OR of both would read and sort every event of
        // either).
        let column = if KeyId::parse(actor).is_some() {
            C::ActorKeyId
        } else {
            C::ActorServiceUserId
        };
        select = select.filter(column.eq(actor.as_str()));
    }
    if let Some(target) = &q.target_id {
        select = select.filter(C::TargetId.eq(target.as_str()));
    }
    if let Some(since) = q.since {
        select = select.filter(C::At.gte(since));
    }
    if let Some(until) = q.until {
        select = select.filter(C::At.lt(until));
    }
    select
}

/// One page of [`matching_events`] in list order, with one event more to
/// tell whether another page follows. Every index on the table ends in
/// `(at, id)` (migration 9), so the page is a walk from its position.
fn events_page(tenant_id: &str, q: &AuditQuery) -> Select<audit_event::Entity> {
    use audit_event::Column as C;
    let mut select = matching_events(tenant_id, q);
    if let Some(after) = &q.after {
        select = select.filter(
            Expr::tuple([Expr::col(C::At), Expr::col(C::Id)])
                .lt(Expr::tuple([Expr::value(after.at), Expr::value(after.id.clone())])),
        );
    }
    select
        .order_by_desc(C::At)
        .order_by_desc(C::Id)
        .limit(q.limit.saturating_add(1))
}
