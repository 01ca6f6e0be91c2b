//! Resource usage of workspaces as their agents report it: the last hour per agent in
//! memory (for the dashboard's charts), the latest sample in the database (for `show`
//! after a restart and for other replicas), and the alerts the template's
//! `resources_monitoring` thresholds raise.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::wire::agent::{percent, DiskUsage, ResourcesMonitoring, Usage};

/// Samples kept per agent: an hour at the agent's 5-second pace.
pub const HISTORY_LEN: usize = 720;
/// Agents with a history at most; the one sampled longest ago is dropped first.
pub const MAX_AGENTS: usize = 10_000;
/// The database gets an agent's latest sample at most this often.
pub const PERSIST_EVERY_MS: i64 = 30_000;
/// Disks per sample at most, and bytes of a disk's path.
const MAX_DISKS: usize = 16;
const MAX_PATH_BYTES: usize = 512;
/// Samples closer together than this are dropped: the agent sends one every 5 s, and a
/// faster one (a modified agent) must not fill the history.
pub const MIN_INTERVAL_MS: i64 = 4_000;

/// The CPU and memory figures of one sample: what the charts draw. Disks are kept for
/// the latest sample only, so an hour of history stays small (40 bytes a sample).
#[derive(Clone, Copy)]
struct Point {
    at: i64,
    cpu_used: f64,
    cpu_total: f64,
    mem_used: u64,
    mem_total: u64,
}

#[derive(Default)]
struct Series {
    points: VecDeque<Point>,
    latest: Usage,
    persisted_at: i64,
}

/// The recent usage of every agent that reported to this server.
#[derive(Default)]
pub struct UsageHistory {
    agents: Mutex<HashMap<String, Series>>,
}

impl UsageHistory {
    /// Records a sample (cleaned up: the agent's figures are not trusted); returns it when
    /// it is due in the database.
    pub fn record(&self, agent_id: &str, usage: Usage, now: i64) -> Option<Usage> {
        let usage = clean(usage, now);
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if !agents.contains_key(agent_id) && agents.len() >= MAX_AGENTS {
            let stalest = agents
                .iter()
                .min_by_key(|(_, s)| s.latest.collected_at)
                .map(|(id, _)| id.clone());
            if let Some(id) = stalest {
                agents.remove(&id);
            }
        }
        let series = agents.entry(agent_id.to_string()).or_default();
        if series
            .points
            .back()
            .is_some_and(|p| now - p.at < MIN_INTERVAL_MS)
        {
            return None;
        }
        if series.points.len() == HISTORY_LEN {
            series.points.pop_front();
        }
        series.points.push_back(Point {
            at: usage.collected_at,
            cpu_used: usage.cpu_used_cores,
            cpu_total: usage.cpu_total_cores,
            mem_used: usage.memory_used_bytes,
            mem_total: usage.memory_total_bytes,
        });
        series.latest = usage.clone();
        (now - series.persisted_at >= PERSIST_EVERY_MS).then(|| {
            series.persisted_at = now;
            usage
        })
    }

    /// The agent's samples, oldest first; only the latest carries its disks.
    pub fn history(&self, agent_id: &str) -> Vec<Usage> {
        let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        let Some(series) = agents.get(agent_id) else {
            return Vec::new();
        };
        let mut out: Vec<Usage> = series
            .points
            .iter()
            .map(|p| Usage {
                collected_at: p.at,
                cpu_used_cores: p.cpu_used,
                cpu_total_cores: p.cpu_total,
                memory_used_bytes: p.mem_used,
                memory_total_bytes: p.mem_total,
                disks: Vec::new(),
            })
            .collect();
        if let Some(last) = out.last_mut() {
            *last = series.latest.clone();
        }
        out
    }

    /// Gives each agent the newest sample this server holds, fresher than the database's.
    pub fn freshen(&self, agents: &mut [crate::db::agents::Agent]) {
        for a in agents {
            if let Some(u) = self.latest(&a.id) {
                a.last_usage = Some(u);
            }
        }
    }

    /// The newest sample this server holds for the agent.
    pub fn latest(&self, agent_id: &str) -> Option<Usage> {
        let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents
            .get(agent_id)
            .filter(|s| !s.points.is_empty())
            .map(|s| s.latest.clone())
    }
}

/// Bounds what an agent may make the server keep, and stamps the server's clock (an
/// agent's clock may be wrong; the charts put samples on the server's).
fn clean(mut u: Usage, now: i64) -> Usage {
    u.collected_at = now;
    u.cpu_total_cores = finite(u.cpu_total_cores).clamp(0.0, 1e6);
    u.cpu_used_cores = finite(u.cpu_used_cores).clamp(0.0, u.cpu_total_cores.max(0.0));
    u.memory_used_bytes = u.memory_used_bytes.min(u.memory_total_bytes);
    u.disks.truncate(MAX_DISKS);
    for d in &mut u.disks {
        d.used_bytes = d.used_bytes.min(d.total_bytes);
        if d.path.len() > MAX_PATH_BYTES {
            let mut cut = MAX_PATH_BYTES;
            while !d.path.is_char_boundary(cut) {
                cut -= 1;
            }
            d.path.truncate(cut);
        }
    }
    u
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// The alerts the template's thresholds raise for a sample, as sentences.
pub fn alerts(monitoring: &ResourcesMonitoring, usage: &Usage) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = monitoring.memory.as_ref().filter(|m| m.enabled) {
        let used = percent(usage.memory_used_bytes, usage.memory_total_bytes);
        if usage.memory_total_bytes > 0 && used >= f64::from(m.threshold) {
            out.push(format!(
                "memory is {used:.0}% used (the template alerts at {}%)",
                m.threshold
            ));
        }
    }
    for v in monitoring.volumes.iter().filter(|v| v.enabled) {
        let disk: Option<&DiskUsage> = usage.disks.iter().find(|d| d.path == v.path);
        if let Some(d) = disk.filter(|d| d.total_bytes > 0) {
            let used = percent(d.used_bytes, d.total_bytes);
            if used >= f64::from(v.threshold) {
                out.push(format!(
                    "volume {} is {used:.0}% used (the template alerts at {}%)",
                    v.path, v.threshold
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::agent::{MemoryMonitor, VolumeMonitor};

    fn sample(mem: u64, disk: u64) -> Usage {
        Usage {
            collected_at: 0,
            cpu_used_cores: 0.5,
            cpu_total_cores: 2.0,
            memory_used_bytes: mem,
            memory_total_bytes: 100,
            disks: vec![DiskUsage {
                path: "/data".into(),
                used_bytes: disk,
                total_bytes: 100,
            }],
        }
    }

    #[test]
    fn history_is_bounded_and_persisted_at_most_every_interval() {
        let h = UsageHistory::default();
        assert!(
            h.record("a", sample(1, 1), 1_000_000).is_some(),
            "the first is due"
        );
        assert!(h.record("a", sample(2, 1), 1_005_000).is_none());
        assert!(h.record("a", sample(3, 1), 1_030_000).is_some());
        assert!(h.record("a", sample(9, 1), 1_031_000).is_none(), "too soon");
        for i in 1..=HISTORY_LEN as i64 {
            h.record("a", sample(4, 1), 1_030_000 + i * 5_000);
        }
        let all = h.history("a");
        assert_eq!(all.len(), HISTORY_LEN);
        assert_eq!(all[0].memory_used_bytes, 4, "the oldest went first");
        assert!(
            all.iter().all(|u| u.memory_used_bytes != 9),
            "the early one was dropped"
        );
        assert!(all[0].disks.is_empty() && !all[HISTORY_LEN - 1].disks.is_empty());
        assert_eq!(h.latest("b"), None);
        assert!(h.history("b").is_empty());
    }

    #[test]
    fn an_agent_cannot_report_nonsense() {
        let h = UsageHistory::default();
        let mut u = sample(500, 900);
        u.cpu_used_cores = 99.0;
        u.collected_at = -5;
        u.disks[0].path = "é".repeat(2000);
        u.disks.extend(std::iter::repeat_n(u.disks[0].clone(), 100));
        h.record("a", u, 42);
        let got = h.latest("a").unwrap();
        assert_eq!(got.collected_at, 42, "the server's clock");
        assert_eq!(got.cpu_used_cores, 2.0);
        assert_eq!(got.memory_used_bytes, 100);
        assert_eq!(got.disks.len(), MAX_DISKS);
        assert!(got.disks[0].path.len() <= MAX_PATH_BYTES);
        assert_eq!(got.disks[0].used_bytes, 100);
    }

    #[test]
    fn thresholds_raise_alerts() {
        let spec = ResourcesMonitoring {
            memory: Some(MemoryMonitor {
                enabled: true,
                threshold: 80,
            }),
            volumes: vec![
                VolumeMonitor {
                    path: "/data".into(),
                    enabled: true,
                    threshold: 90,
                },
                VolumeMonitor {
                    path: "/off".into(),
                    enabled: false,
                    threshold: 1,
                },
            ],
        };
        assert!(alerts(&spec, &sample(79, 89)).is_empty());
        let raised = alerts(&spec, &sample(80, 95));
        assert_eq!(raised.len(), 2, "{raised:?}");
        assert!(raised[0].starts_with("memory is 80% used"), "{raised:?}");
        assert!(
            raised[1].starts_with("volume /data is 95% used"),
            "{raised:?}"
        );
        assert!(alerts(&ResourcesMonitoring::default(), &sample(100, 100)).is_empty());
    }
}
