//! SCIM Bulk (RFC 7644 §3.7): parses a BulkRequest, orders its operations so
//! that every `bulkId` a path or data refers to is created first, runs each
//! operation through [`Provisioning`] (so it is validated and audited like a
//! single request) after its own authorization check, and builds the
//! BulkResponse.
//!
//! Each operation is its own unit of work: a failure does not undo the
//! operations before it. Circular references through Group `members` are
//! resolved as RFC 7644 §3.7.1 shows (the group is created without the
//! member, which is added once it exists); any other cycle fails with 409.
//!
//! Operations run in batches: one database transaction holds up to
//! [`BATCH_OPERATIONS`] operations (or [`BATCH_TIME`] of work), each inside
//! its own savepoint, so a thousand creates cost a handful of commits rather
//! than a thousand. Nothing is answered before its batch commits; if a
//! commit fails, the operations of that batch are answered 503.
//!
//! Consecutive user POSTs that refer to no bulkId (an IdP's first sync) go
//! further: up to [`RUN_CREATES`] of them are validated, then written as one
//! unit of multi-row INSERTs, one call to the database for all of them. If
//! the database refuses the unit (a taken userName), it is undone and they
//! run one by one like any other operation, so each still gets its own
//! answer, in request order for failOnErrors. While the database writes one
//! run, the next run's users are validated ([`Job::prepare_ahead`]).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::provisioning::{Precondition, Provisioning, Scope, contention_error};
use crate::scim::json::{check_message_schemas, get_ci, get_ci_mut};
use crate::scim::patch::PATCH_OP_SCHEMA;
use crate::scim::resource::Projection;
use crate::scim::{ResourceKind, ScimError, ScimResult};
use crate::store::contention_backoff;
use crate::store::resources::ResourceWrite;

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// The most operations one request may hold (advertised as `maxOperations`).
pub const MAX_OPERATIONS: usize = 1000;
/// The most operations one transaction holds (fewer where the store says
/// so: PostgreSQL's savepoints, see `Store::batch_units_limit`).
const BATCH_OPERATIONS: usize = 200;
/// How long one transaction may run before it is committed: it holds row
/// locks (and, on SQLite, the only write connection) while open.
const BATCH_TIME: Duration = Duration::from_millis(25);

/// The most user creates sent to the database together (see
/// [`Job::flush_run`]): their rows, values and audit events stay within one
/// multi-row INSERT each (`INSERT_CHUNK` value rows).
const RUN_CREATES: usize = 50;

const BULK_ID_PREFIX: &str = "bulkId:";

/// The HTTP method of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn parse(name: &str) -> Option<Method> {
        [Method::Post, Method::Put, Method::Patch, Method::Delete]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name.trim()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// The 413 of a body larger than `maxPayloadSize` (RFC 7644 §3.7.4).
pub fn payload_too_large(limit: usize) -> ScimError {
    ScimError::new(
        413,
        None,
        format!("The size of the bulk operation exceeds the maxPayloadSize ({limit})."),
    )
}

/// Runs a BulkRequest and returns the BulkResponse body. `authorize` decides
/// whether the caller may run an operation of a method on a resource type;
/// its error becomes that operation's result. Errors of the request as a
/// whole (a broken envelope, too many operations) are returned as `Err`.
pub async fn process(
    provisioning: &Provisioning,
    scope: &Scope<'_>,
    input: Value,
    authorize: &dyn Fn(ResourceKind, Method) -> ScimResult<()>,
) -> ScimResult<Value> {
    let request = parse_request(input)?;
    let plan = plan(&request.entries, &request.definitions);
    let mut job = Job {
        provisioning,
        batch: None,
        scope,
        authorize,
        definitions: &request.definitions,
        circular: &plan.circular,
        resolved: HashMap::new(),
        pending: Vec::new(),
        run: Vec::new(),
        prepared: HashMap::new(),
        results: Vec::with_capacity(request.entries.len()),
        errors: 0,
        fail_on_errors: request.fail_on_errors,
        lean: [
            lean_projection(provisioning, ResourceKind::User),
            lean_projection(provisioning, ResourceKind::Group),
        ],
    };
    let entries = &request.entries;
    for (position, &index) in plan.order.iter().enumerate() {
        if job.stopped() {
            break;
        }
        let entry = &entries[index];
        let mut refused = None;
        if let Some(op) = job.run_candidate(index, entries) {
            let prepared = match job.prepared.remove(&index) {
                Some(prepared) => prepared,
                None => job.prepare_user(op).await,
            };
            match prepared {
                Ok(write) => {
                    job.queue(index, write, entries, &plan.order[position + 1..]).await;
                    continue;
                }
                Err(e) => refused = Some(e),
            }
        }
        // Whatever runs next runs after the creates queued before it.
        job.flush_run(entries, &[]).await;
        if job.stopped() {
            break;
        }
        let outcome = match (&entry.operation, plan.circular[index], refused) {
            (Err(e), _, _) => Outcome::failed(e.clone(), None),
            (Ok(op), true, _) => Outcome::failed(
                ScimError::new(
                    409,
                    None,
                    "circular bulkId reference: this operation and the ones it refers to wait for each other",
                ),
                op.literal_location(scope),
            ),
            (Ok(_), false, Some(e)) => Outcome::failed(e, None),
            (Ok(op), false, None) => job.run(op, entries).await,
        };
        job.settle(index, outcome, entries);
        job.after_settling(entries).await;
    }
    job.flush_run(entries, &[]).await;
    job.commit_batch(entries).await;
    job.abandon_deferred(entries);
    tracing::info!(
        operations = request.entries.len(),
        answered = job.results.len(),
        errors = job.errors,
        "bulk request processed"
    );
    // Answers follow the request's order, whatever order the operations ran in.
    job.results.sort_by_key(|(index, _)| *index);
    let results: Vec<Value> = job.results.into_iter().map(|(_, result)| result).collect();
    Ok(json!({ "schemas": [BULK_RESPONSE_SCHEMA], "Operations": results }))
}

/// A parsed BulkRequest. `definitions` maps each `bulkId` to the POST that
/// defines it (the first one; later ones carrying it fail).
struct BulkRequest {
    fail_on_errors: Option<usize>,
    entries: Vec<Entry>,
    definitions: HashMap<String, usize>,
}

/// One operation as received: what is echoed, and the operation or why it
/// cannot run.
struct Entry {
    /// The method as sent, echoed in the answer (canonical case when known).
    method: Option<String>,
    bulk_id: Option<String>,
    operation: ScimResult<Operation>,
}

struct Operation {
    method: Method,
    kind: ResourceKind,
    /// The resource of PUT, PATCH and DELETE.
    target: Option<Target>,
    version: Option<Precondition>,
    data: Option<Value>,
    /// The bulkIds this operation refers to, each once.
    references: Vec<Reference>,
}

impl Operation {
    /// The location of a target named by its id, known without running anything.
    fn literal_location(&self, scope: &Scope<'_>) -> Option<String> {
        match &self.target {
            Some(Target::Id(id)) => Some(location(scope, self.kind, id)),
            _ => None,
        }
    }
}

enum Target {
    Id(String),
    BulkId(String),
}

struct Reference {
    bulk_id: String,
    /// Only as `members[].value` of a Group POST: such a member can be added
    /// after the group exists, which is how circular references are resolved.
    member_only: bool,
}

fn location(scope: &Scope<'_>, kind: ResourceKind, id: &str) -> String {
    format!("{}/{}/{id}", scope.base_url, kind.endpoint())
}

fn bulk_id_reference(value: &str) -> Option<&str> {
    value.strip_prefix(BULK_ID_PREFIX).filter(|id| !id.is_empty())
}

/// Takes the operations' data out of `input` rather than copying it: a
/// request of 1,000 users is megabytes of JSON values.
fn parse_request(input: Value) -> ScimResult<BulkRequest> {
    let Value::Object(mut body) = input else {
        return Err(ScimError::invalid_syntax("a BulkRequest must be a JSON object"));
    };
    check_message_schemas(&body, BULK_REQUEST_SCHEMA)?;
    let operations = match get_ci_mut(&mut body, "Operations") {
        Some(Value::Array(ops)) => std::mem::take(ops),
        Some(_) => return Err(ScimError::invalid_syntax("'Operations' must be an array of operations")),
        None => return Err(ScimError::invalid_syntax("'Operations' is required")),
    };
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::new(
            413,
            None,
            format!(
                "The number of operations ({}) exceeds the maxOperations ({MAX_OPERATIONS}).",
                operations.len()
            ),
        ));
    }
    let fail_on_errors = match get_ci(&body, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|n| *n >= 1)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| ScimError::invalid_value("failOnErrors must be a positive integer"))?,
        ),
    };
    let mut entries: Vec<Entry> = operations.into_iter().map(parse_entry).collect();
    let mut definitions = HashMap::new();
    for (index, entry) in entries.iter_mut().enumerate() {
        let Ok(Operation {
            method: Method::Post, ..
        }) = &entry.operation
        else {
            continue;
        };
        let Some(bulk_id) = &entry.bulk_id else { continue };
        if definitions.contains_key(bulk_id) {
            entry.operation = Err(ScimError::invalid_value(format!(
                "bulkId \"{bulk_id}\" is already used by an earlier operation; bulkIds must be unique"
            )));
        } else {
            definitions.insert(bulk_id.clone(), index);
        }
    }
    Ok(BulkRequest {
        fail_on_errors,
        entries,
        definitions,
    })
}

fn parse_entry(input: Value) -> Entry {
    let Value::Object(mut op) = input else {
        return Entry {
            method: None,
            bulk_id: None,
            operation: Err(ScimError::invalid_syntax("an operation must be a JSON object")),
        };
    };
    let sent_method = get_ci(&op, "method").and_then(Value::as_str).map(str::to_string);
    let method = sent_method.as_deref().and_then(Method::parse);
    let bulk_id = match get_ci(&op, "bulkId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(b)) if !b.trim().is_empty() => Ok(Some(b.clone())),
        Some(_) => Err(ScimError::invalid_value("bulkId must be a non-empty string")),
    };
    let operation = bulk_id
        .clone()
        .and_then(|_| parse_operation(&mut op, method, sent_method.as_deref()));
    Entry {
        method: method.map(|m| m.as_str().to_string()).or(sent_method),
        bulk_id: bulk_id.unwrap_or_default(),
        operation,
    }
}

fn parse_operation(op: &mut Map<String, Value>, method: Option<Method>, sent: Option<&str>) -> ScimResult<Operation> {
    let method = match (method, sent) {
        (Some(m), _) => m,
        (None, Some(name)) => {
            return Err(ScimError::invalid_syntax(format!(
                "method \"{name}\" is not one of POST, PUT, PATCH, DELETE"
            )));
        }
        (None, None) => {
            return Err(ScimError::invalid_syntax(
                "method is required: POST, PUT, PATCH or DELETE",
            ));
        }
    };
    let path = get_ci(op, "path")
        .and_then(Value::as_str)
        .ok_or_else(|| ScimError::invalid_syntax("path is required, e.g. \"/Users\" or \"/Groups/{id}\""))?;
    let (kind, target) = parse_path(path)?;
    match (method, &target) {
        (Method::Post, Some(_)) => {
            return Err(ScimError::invalid_syntax(format!(
                "a POST operation's path is a resource type endpoint (\"/Users\" or \"/Groups\"), not \"{path}\""
            )));
        }
        (Method::Put | Method::Patch | Method::Delete, None) => {
            return Err(ScimError::invalid_syntax(format!(
                "a {} operation's path names one resource, e.g. \"/{}/{{id}}\"",
                method.as_str(),
                kind.endpoint()
            )));
        }
        _ => {}
    }
    let version = match get_ci(op, "version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) if method != Method::Post => Some(Precondition::parse(v)),
        Some(Value::String(_)) => None,
        Some(_) => return Err(ScimError::invalid_value("version must be a string (an ETag)")),
    };
    let data = match (method, get_ci_mut(op, "data")) {
        (Method::Delete, _) => None,
        (_, None | Some(Value::Null)) => {
            return Err(ScimError::invalid_syntax(format!(
                "data is required for a {} operation",
                method.as_str()
            )));
        }
        (_, Some(data)) => Some(std::mem::take(data)),
    };
    let references = references_of(
        target.as_ref(),
        data.as_ref(),
        method == Method::Post && kind == ResourceKind::Group,
    );
    Ok(Operation {
        method,
        kind,
        target,
        version,
        data,
        references,
    })
}

/// `/Users`, `/Groups`, or either followed by `/{id}` or `/bulkId:{bulkId}`.
fn parse_path(path: &str) -> ScimResult<(ResourceKind, Option<Target>)> {
    let invalid = || {
        ScimError::invalid_syntax(format!(
            "path \"{path}\" is not /Users, /Groups, /Users/{{id}} or /Groups/{{id}}"
        ))
    };
    let trimmed = path.trim();
    let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let mut segments = trimmed.split('/');
    let endpoint = segments.next().unwrap_or_default();
    let kind = [ResourceKind::User, ResourceKind::Group]
        .into_iter()
        .find(|k| k.endpoint().eq_ignore_ascii_case(endpoint))
        .ok_or_else(invalid)?;
    let target = match (segments.next(), segments.next()) {
        (None, _) => None,
        (Some(id), None) if !id.is_empty() => Some(match id.strip_prefix(BULK_ID_PREFIX) {
            Some(b) if !b.is_empty() => Target::BulkId(b.to_string()),
            Some(_) => return Err(invalid()),
            None => Target::Id(id.to_string()),
        }),
        _ => return Err(invalid()),
    };
    Ok((kind, target))
}

/// The bulkIds an operation refers to, each once, in the order first seen:
/// in its path, and as any string value `bulkId:<id>` of its data. In a Group
/// POST, a bulkId found only inside the `members` that refer to it is
/// member-only. Linear in the size of the data.
fn references_of<'a>(target: Option<&'a Target>, data: Option<&'a Value>, group_post: bool) -> Vec<Reference> {
    let mut order: Vec<(&str, usize)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut note = |bulk_id: &'a str| {
        let at = *index.entry(bulk_id).or_insert_with(|| {
            order.push((bulk_id, 0));
            order.len() - 1
        });
        order[at].1 += 1;
    };
    if let Some(Target::BulkId(b)) = target {
        note(b);
    }
    let data = data.unwrap_or(&Value::Null);
    walk_references(data, &mut note);
    let mut as_member: HashMap<&str, usize> = HashMap::new();
    if group_post {
        for member in group_members(data) {
            if let Some(b) = member_reference(member) {
                // Everything inside such a member moves with it when it waits.
                walk_references(member, &mut |found| {
                    if found == b {
                        *as_member.entry(b).or_default() += 1;
                    }
                });
            }
        }
    }
    order
        .into_iter()
        .map(|(bulk_id, count)| Reference {
            bulk_id: bulk_id.to_string(),
            member_only: as_member.get(bulk_id) == Some(&count),
        })
        .collect()
}

/// Calls `found` with the bulkId of every string value `bulkId:<id>`.
fn walk_references<'v>(value: &'v Value, found: &mut impl FnMut(&'v str)) {
    match value {
        Value::String(s) => {
            if let Some(b) = bulk_id_reference(s) {
                found(b);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk_references(v, found)),
        Value::Object(map) => map.values().for_each(|v| walk_references(v, found)),
        _ => {}
    }
}

fn group_members(data: &Value) -> impl Iterator<Item = &Value> {
    data.as_object()
        .and_then(|d| get_ci(d, "members"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The bulkId a member's `value` refers to.
fn member_reference(member: &Value) -> Option<&str> {
    member
        .as_object()
        .and_then(|m| get_ci(m, "value"))
        .and_then(Value::as_str)
        .and_then(bulk_id_reference)
}

/// The processing order and the operations caught in a cycle that cannot be
/// broken.
struct Plan {
    order: Vec<usize>,
    circular: Vec<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    Open,
    Done,
}

/// Orders the operations as sent, except that a POST runs before the first
/// operation referring to its bulkId (a depth-first post-order, without
/// recursion). A reference back to an operation still waiting closes a
/// cycle: when it is a Group member, it is left for later (the member is
/// added once it exists); otherwise every operation of the cycle fails.
fn plan(entries: &[Entry], definitions: &HashMap<String, usize>) -> Plan {
    let edges: Vec<Vec<(usize, bool)>> = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| match &entry.operation {
            Ok(op) => op
                .references
                .iter()
                .filter_map(|r| {
                    let dependency = *definitions.get(&r.bulk_id)?;
                    // A group cannot be its own member: a self-reference is a cycle.
                    Some((dependency, r.member_only && dependency != index))
                })
                .collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    let mut visit = vec![Visit::New; entries.len()];
    let mut circular = vec![false; entries.len()];
    let mut order = Vec::with_capacity(entries.len());
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut stack_position = vec![0; entries.len()];
    for start in 0..entries.len() {
        if visit[start] != Visit::New {
            continue;
        }
        visit[start] = Visit::Open;
        stack_position[start] = 0;
        stack.push((start, 0));
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            match edges[node].get(next) {
                Some(&(dependency, member_only)) => {
                    top.1 += 1;
                    match visit[dependency] {
                        Visit::New => {
                            visit[dependency] = Visit::Open;
                            stack_position[dependency] = stack.len();
                            stack.push((dependency, 0));
                        }
                        Visit::Open if !member_only => {
                            for (n, _) in &stack[stack_position[dependency]..] {
                                circular[*n] = true;
                            }
                        }
                        Visit::Open | Visit::Done => {}
                    }
                }
                None => {
                    stack.pop();
                    visit[node] = Visit::Done;
                    order.push(node);
                }
            }
        }
    }
    Plan { order, circular }
}

/// What became of one operation.
#[derive(Default)]
struct Outcome {
    status: u16,
    location: Option<String>,
    version: Option<String>,
    error: Option<ScimError>,
    /// The id a POST created, for the operations referring to its bulkId.
    created_id: Option<String>,
    /// A group created without some members, answered once they are added.
    deferred: Option<Pending>,
}

impl Outcome {
    fn failed(error: ScimError, location: Option<String>) -> Self {
        Outcome {
            status: error.status,
            location,
            error: Some(error),
            ..Outcome::default()
        }
    }

    fn succeeded(status: u16, location: String, version: Option<String>) -> Self {
        Outcome {
            status,
            location: Some(location),
            version,
            ..Outcome::default()
        }
    }
}

/// A Group POST whose members named bulkIds not created yet (a cycle).
#[derive(Default)]
struct Pending {
    index: usize,
    id: String,
    location: String,
    version: String,
    /// (bulkId, the member as sent).
    members: Vec<(String, Value)>,
}

/// The open transaction and what its commit decides.
struct Batch {
    /// Provisioning whose store runs in the batch's transaction.
    provisioning: Provisioning,
    started: Instant,
    operations: usize,
    /// Write units (savepoints) run: one per operation, one per run of
    /// users created together.
    units: usize,
    /// Positions in `Job::results` of the answers given in this batch.
    answered: Vec<usize>,
    /// (bulkId, id) of the resources POSTed in this batch.
    created: Vec<(String, String)>,
}

impl Batch {
    fn is_full(&self) -> bool {
        self.operations >= BATCH_OPERATIONS
            || self.provisioning.batch_limit().is_some_and(|limit| self.units >= limit)
            || self.started.elapsed() >= BATCH_TIME
    }
}

struct Job<'a> {
    /// Provisioning on the connection pools; batches are opened from it.
    provisioning: &'a Provisioning,
    batch: Option<Batch>,
    scope: &'a Scope<'a>,
    authorize: &'a dyn Fn(ResourceKind, Method) -> ScimResult<()>,
    definitions: &'a HashMap<String, usize>,
    /// Per operation: whether it is in a cycle of references (never run).
    circular: &'a [bool],
    /// bulkId → the id it created, or `None` when its POST failed.
    resolved: HashMap<String, Option<String>>,
    pending: Vec<Pending>,
    /// Users validated and waiting to be created together (position in the
    /// request, what to write): see [`Job::flush_run`].
    run: Vec<(usize, ResourceWrite)>,
    /// User creates validated ahead, by position in the request, while the
    /// run before them was written: see [`Job::prepare_ahead`].
    prepared: HashMap<usize, ScimResult<ResourceWrite>>,
    /// (position in the request, answer).
    results: Vec<(usize, Value)>,
    errors: usize,
    fail_on_errors: Option<usize>,
    /// Projections that skip derived collections: the answer holds no
    /// resource body, so loading members or groups would be wasted work.
    lean: [Projection; 2],
}

fn lean_projection(provisioning: &Provisioning, kind: ResourceKind) -> Projection {
    let derived = match kind {
        ResourceKind::User => "groups",
        ResourceKind::Group => "members",
    };
    Projection::parse(provisioning.registry(), kind, None, Some(derived)).unwrap_or_default()
}

/// Why a reference cannot be replaced by an id now.
enum Unresolved {
    /// Its POST has not run yet.
    Waiting,
    Failed(ScimError),
}

impl Job<'_> {
    fn stopped(&self) -> bool {
        self.fail_on_errors.is_some_and(|limit| self.errors >= limit)
    }

    /// Makes sure a batch is open and counts the operations about to run in
    /// it as one write unit.
    async fn open_batch(&mut self, operations: usize) -> ScimResult<()> {
        if self.batch.is_none() {
            self.batch = Some(Batch {
                provisioning: self.provisioning.batch().await?,
                started: Instant::now(),
                operations: 0,
                units: 0,
                answered: Vec::new(),
                created: Vec::new(),
            });
        }
        if let Some(batch) = self.batch.as_mut() {
            batch.operations += operations;
            batch.units += 1;
        }
        Ok(())
    }

    /// Whether `op` may wait in the run of users created together: a user
    /// POST that refers to no bulkId (nothing it needs is pending) while no
    /// group waits for members (their additions run as soon as the members
    /// exist, and their errors count toward failOnErrors in request order).
    fn may_join_run(&self, op: &Operation) -> bool {
        op.method == Method::Post
            && op.kind == ResourceKind::User
            && op.references.is_empty()
            && self.pending.is_empty()
    }

    /// The operation at `index` if it may wait in the run of users created
    /// together: parsed, in no cycle of references, and joinable now.
    fn run_candidate<'e>(&self, index: usize, entries: &'e [Entry]) -> Option<&'e Operation> {
        match &entries[index].operation {
            Ok(op) if !self.circular[index] && self.may_join_run(op) => Some(op),
            _ => None,
        }
    }

    /// What [`Job::execute`] checks of a user POST before writing: the
    /// caller's scope and the user's data.
    async fn prepare_user(&self, op: &Operation) -> ScimResult<ResourceWrite> {
        (self.authorize)(op.kind, op.method)?;
        self.provisioning
            .prepare_user(op.data.as_ref().unwrap_or(&Value::Null))
            .await
    }

    /// Adds a validated user to the run; a full run is written, while the
    /// users among `upcoming` (the operations after it, in the order they
    /// run) that would join the next run are validated.
    async fn queue(&mut self, index: usize, write: ResourceWrite, entries: &[Entry], upcoming: &[usize]) {
        self.run.push((index, write));
        if self.run.len() >= RUN_CREATES {
            self.flush_run(entries, upcoming).await;
        }
    }

    /// Validates the user creates that come next in `upcoming`, up to a
    /// run's worth and stopping at the first operation that could not join
    /// a run. Validation reads nothing from the database, so it may run
    /// while the run before is being written: a Bulk request is handled by
    /// one task, and the database works on its own thread (SQLite) or
    /// server, so the two overlap instead of taking turns. What an
    /// operation's turn then finds here, it uses instead of validating.
    async fn prepare_ahead(&self, upcoming: &[usize], entries: &[Entry]) -> Vec<(usize, ScimResult<ResourceWrite>)> {
        let mut prepared = Vec::new();
        for &index in upcoming.iter().take(RUN_CREATES) {
            let Some(op) = self.run_candidate(index, entries) else {
                break;
            };
            prepared.push((index, self.prepare_user(op).await));
        }
        prepared
    }

    /// Creates the queued users as one write unit in the open batch: one
    /// call to the database instead of one each, which is most of a
    /// create's cost in a Bulk (a hand-off to SQLite's thread, or three
    /// round trips to PostgreSQL). If any is refused (a taken userName), the
    /// unit is undone and they run one by one as any operation does, so
    /// each gets its own answer.
    ///
    /// Meanwhile the users of `upcoming` that come next are validated
    /// ([`Job::prepare_ahead`]).
    async fn flush_run(&mut self, entries: &[Entry], upcoming: &[usize]) {
        if self.run.is_empty() {
            return;
        }
        let (indexes, writes): (Vec<usize>, Vec<ResourceWrite>) = std::mem::take(&mut self.run).into_iter().unzip();
        let count = writes.len();
        let together = match self.open_batch(count).await {
            Ok(()) => {
                let (together, prepared) = futures_util::future::join(
                    self.runner().create_users_together(self.scope, writes),
                    self.prepare_ahead(upcoming, entries),
                )
                .await;
                self.prepared.extend(prepared);
                together
            }
            Err(e) => Err(e),
        };
        match together {
            Ok(created) => {
                for (index, (id, etag)) in indexes.into_iter().zip(created) {
                    let mut outcome =
                        Outcome::succeeded(201, location(self.scope, ResourceKind::User, &id), Some(etag));
                    outcome.created_id = Some(id);
                    self.settle(index, outcome, entries);
                }
                self.after_settling(entries).await;
            }
            Err(e) => {
                tracing::debug!(error = %e.detail, creates = count, "users created together were refused; creating them one by one");
                if let Some(batch) = self.batch.as_mut() {
                    batch.operations -= count;
                    batch.units -= 1;
                }
                for index in indexes {
                    if self.stopped() {
                        break;
                    }
                    let Ok(op) = &entries[index].operation else { continue };
                    let outcome = self.run(op, entries).await;
                    self.settle(index, outcome, entries);
                    self.after_settling(entries).await;
                }
            }
        }
    }

    /// Records what became of an operation: the id its bulkId stands for,
    /// and its answer (a group still waiting for members is answered later).
    fn settle(&mut self, index: usize, mut outcome: Outcome, entries: &[Entry]) {
        let entry = &entries[index];
        if let Some(bulk_id) = &entry.bulk_id
            && self.definitions.get(bulk_id) == Some(&index)
        {
            self.resolved.insert(bulk_id.clone(), outcome.created_id.clone());
            if let (Some(batch), Some(id)) = (self.batch.as_mut(), &outcome.created_id) {
                batch.created.push((bulk_id.clone(), id.clone()));
            }
        }
        match outcome.deferred.take() {
            Some(pending) => self.pending.push(Pending { index, ..pending }),
            None => self.answer(index, entry, outcome),
        }
    }

    /// After operations settled: adds the members groups were waiting for,
    /// and commits the batch if it is full.
    async fn after_settling(&mut self, entries: &[Entry]) {
        self.complete_deferred(entries).await;
        if self.batch.as_ref().is_some_and(Batch::is_full) {
            self.commit_batch(entries).await;
        }
    }

    /// Runs one operation in the open batch (opening one if need be). On
    /// PostgreSQL an operation can be the victim of a deadlock with another
    /// transaction that waits for locks this batch holds; running it again
    /// in the same batch would deadlock again, so the batch is committed
    /// first and the operation runs again in a new one, a few times.
    async fn run(&mut self, op: &Operation, entries: &[Entry]) -> Outcome {
        const ATTEMPTS: u32 = 5;
        let mut attempt = 1;
        loop {
            let outcome = match self.open_batch(1).await {
                Ok(()) => self.execute(op).await,
                Err(e) => Outcome::failed(e, op.literal_location(self.scope)),
            };
            if attempt == ATTEMPTS || outcome.error != Some(contention_error()) {
                return outcome;
            }
            self.commit_batch(entries).await;
            tokio::time::sleep(contention_backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// The provisioning operations run through: the open batch's.
    fn runner(&self) -> &Provisioning {
        self.batch.as_ref().map_or(self.provisioning, |b| &b.provisioning)
    }

    /// Commits the open batch. If the commit fails, nothing of the batch was
    /// saved: its successes become 503, its bulkIds resolve to nothing, and
    /// groups it created that still wait for members are answered too.
    async fn commit_batch(&mut self, entries: &[Entry]) {
        let Some(batch) = self.batch.take() else { return };
        let Err(e) = batch.provisioning.commit_batch().await else {
            return;
        };
        tracing::error!(error = %e.detail, operations = batch.operations, "bulk batch commit failed");
        let lost = || {
            ScimError::new(
                503,
                None,
                "the operation was not saved: the transaction it ran in could not be committed; retry it",
            )
        };
        for position in batch.answered {
            let (_, result) = &mut self.results[position];
            // A failed operation changed nothing: its own error stands.
            if result.get("response").is_some() {
                continue;
            }
            self.errors += 1;
            if let Value::Object(result) = result {
                result.remove("version");
                result.insert("status".into(), json!("503"));
                result.insert("response".into(), lost().to_body());
            }
        }
        let created: HashSet<String> = batch
            .created
            .into_iter()
            .map(|(bulk_id, id)| {
                self.resolved.insert(bulk_id, None);
                id
            })
            .collect();
        let (lost_groups, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| created.contains(&p.id));
        self.pending = waiting;
        for pending in lost_groups {
            self.answer(pending.index, &entries[pending.index], Outcome::failed(lost(), None));
        }
    }

    fn projection(&self, kind: ResourceKind) -> &Projection {
        match kind {
            ResourceKind::User => &self.lean[0],
            ResourceKind::Group => &self.lean[1],
        }
    }

    fn lookup(&self, bulk_id: &str) -> Result<String, Unresolved> {
        match self.resolved.get(bulk_id) {
            Some(Some(id)) => Ok(id.clone()),
            Some(None) => Err(Unresolved::Failed(ScimError::new(
                409,
                None,
                format!("bulkId \"{bulk_id}\" cannot be resolved: the operation that was to create it failed"),
            ))),
            None if self.definitions.contains_key(bulk_id) => Err(Unresolved::Waiting),
            None => Err(Unresolved::Failed(ScimError::new(
                409,
                None,
                format!("bulkId \"{bulk_id}\" cannot be resolved: no POST operation of this request defines it"),
            ))),
        }
    }

    fn resolve(&self, bulk_id: &str) -> ScimResult<String> {
        self.lookup(bulk_id).map_err(|unresolved| match unresolved {
            Unresolved::Failed(e) => e,
            Unresolved::Waiting => ScimError::new(
                409,
                None,
                format!("circular bulkId reference: bulkId \"{bulk_id}\" is not created yet"),
            ),
        })
    }

    /// Replaces every `bulkId:<id>` string of `value` with the id created.
    fn substitute(&self, value: &mut Value) -> ScimResult<()> {
        match value {
            Value::String(s) => {
                if let Some(b) = bulk_id_reference(s) {
                    *s = self.resolve(b)?;
                }
                Ok(())
            }
            Value::Array(items) => items.iter_mut().try_for_each(|v| self.substitute(v)),
            Value::Object(map) => map.values_mut().try_for_each(|v| self.substitute(v)),
            _ => Ok(()),
        }
    }

    /// Takes out of a Group POST's data the members whose bulkId is not
    /// created yet; they are added after the group exists.
    fn take_waiting_members(&self, data: &mut Value) -> Vec<(String, Value)> {
        let Some(members) = data
            .as_object_mut()
            .and_then(|d| get_ci_mut(d, "members"))
            .and_then(Value::as_array_mut)
        else {
            return Vec::new();
        };
        let mut waiting = Vec::new();
        members.retain(|member| match member_reference(member) {
            Some(b) if matches!(self.lookup(b), Err(Unresolved::Waiting)) => {
                waiting.push((b.to_string(), member.clone()));
                false
            }
            _ => true,
        });
        waiting
    }

    async fn execute(&self, op: &Operation) -> Outcome {
        let literal_location = op.literal_location(self.scope);
        if let Err(e) = (self.authorize)(op.kind, op.method) {
            return Outcome::failed(e, literal_location);
        }
        let id = match &op.target {
            None => None,
            Some(Target::Id(id)) => Some(id.clone()),
            Some(Target::BulkId(b)) => match self.resolve(b) {
                Ok(id) => Some(id),
                Err(e) => return Outcome::failed(e, None),
            },
        };
        let target_location = id.as_deref().map(|id| location(self.scope, op.kind, id));
        let mut data = op.data.clone();
        let mut waiting = Vec::new();
        if let Some(data) = data.as_mut() {
            if op.method == Method::Post && op.kind == ResourceKind::Group {
                waiting = self.take_waiting_members(data);
            }
            if let Err(e) = self.substitute(data) {
                return Outcome::failed(e, target_location);
            }
        }
        let data = data.unwrap_or(Value::Null);
        let (provisioning, scope, projection) = (self.runner(), self.scope, self.projection(op.kind));
        let if_match = op.version.as_ref();
        match (op.method, id) {
            (Method::Post, _) => match provisioning.create(scope, op.kind, &data, projection).await {
                Ok(created) => {
                    let mut outcome = Outcome::succeeded(201, created.location.clone(), Some(created.etag.clone()));
                    outcome.created_id = Some(created.id.clone());
                    if !waiting.is_empty() {
                        outcome.deferred = Some(Pending {
                            index: 0,
                            id: created.id,
                            location: created.location,
                            version: created.etag,
                            members: waiting,
                        });
                    }
                    outcome
                }
                Err(e) => Outcome::failed(e, None),
            },
            (Method::Put, Some(id)) => match provisioning
                .replace(scope, op.kind, &id, &data, if_match, projection)
                .await
            {
                Ok(r) => Outcome::succeeded(200, r.location, Some(r.etag)),
                Err(e) => Outcome::failed(e, target_location),
            },
            (Method::Patch, Some(id)) => match provisioning
                .patch(scope, op.kind, &id, &data, if_match, projection)
                .await
            {
                Ok(r) => Outcome::succeeded(200, r.location, Some(r.etag)),
                Err(e) => Outcome::failed(e, target_location),
            },
            (Method::Delete, Some(id)) => match provisioning.delete(scope, op.kind, &id, if_match).await {
                Ok(()) => Outcome::succeeded(204, location(scope, op.kind, &id), None),
                Err(e) => Outcome::failed(e, target_location),
            },
            (_, None) => Outcome::failed(ScimError::internal(), None),
        }
    }

    /// Records the answer of an operation, counting it against failOnErrors.
    fn answer(&mut self, index: usize, entry: &Entry, outcome: Outcome) {
        let mut result = Map::new();
        if let Some(method) = &entry.method {
            result.insert("method".into(), json!(method));
        }
        if let Some(bulk_id) = &entry.bulk_id {
            result.insert("bulkId".into(), json!(bulk_id));
        }
        if let Some(version) = outcome.version.filter(|_| outcome.error.is_none()) {
            result.insert("version".into(), json!(version));
        }
        if let Some(location) = outcome.location {
            result.insert("location".into(), json!(location));
        }
        result.insert("status".into(), json!(outcome.status.to_string()));
        if let Some(error) = outcome.error {
            self.errors += 1;
            result.insert("response".into(), error.to_body());
        }
        if let Some(batch) = self.batch.as_mut() {
            batch.answered.push(self.results.len());
        }
        self.results.push((index, Value::Object(result)));
    }

    /// Adds the members of waiting groups whose bulkIds are all settled now,
    /// and answers those groups.
    async fn complete_deferred(&mut self, entries: &[Entry]) {
        while !self.stopped() {
            let Some(position) = self
                .pending
                .iter()
                .position(|p| p.members.iter().all(|(b, _)| self.resolved.contains_key(b)))
            else {
                return;
            };
            let pending = self.pending.remove(position);
            let outcome = self.add_members(&pending).await;
            self.answer(pending.index, &entries[pending.index], outcome);
        }
    }

    async fn add_members(&self, pending: &Pending) -> Outcome {
        let mut members = Vec::new();
        let mut failed = Vec::new();
        for (bulk_id, member) in &pending.members {
            let mut member = member.clone();
            match self.substitute(&mut member) {
                Ok(()) => members.push(member),
                Err(_) => failed.push(format!("bulkId:{bulk_id}")),
            }
        }
        let mut version = pending.version.clone();
        if !members.is_empty() {
            let body = json!({
                "schemas": [PATCH_OP_SCHEMA],
                "Operations": [{ "op": "add", "path": "members", "value": members }],
            });
            let projection = self.projection(ResourceKind::Group);
            match self
                .runner()
                .patch(self.scope, ResourceKind::Group, &pending.id, &body, None, projection)
                .await
            {
                Ok(patched) => version = patched.etag,
                Err(e) => return Outcome::failed(e, Some(pending.location.clone())),
            }
        }
        if failed.is_empty() {
            Outcome::succeeded(201, pending.location.clone(), Some(version))
        } else {
            Outcome::failed(
                ScimError::new(
                    409,
                    None,
                    format!(
                        "the group was created, but its members {} could not be added: the operations that were to create them failed",
                        failed.join(", ")
                    ),
                ),
                Some(pending.location.clone()),
            )
        }
    }

    /// Groups still waiting when processing stopped (failOnErrors) exist
    /// without some members: say so rather than leave them unanswered.
    fn abandon_deferred(&mut self, entries: &[Entry]) {
        for pending in std::mem::take(&mut self.pending) {
            let missing: Vec<String> = pending.members.iter().map(|(b, _)| format!("bulkId:{b}")).collect();
            let error = ScimError::new(
                409,
                None,
                format!(
                    "the group was created, but processing stopped (failOnErrors) before its members {} could be added",
                    missing.join(", ")
                ),
            );
            self.answer(
                pending.index,
                &entries[pending.index],
                Outcome::failed(error, Some(pending.location)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ENTERPRISE_USER_SCHEMA;

    fn parse_ops(ops: Value) -> (Vec<Entry>, HashMap<String, usize>) {
        let request = parse_request(json!({ "schemas": [BULK_REQUEST_SCHEMA], "Operations": ops })).expect("parses");
        (request.entries, request.definitions)
    }

    fn post_group(bulk_id: &str, members: &[&str]) -> Value {
        let members: Vec<Value> = members
            .iter()
            .map(|m| json!({ "value": format!("bulkId:{m}") }))
            .collect();
        json!({ "method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": { "displayName": bulk_id, "members": members } })
    }

    #[test]
    fn paths_name_a_resource_type_and_optionally_an_id_or_a_bulk_id() {
        assert!(matches!(parse_path("/Users"), Ok((ResourceKind::User, None))));
        assert!(matches!(parse_path("Groups/"), Ok((ResourceKind::Group, None))));
        assert!(matches!(parse_path("/Users/abc"), Ok((ResourceKind::User, Some(Target::Id(id)))) if id == "abc"));
        assert!(
            matches!(parse_path("/Groups/bulkId:g1"), Ok((ResourceKind::Group, Some(Target::BulkId(b)))) if b == "g1")
        );
        for bad in ["/Foo", "/Users/a/b", "", "/Groups/bulkId:", "/Schemas/x"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn methods_are_case_insensitive_and_unknown_ones_fail_alone() {
        let (entries, _) = parse_ops(json!([
            { "method": "post", "path": "/Users", "data": {} },
            { "method": "GET", "path": "/Users/x" },
        ]));
        assert_eq!(entries[0].method.as_deref(), Some("POST"));
        assert!(entries[0].operation.is_ok());
        assert_eq!(entries[1].method.as_deref(), Some("GET"));
        assert_eq!(entries[1].operation.as_ref().err().map(|e| e.status), Some(400));
    }

    #[test]
    fn a_referenced_post_runs_before_the_operation_referring_to_it() {
        let (entries, definitions) = parse_ops(json!([
            post_group("g", &["u"]),
            { "method": "POST", "path": "/Users", "bulkId": "u", "data": { "userName": "u" } },
            { "method": "DELETE", "path": "/Users/x" },
        ]));
        let planned = plan(&entries, &definitions);
        assert_eq!(planned.order, [1, 0, 2]);
        assert!(planned.circular.iter().all(|c| !c));
    }

    #[test]
    fn a_cycle_through_group_members_is_not_circular_but_other_cycles_are() {
        let (entries, definitions) = parse_ops(json!([post_group("a", &["b"]), post_group("b", &["a"])]));
        let planned = plan(&entries, &definitions);
        assert_eq!(planned.order, [1, 0]);
        assert_eq!(planned.circular, [false, false]);

        let user = |id: &str, manager: &str| {
            json!({ "method": "POST", "path": "/Users", "bulkId": id, "data": {
                "userName": id, ENTERPRISE_USER_SCHEMA: { "manager": { "value": format!("bulkId:{manager}") } } } })
        };
        let (entries, definitions) = parse_ops(json!([user("u1", "u2"), user("u2", "u1"), user("u3", "u3")]));
        assert_eq!(plan(&entries, &definitions).circular, [true, true, true]);
    }

    #[test]
    fn a_reference_outside_members_makes_the_group_wait() {
        let (entries, _) = parse_ops(json!([
            { "method": "POST", "path": "/Groups", "bulkId": "g", "data": {
                "displayName": "bulkId:u", "members": [{ "value": "bulkId:u" }, { "value": "bulkId:v" }] } },
        ]));
        let op = entries[0].operation.as_ref().expect("ok");
        let flags: Vec<(&str, bool)> = op
            .references
            .iter()
            .map(|r| (r.bulk_id.as_str(), r.member_only))
            .collect();
        assert_eq!(flags, [("u", false), ("v", true)]);
    }

    #[test]
    fn later_duplicates_of_a_bulk_id_fail_with_invalid_value() {
        let (entries, definitions) = parse_ops(json!([post_group("g", &[]), post_group("g", &[])]));
        assert_eq!(definitions.get("g"), Some(&0));
        assert!(entries[0].operation.is_ok());
        let error = entries[1].operation.as_ref().err().expect("duplicate fails");
        assert_eq!(error.scim_type, Some(crate::scim::ScimType::InvalidValue));
    }

    #[test]
    fn too_many_operations_or_a_broken_envelope_fail_the_whole_request() {
        let many: Vec<Value> = (0..=MAX_OPERATIONS).map(|_| json!({})).collect();
        assert_eq!(
            parse_request(json!({ "Operations": many })).err().map(|e| e.status),
            Some(413)
        );
        for bad in [
            json!([]),
            json!({}),
            json!({ "Operations": {} }),
            json!({ "schemas": ["urn:x"], "Operations": [] }),
            json!({ "Operations": [], "failOnErrors": 0 }),
        ] {
            assert_eq!(parse_request(bad.clone()).err().map(|e| e.status), Some(400), "{bad}");
        }
    }
}
