//! The harness's own load loop, for scenarios whose requests vary (random
//! names, alternating PATCH bodies, unique creates, followed cursors), which
//! oha cannot send: one tokio task per connection, each sending its next
//! request as soon as the previous answer is read, until the duration is up.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response};
use serde::Serialize;

/// One scenario's figures on one target, from oha or from this loop.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// `oha` or `scimd-bench` (this loop).
    pub tool: &'static str,
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers with an unexpected status, plus transport errors.
    pub errors: u64,
    /// Answers by status code; `transport` for failed requests.
    pub statuses: BTreeMap<String, u64>,
}

/// The result of one request.
pub struct Outcome {
    pub status: Option<u16>,
    pub ok: bool,
}

impl Outcome {
    /// Sends `request`, reads the whole answer, and checks its status.
    pub async fn of(request: RequestBuilder, expected: &[u16]) -> Outcome {
        match request.send().await {
            Ok(response) => Outcome::read(response, expected).await,
            Err(_) => Outcome {
                status: None,
                ok: false,
            },
        }
    }

    pub async fn read(response: Response, expected: &[u16]) -> Outcome {
        let status = response.status().as_u16();
        let body = response.bytes().await;
        Outcome {
            status: Some(status),
            ok: body.is_ok() && expected.contains(&status),
        }
    }
}

/// What one connection does: send its next request.
pub trait Step: Send + 'static {
    fn step(&mut self) -> impl Future<Output = Outcome> + Send;
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    statuses: BTreeMap<String, u64>,
}

/// Runs `connections` steps concurrently for `duration` (requests in flight
/// at the deadline finish and count).
pub async fn run<S: Step>(connections: usize, duration: Duration, mut make: impl FnMut(usize) -> S) -> Measured {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..connections {
        let mut step = make(connection);
        tasks.spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = step.step().await;
                let micros = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                tally.latencies_us.push(micros);
                if !outcome.ok {
                    tally.errors += 1;
                }
                let key = outcome
                    .status
                    .map_or_else(|| "transport".to_string(), |s| s.to_string());
                *tally.statuses.entry(key).or_default() += 1;
            }
            tally
        });
    }
    let mut all = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.expect("a load task panicked");
        all.latencies_us.extend(tally.latencies_us);
        all.errors += tally.errors;
        for (status, n) in tally.statuses {
            *all.statuses.entry(status).or_default() += n;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    summarize(all.latencies_us, all.errors, all.statuses, seconds)
}

fn summarize(mut latencies_us: Vec<u32>, errors: u64, statuses: BTreeMap<String, u64>, seconds: f64) -> Measured {
    latencies_us.sort_unstable();
    let requests = latencies_us.len() as u64;
    Measured {
        tool: "scimd-bench",
        requests,
        seconds,
        requests_per_sec: if seconds > 0.0 { requests as f64 / seconds } else { 0.0 },
        p50_ms: percentile_ms(&latencies_us, 0.50),
        p99_ms: percentile_ms(&latencies_us, 0.99),
        errors,
        statuses,
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::percentile_ms;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&sorted, 0.50), 50.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
        assert_eq!(percentile_ms(&[2500], 0.5), 2.5);
    }
}
