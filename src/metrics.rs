//! The server's Prometheus metrics, served at `/metrics`: one registry per server (tests
//! run several servers in one process), passed to whoever records. Counters and
//! histograms move as things happen; gauges of current state (queue depth, agents
//! connected, database pool) are set just before each scrape by the server, which can see
//! all of them.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Build stages take from milliseconds (a no-op plan) to many minutes (an image build).
const STAGE_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
/// API requests: sub-millisecond to seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    /// Jobs finished, by kind (`workspace_build`, `template_version_import`, ...), the
    /// build's transition (empty for other kinds) and final status.
    pub jobs: IntCounterVec,
    /// Seconds each stage of a job took (`init`, `plan`, `apply`, ... and `total`).
    pub job_stage_seconds: HistogramVec,
    /// Seconds jobs waited in the queue before a provisioner took them.
    pub job_queue_wait_seconds: HistogramVec,
    /// Jobs waiting for a provisioner (set at scrape).
    pub jobs_pending: IntGauge,
    /// Provisioners of this server running a job right now.
    pub provisioners_busy: IntGauge,
    /// Provisioners of this server.
    pub provisioners: IntGauge,
    /// Agents connected to this server (set at scrape).
    pub agents_connected: IntGauge,
    /// Sessions open through this server, by kind (`ssh`, `pty`, `tcp`, `app`).
    pub sessions_open: IntGaugeVec,
    /// HTTP requests answered, by route (the pattern, not the path), method and status.
    pub http_requests: IntCounterVec,
    pub http_request_seconds: HistogramVec,
    /// Database connections by state (`in_use`, `idle`; set at scrape).
    pub db_connections: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("hangar".into()), None).expect("a constant, valid prefix");
        fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
            r.register(Box::new(m.clone()))
                .expect("metric names are constants and unique");
            m
        }
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    labels,
                )
                .expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            reg(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        Metrics {
            jobs: counter(
                "jobs_total",
                "Jobs finished, by kind, transition (builds) and status.",
                &["kind", "transition", "status"],
            ),
            job_stage_seconds: histogram(
                "job_stage_seconds",
                "Seconds each stage of a job took.",
                &["kind", "stage"],
                STAGE_BUCKETS,
            ),
            job_queue_wait_seconds: histogram(
                "job_queue_wait_seconds",
                "Seconds a job waited before a provisioner took it.",
                &["kind"],
                STAGE_BUCKETS,
            ),
            jobs_pending: gauge("jobs_pending", "Jobs waiting for a provisioner."),
            provisioners_busy: gauge(
                "provisioners_busy",
                "Provisioners of this server running a job.",
            ),
            provisioners: gauge("provisioners", "Provisioners of this server."),
            agents_connected: gauge("agents_connected", "Agents connected to this server."),
            sessions_open: gauges(
                "sessions_open",
                "Sessions open through this server, by kind.",
                &["kind"],
            ),
            http_requests: counter(
                "http_requests_total",
                "HTTP requests answered, by route pattern, method and status.",
                &["route", "method", "status"],
            ),
            http_request_seconds: histogram(
                "http_request_seconds",
                "Seconds to answer HTTP requests (to the response head), by route pattern.",
                &["route", "method"],
                HTTP_BUCKETS,
            ),
            db_connections: gauges(
                "db_connections",
                "Database pool connections, by state.",
                &["state"],
            ),
            registry,
        }
        .with_zeroes()
    }

    fn with_zeroes(self) -> Metrics {
        for kind in Self::SESSION_KINDS {
            self.sessions_open.with_label_values(&[kind]);
        }
        self
    }

    /// Session kinds, so each gauge reads 0 before its first session.
    pub const SESSION_KINDS: &'static [&'static str] =
        &["ssh", "terminal", "tcp", "app", "echo", "other"];

    /// Everything, in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on an invalid metric, which `new` rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Counts one open session of `kind` until the guard drops.
    pub fn session(&self, kind: &'static str) -> SessionGauge {
        let gauge = self.sessions_open.with_label_values(&[kind]);
        gauge.inc();
        SessionGauge(gauge)
    }
}

/// One open session in `sessions_open`; closing it (dropping) counts it out.
pub struct SessionGauge(IntGauge);

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_moved() {
        let m = Metrics::new();
        m.jobs
            .with_label_values(&["workspace_build", "start", "succeeded"])
            .inc();
        let s = m.session("ssh");
        let text = m.render();
        assert!(
            text.contains(
                r#"hangar_jobs_total{kind="workspace_build",status="succeeded",transition="start"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"hangar_sessions_open{kind="ssh"} 1"#),
            "{text}"
        );
        drop(s);
        assert!(m.render().contains(r#"hangar_sessions_open{kind="ssh"} 0"#));
    }
}
