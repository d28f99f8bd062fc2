//! The fixed scenarios, which targets run them, and one target's whole run:
//! start, seed, check each scenario once, measure it, read the peak RSS.

use std::future::Future;
use std::time::Instant;

use anyhow::{Context, bail};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::api::{Api, bulk_create, bulk_created_ids, http_client, remove_member, replace_active, user_document};
use crate::cli::{Settings, TargetKind};
use crate::load::{self, Measured, Outcome, Step};
use crate::oha::{self, Oha};
use crate::seed::{Directory, SeedTimes, seed_big_group, seed_directory};
use crate::targets::Launcher;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    GetUser,
    #[serde(rename = "filter-username")]
    FilterUserName,
    ListIndex,
    ListCursor,
    AuthMe,
    AuthBaseline,
    CreateUser,
    PatchActive,
    PatchMemberSmall,
    PatchMemberBig,
}

impl Scenario {
    /// In the order they run: reads first, on the seeded directory, then writes.
    pub const ALL: [Scenario; 10] = [
        Scenario::GetUser,
        Scenario::FilterUserName,
        Scenario::ListIndex,
        Scenario::ListCursor,
        Scenario::AuthMe,
        Scenario::AuthBaseline,
        Scenario::CreateUser,
        Scenario::PatchActive,
        Scenario::PatchMemberSmall,
        Scenario::PatchMemberBig,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Scenario::GetUser => "get-user",
            Scenario::FilterUserName => "filter-username",
            Scenario::ListIndex => "list-index",
            Scenario::ListCursor => "list-cursor",
            Scenario::AuthMe => "auth-me",
            Scenario::AuthBaseline => "auth-baseline",
            Scenario::CreateUser => "create-user",
            Scenario::PatchActive => "patch-active",
            Scenario::PatchMemberSmall => "patch-member-small",
            Scenario::PatchMemberBig => "patch-member-big",
        }
    }

    pub fn title(self, settings: &Settings) -> String {
        match self {
            Scenario::GetUser => "GET /Users/{id}".into(),
            Scenario::FilterUserName => "GET /Users?filter=userName eq \"…\" (random existing names)".into(),
            Scenario::ListIndex => "GET /Users?startIndex=…&count=100 (random pages)".into(),
            Scenario::ListCursor => "GET /Users?count=100&cursor=… (following nextCursor)".into(),
            Scenario::AuthMe => "GET /Me with a key (key verified; 501 expected)".into(),
            Scenario::AuthBaseline => "GET /ServiceProviderConfig without a key".into(),
            Scenario::CreateUser => "POST /Users (unique names)".into(),
            Scenario::PatchActive => "PATCH /Users/{id} replace active (one user, true/false alternating)".into(),
            Scenario::PatchMemberSmall => "PATCH /Groups/{id} add, then remove, one member (10-member group)".into(),
            Scenario::PatchMemberBig => format!(
                "PATCH /Groups/{{id}} add, then remove, one member ({}-member group)",
                thousands(settings.members as u64)
            ),
        }
    }

    /// Which tool measures it: oha for fixed requests, the harness's own
    /// loop where requests vary.
    pub fn tool(self) -> &'static str {
        match self {
            Scenario::GetUser | Scenario::AuthMe | Scenario::AuthBaseline => "oha",
            _ => "scimd-bench",
        }
    }

    pub fn runs_on(self, kind: TargetKind) -> bool {
        match self {
            Scenario::GetUser => true,
            Scenario::FilterUserName
            | Scenario::ListIndex
            | Scenario::AuthBaseline
            | Scenario::CreateUser
            | Scenario::PatchActive
            | Scenario::PatchMemberSmall => kind != TargetKind::Ceiling,
            // Cursors, /Me, the big group and growth: scimd only.
            Scenario::ListCursor | Scenario::AuthMe | Scenario::PatchMemberBig => kind.is_scimd(),
        }
    }
}

/// One scenario on one target: figures, or why there are none.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    #[serde(flatten)]
    pub measured: Option<Measured>,
    pub failure: Option<String>,
}

/// The Bulk scenario: `repeats` requests of `size` creates, one after another.
#[derive(Debug, Clone, Serialize)]
pub struct BulkResult {
    pub size: usize,
    pub wall_seconds: Vec<f64>,
    pub median_seconds: f64,
    pub creates_per_sec: f64,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: TargetKind,
    pub label: &'static str,
    pub seed: SeedTimes,
    pub scenarios: Vec<ScenarioResult>,
    pub bulk: Option<BulkResult>,
    pub peak_rss_kib: Option<u64>,
    pub seconds: f64,
    /// Why the target could not be measured (fully).
    pub failure: Option<String>,
}

impl TargetReport {
    pub fn result(&self, scenario: Scenario) -> Option<&Measured> {
        self.scenarios
            .iter()
            .find(|r| r.scenario == scenario)
            .and_then(|r| r.measured.as_ref())
    }
}

pub struct RunContext<'a> {
    pub settings: &'a Settings,
    pub launcher: Launcher<'a>,
    pub oha: &'a Oha,
    /// Distinguishes the names this run creates.
    pub run_tag: String,
}

/// Starts, seeds and measures one target; a failure is recorded in the
/// report, never raised, so the other targets still run.
pub async fn measure(context: &RunContext<'_>, kind: TargetKind) -> TargetReport {
    let started = Instant::now();
    let mut report = TargetReport {
        target: kind,
        label: kind.label(),
        seed: SeedTimes::default(),
        scenarios: Vec::new(),
        bulk: None,
        peak_rss_kib: None,
        seconds: 0.0,
        failure: None,
    };
    if let Err(error) = run_target(context, kind, &mut report).await {
        eprintln!("scimd-bench: {} failed: {error:#}", kind.name());
        report.failure = Some(format!("{error:#}"));
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

async fn run_target(context: &RunContext<'_>, kind: TargetKind, report: &mut TargetReport) -> anyhow::Result<()> {
    let settings = context.settings;
    eprintln!("scimd-bench: == {} ==", kind.label());
    let mut target = context.launcher.start(kind).await?;
    let api = Api {
        client: http_client(settings.connections)?,
        base: target.base.clone(),
        key: target.key.clone(),
    };
    let scratch = target.dir.path().to_path_buf();
    let runner = Runner {
        context,
        kind,
        api: api.clone(),
        scratch: &scratch,
    };

    if kind == TargetKind::Ceiling {
        report
            .scenarios
            .push(runner.oha(Scenario::GetUser, "/Users/ceiling", false, &[200]).await);
    } else {
        eprintln!(
            "scimd-bench: seeding {} users and {} groups",
            settings.users, settings.small_groups
        );
        let mut directory = seed_directory(
            &api,
            kind.is_scimd(),
            settings.users,
            settings.connections,
            settings.small_groups,
            settings.seed_parallel,
            &mut report.seed,
        )
        .await?;
        eprintln!(
            "scimd-bench: seeded {} users in {:.1} s ({:.0} users/s)",
            report.seed.users, report.seed.users_seconds, report.seed.users_per_sec
        );
        for scenario in Scenario::ALL {
            if !scenario.runs_on(kind) {
                continue;
            }
            if scenario == Scenario::CreateUser && kind.is_scimd() {
                report.bulk = Some(runner.bulk().await);
            }
            if scenario == Scenario::PatchMemberBig {
                eprintln!("scimd-bench: seeding the {}-member group", settings.members);
                seed_big_group(
                    &api,
                    &mut directory,
                    settings.members,
                    settings.seed_parallel,
                    &mut report.seed,
                )
                .await?;
                eprintln!(
                    "scimd-bench: seeded the big group in {:.1} s",
                    report.seed.big_group_seconds.unwrap_or(0.0)
                );
            }
            let result = runner.scenario(scenario, &directory).await;
            report.scenarios.push(result);
        }
    }
    report.peak_rss_kib = target.server.peak_rss_kib();
    if let Some(status) = target.server.exited() {
        bail!(
            "the server exited ({status}) during the run:\n{}",
            target.server.log_tail(4000)
        );
    }
    Ok(())
}

struct Runner<'a> {
    context: &'a RunContext<'a>,
    kind: TargetKind,
    api: Api,
    scratch: &'a std::path::Path,
}

impl Runner<'_> {
    fn settings(&self) -> &Settings {
        self.context.settings
    }

    /// Checks the scenario once, then measures it.
    async fn scenario(&self, scenario: Scenario, directory: &Directory) -> ScenarioResult {
        eprintln!("scimd-bench:   {}", scenario.title(self.settings()));
        let outcome = self.measure(scenario, directory).await;
        let result = match outcome {
            Ok(measured) => ScenarioResult {
                scenario,
                measured: Some(measured),
                failure: None,
            },
            Err(error) => {
                eprintln!("scimd-bench:   failed: {error:#}");
                ScenarioResult {
                    scenario,
                    measured: None,
                    failure: Some(format!("{error:#}")),
                }
            }
        };
        if let Some(m) = &result.measured {
            eprintln!(
                "scimd-bench:   {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                m.requests_per_sec, m.p50_ms, m.p99_ms, m.errors
            );
        }
        result
    }

    async fn measure(&self, scenario: Scenario, directory: &Directory) -> anyhow::Result<Measured> {
        let api = &self.api;
        let users = self.settings().users;
        // Peers answer a PATCH with 204 (no body) or 200; scimd always with 200.
        let patched: &'static [u16] = if self.kind.is_scimd() { &[200] } else { &[200, 204] };
        match scenario {
            Scenario::GetUser => {
                let path = format!("/Users/{}", directory.user_ids[0]);
                let user = api
                    .expect_json("GET /Users/{id}", api.request(Method::GET, &path), &[200])
                    .await?;
                check_field(&user, "userName", "user0@example.com")?;
                Ok(self.oha_measure(&path, true, &[200]).await?)
            }
            Scenario::FilterUserName => {
                let page = api
                    .expect_json("a userName filter", filter_request(api, users - 1), &[200])
                    .await?;
                check_total(&page, 1)?;
                Ok(self
                    .own_loop(|connection| Looped {
                        rng: SmallRng::seed_from_u64(connection as u64),
                        api: api.clone(),
                        step: move |api: &Api, rng: &mut SmallRng| {
                            Outcome::of(filter_request(api, rng.random_range(0..users)), &[200])
                        },
                    })
                    .await)
            }
            Scenario::ListIndex => {
                let last = users.saturating_sub(99).max(1);
                let page = api
                    .expect_json("a page by index", index_request(api, last), &[200])
                    .await?;
                let got = page.get("Resources").and_then(Value::as_array).map_or(0, Vec::len);
                anyhow::ensure!(got == 100, "a page of 100 by index returned {got} resources");
                Ok(self
                    .own_loop(|connection| Looped {
                        rng: SmallRng::seed_from_u64(connection as u64),
                        api: api.clone(),
                        step: move |api: &Api, rng: &mut SmallRng| {
                            Outcome::of(index_request(api, rng.random_range(1..=last)), &[200])
                        },
                    })
                    .await)
            }
            Scenario::ListCursor => {
                let page = api
                    .expect_json("a first cursor page", cursor_request(api, ""), &[200])
                    .await?;
                anyhow::ensure!(
                    page.get("nextCursor").and_then(Value::as_str).is_some(),
                    "the first cursor page has no nextCursor: {}",
                    truncate(&page.to_string())
                );
                Ok(self
                    .own_loop(|_| CursorWalk {
                        api: api.clone(),
                        cursor: String::new(),
                    })
                    .await)
            }
            Scenario::AuthMe => {
                api.expect_json("GET /Me", api.request(Method::GET, "/Me"), &[501])
                    .await?;
                Ok(self.oha_measure("/Me", true, &[501]).await?)
            }
            Scenario::AuthBaseline => {
                api.expect_json(
                    "GET /ServiceProviderConfig",
                    api.anonymous(Method::GET, "/ServiceProviderConfig"),
                    &[200],
                )
                .await?;
                Ok(self.oha_measure("/ServiceProviderConfig", false, &[200]).await?)
            }
            Scenario::CreateUser => {
                let tag = format!("post-{}", self.context.run_tag);
                let first = user_document(&format!("{tag}-check@example.com"), 0);
                api.expect_json("POST /Users", api.send_json(Method::POST, "/Users", &first), &[201])
                    .await?;
                Ok(self
                    .own_loop(|connection| Looped {
                        rng: SmallRng::seed_from_u64(0),
                        api: api.clone(),
                        step: {
                            let tag = tag.clone();
                            let mut n = 0usize;
                            move |api: &Api, _: &mut SmallRng| {
                                n += 1;
                                let name = format!("{tag}-{connection}-{n}@example.com");
                                let document = user_document(&name, n);
                                Outcome::of(api.send_json(Method::POST, "/Users", &document), &[201])
                            }
                        },
                    })
                    .await)
            }
            Scenario::PatchActive => {
                let path = format!("/Users/{}", directory.user_ids[1]);
                api.expect_json(
                    "PATCH active",
                    api.send_json(Method::PATCH, &path, &replace_active(false)),
                    patched,
                )
                .await?;
                Ok(self
                    .own_loop(|connection| Looped {
                        rng: SmallRng::seed_from_u64(0),
                        api: api.clone(),
                        step: {
                            let path = path.clone();
                            let mut active = connection % 2 == 0;
                            move |api: &Api, _: &mut SmallRng| {
                                active = !active;
                                Outcome::of(api.send_json(Method::PATCH, &path, &replace_active(active)), patched)
                            }
                        },
                    })
                    .await)
            }
            Scenario::PatchMemberSmall | Scenario::PatchMemberBig => {
                let group = if scenario == Scenario::PatchMemberSmall {
                    directory.small_group.clone()
                } else {
                    directory.big_group.clone().context("the big group was not seeded")?
                };
                let path = format!("/Groups/{group}?excludedAttributes=members");
                let spare = directory.spare_ids.first().context("no spare users")?;
                api.expect_json(
                    "PATCH add member",
                    api.send_json(
                        Method::PATCH,
                        &path,
                        &crate::api::add_members(std::slice::from_ref(spare)),
                    ),
                    patched,
                )
                .await?;
                api.expect_json(
                    "PATCH remove member",
                    api.send_json(Method::PATCH, &path, &remove_member(spare)),
                    patched,
                )
                .await?;
                let spares = directory.spare_ids.clone();
                Ok(self
                    .own_loop(|connection| Looped {
                        rng: SmallRng::seed_from_u64(0),
                        api: api.clone(),
                        step: {
                            let path = path.clone();
                            let member = spares[connection % spares.len()].clone();
                            let mut add = false;
                            move |api: &Api, _: &mut SmallRng| {
                                add = !add;
                                let body = if add {
                                    crate::api::add_members(std::slice::from_ref(&member))
                                } else {
                                    remove_member(&member)
                                };
                                Outcome::of(api.send_json(Method::PATCH, &path, &body), patched)
                            }
                        },
                    })
                    .await)
            }
        }
    }

    async fn oha(&self, scenario: Scenario, path: &str, with_key: bool, expected: &[u16]) -> ScenarioResult {
        eprintln!("scimd-bench:   {}", scenario.title(self.settings()));
        match self.oha_measure(path, with_key, expected).await {
            Ok(measured) => ScenarioResult {
                scenario,
                measured: Some(measured),
                failure: None,
            },
            Err(error) => ScenarioResult {
                scenario,
                measured: None,
                failure: Some(format!("{error:#}")),
            },
        }
    }

    async fn oha_measure(&self, path: &str, with_key: bool, expected: &[u16]) -> anyhow::Result<Measured> {
        let url = format!("{}{path}", self.api.base);
        let request = oha::Request {
            url: &url,
            method: "GET",
            bearer: if with_key { self.api.key.as_deref() } else { None },
            body: None,
        };
        let settings = self.settings();
        self.context
            .oha
            .run(
                &request,
                settings.connections,
                settings.duration(),
                expected,
                self.scratch,
            )
            .await
    }

    async fn own_loop<S: Step>(&self, make: impl FnMut(usize) -> S) -> Measured {
        let settings = self.settings();
        load::run(settings.connections, settings.duration(), make).await
    }

    /// `bulk_repeats` Bulk requests of `bulk_size` user creates, one after another.
    async fn bulk(&self) -> BulkResult {
        let settings = self.settings();
        eprintln!(
            "scimd-bench:   POST /Bulk of {} creates, {} times",
            settings.bulk_size, settings.bulk_repeats
        );
        let mut result = BulkResult {
            size: settings.bulk_size,
            wall_seconds: Vec::new(),
            median_seconds: 0.0,
            creates_per_sec: 0.0,
            failure: None,
        };
        for repeat in 0..settings.bulk_repeats {
            let documents: Vec<Value> = (0..settings.bulk_size)
                .map(|j| user_document(&format!("bulk-{}-{repeat}-{j}@example.com", self.context.run_tag), j))
                .collect();
            let body = bulk_create(&documents);
            let started = Instant::now();
            let outcome = self
                .api
                .expect_json("POST /Bulk", self.api.send_json(Method::POST, "/Bulk", &body), &[200])
                .await
                .and_then(|response| bulk_created_ids(&response, documents.len()));
            let seconds = started.elapsed().as_secs_f64();
            if let Err(error) = outcome {
                result.failure = Some(format!("{error:#}"));
                break;
            }
            result.wall_seconds.push(seconds);
        }
        let mut sorted = result.wall_seconds.clone();
        sorted.sort_by(f64::total_cmp);
        if !sorted.is_empty() {
            result.median_seconds = sorted[sorted.len() / 2];
            result.creates_per_sec = settings.bulk_size as f64 / result.median_seconds;
            eprintln!(
                "scimd-bench:   median {:.3} s per Bulk, {:.0} creates/s",
                result.median_seconds, result.creates_per_sec
            );
        }
        result
    }
}

/// A loop step built from a closure that makes the next request.
struct Looped<F> {
    rng: SmallRng,
    api: Api,
    step: F,
}

impl<F, Fut> Step for Looped<F>
where
    F: FnMut(&Api, &mut SmallRng) -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    fn step(&mut self) -> impl Future<Output = Outcome> + Send {
        (self.step)(&self.api, &mut self.rng)
    }
}

/// What a cursor walk reads of a page: only its next cursor. The other
/// members are skipped unparsed; building the whole page as a `Value`
/// cost the load generator, on the cores it shares with the server, more
/// than the server's own rendering of it.
#[derive(serde::Deserialize)]
struct CursorPage {
    #[serde(rename = "nextCursor")]
    next_cursor: Option<String>,
}

/// Pages through all users by cursor, starting over after the last page.
struct CursorWalk {
    api: Api,
    cursor: String,
}

impl Step for CursorWalk {
    async fn step(&mut self) -> Outcome {
        let Ok(response) = cursor_request(&self.api, &self.cursor).send().await else {
            return Outcome {
                status: None,
                ok: false,
            };
        };
        let status = response.status().as_u16();
        let next = response
            .bytes()
            .await
            .ok()
            .and_then(|body| serde_json::from_slice::<CursorPage>(&body).ok())
            .map(|page| page.next_cursor);
        match next {
            Some(next) => {
                self.cursor = next.unwrap_or_default();
                Outcome {
                    status: Some(status),
                    ok: status == 200,
                }
            }
            None => {
                self.cursor.clear();
                Outcome {
                    status: Some(status),
                    ok: false,
                }
            }
        }
    }
}

fn filter_request(api: &Api, i: usize) -> reqwest::RequestBuilder {
    api.request(Method::GET, "/Users")
        .query(&[("filter", format!("userName eq \"user{i}@example.com\""))])
}

fn index_request(api: &Api, start_index: usize) -> reqwest::RequestBuilder {
    api.request(Method::GET, "/Users")
        .query(&[("startIndex", start_index.to_string()), ("count", "100".to_string())])
}

fn cursor_request(api: &Api, cursor: &str) -> reqwest::RequestBuilder {
    api.request(Method::GET, "/Users")
        .query(&[("count", "100"), ("cursor", cursor)])
}

fn check_field(resource: &Value, field: &str, expected: &str) -> anyhow::Result<()> {
    let got = resource.get(field).and_then(Value::as_str);
    anyhow::ensure!(
        got == Some(expected),
        "expected {field} {expected:?}, got {}",
        truncate(&resource.to_string())
    );
    Ok(())
}

fn check_total(page: &Value, expected: u64) -> anyhow::Result<()> {
    let got = page.get("totalResults").and_then(Value::as_u64);
    anyhow::ensure!(
        got == Some(expected),
        "expected totalResults {expected}, got {}",
        truncate(&page.to_string())
    );
    Ok(())
}

fn truncate(text: &str) -> String {
    text.chars().take(400).collect()
}

/// `100000` → `100,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
