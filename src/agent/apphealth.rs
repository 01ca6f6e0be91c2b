//! App healthchecks: the agent polls each app's `healthcheck.url` every `interval`
//! seconds and reports every app's health whenever one changes (Coder's rules: healthy
//! after a success, unhealthy after `threshold` failures in a row, an answer of 500 or
//! more counts as a failure).

use std::collections::BTreeMap;
use std::time::Duration;

use super::protocol::{AppSpec, HealthcheckSpec};
use super::Reporter;
use crate::model::agent::AppHealth;

/// A check waits this long for an answer at most (less when its interval is shorter).
const MAX_CHECK_TIME: Duration = Duration::from_secs(10);

/// The health after one check, given the failures in a row before it.
pub fn next(health: AppHealth, ok: bool, failures: &mut u64, threshold: u64) -> AppHealth {
    if ok {
        *failures = 0;
        return AppHealth::Healthy;
    }
    *failures += 1;
    if *failures >= threshold.max(1) {
        AppHealth::Unhealthy
    } else {
        health
    }
}

async fn check(http: &reqwest::Client, url: &str) -> bool {
    match http.get(url).send().await {
        Ok(r) => r.status().as_u16() < 500,
        Err(_) => false,
    }
}

/// Checks every app that has a healthcheck until the agent stops.
pub async fn watch(reporter: Reporter, apps: Vec<AppSpec>) {
    let checks: Vec<(String, HealthcheckSpec)> = apps
        .into_iter()
        .filter_map(|a| Some((a.slug, a.healthcheck.filter(|h| !h.url.is_empty())?)))
        .collect();
    if checks.is_empty() {
        return;
    }
    let states = std::sync::Mutex::new(
        checks
            .iter()
            .map(|(slug, _)| (slug.clone(), AppHealth::Initializing))
            .collect::<BTreeMap<_, _>>(),
    );
    reporter.app_health(lock(&states).clone());
    let runs = checks.iter().map(|(slug, spec)| {
        let (states, reporter) = (&states, &reporter);
        async move {
            let every = Duration::from_secs(spec.interval.max(1));
            let Ok(http) = reqwest::Client::builder()
                .timeout(every.min(MAX_CHECK_TIME))
                .build()
            else {
                return;
            };
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut health, mut failures) = (AppHealth::Initializing, 0);
            loop {
                tick.tick().await;
                let ok = check(&http, &spec.url).await;
                let now = next(health, ok, &mut failures, spec.threshold);
                if now != health {
                    health = now;
                    tracing::info!(app = %slug, health = %now, "app health changed");
                    let all = {
                        let mut s = lock(states);
                        s.insert(slug.clone(), now);
                        s.clone()
                    };
                    reporter.app_health(all);
                }
            }
        }
    });
    futures::future::join_all(runs).await;
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_after_a_success_and_unhealthy_after_threshold_failures() {
        let mut failures = 0;
        let mut h = AppHealth::Initializing;
        h = next(h, false, &mut failures, 3);
        assert_eq!(h, AppHealth::Initializing);
        h = next(h, true, &mut failures, 3);
        assert_eq!((h, failures), (AppHealth::Healthy, 0));
        h = next(h, false, &mut failures, 3);
        h = next(h, false, &mut failures, 3);
        assert_eq!(h, AppHealth::Healthy, "two failures of three");
        h = next(h, false, &mut failures, 3);
        assert_eq!(h, AppHealth::Unhealthy);
        h = next(h, true, &mut failures, 3);
        assert_eq!(h, AppHealth::Healthy);
        // A threshold of 0 counts as 1.
        assert_eq!(next(h, false, &mut 0, 0), AppHealth::Unhealthy);
    }
}
