//! What the workspace uses of CPU, memory and disk, sampled every few seconds and sent to
//! the server (and printed by `hangar stat`).
//!
//! Inside a container the figures are the container's, from its cgroup (v2, else v1): a
//! workspace limited to 2 cores and 4 GiB on a 64-core host reports 2 cores and 4 GiB.
//! Elsewhere they are the machine's, from `/proc`. Memory counts what the kernel cannot
//! simply drop: the page cache of inactive files is left out, as `free` and Coder do.
//! The parsing is plain functions over file contents, tested with fixtures of both cgroup
//! versions; the reading is a thin layer over them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{DiskUsage, Usage};
use super::Reporter;

/// How often the agent samples.
pub const EVERY: Duration = Duration::from_secs(5);

/// Where the figures come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A container on the unified hierarchy: the files are in this directory.
    CgroupV2(PathBuf),
    /// A container on the v1 hierarchies: the cpu, cpuacct and memory controllers' dirs.
    CgroupV1 {
        cpu: PathBuf,
        cpuacct: PathBuf,
        memory: PathBuf,
    },
    /// The machine (`/proc`).
    Host,
}

impl Source {
    /// The container's cgroup when this process runs in a container, else the host.
    pub fn detect() -> Source {
        let root = Path::new("/sys/fs/cgroup");
        let markers = [Path::new("/.dockerenv"), Path::new("/run/.containerenv")];
        let init_cgroup = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
        let containerized = markers.iter().any(|m| m.exists())
            || std::env::var_os("container").is_some()
            || ["docker", "kubepods", "containerd", "lxc"]
                .iter()
                .any(|k| init_cgroup.contains(k));
        if !containerized {
            Source::Host
        } else if root.join("cgroup.controllers").exists() {
            Source::CgroupV2(root.to_path_buf())
        } else if root.join("memory").is_dir() {
            Source::CgroupV1 {
                cpu: root.join("cpu"),
                cpuacct: root.join("cpuacct"),
                memory: root.join("memory"),
            }
        } else {
            Source::Host
        }
    }

    /// CPU time used so far, in nanoseconds (cumulative).
    fn cpu_time_ns(&self) -> Option<u64> {
        match self {
            Source::CgroupV2(dir) => cgroup2_cpu_ns(&read(&dir.join("cpu.stat"))?),
            Source::CgroupV1 { cpuacct, .. } => {
                read(&cpuacct.join("cpuacct.usage"))?.trim().parse().ok()
            }
            Source::Host => proc_stat_cpu_ns(&read(Path::new("/proc/stat"))?, clock_ticks()),
        }
    }

    /// Cores the workspace may use.
    fn cores(&self) -> f64 {
        let machine = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let quota = match self {
            Source::CgroupV2(dir) => read(&dir.join("cpu.max")).and_then(|t| cgroup2_quota(&t)),
            Source::CgroupV1 { cpu, .. } => read(&cpu.join("cpu.cfs_quota_us"))
                .zip(read(&cpu.join("cpu.cfs_period_us")))
                .and_then(|(quota, period)| cgroup1_quota(&quota, &period)),
            Source::Host => None,
        };
        quota.map_or(machine, |q| q.min(machine))
    }

    /// Memory used and the limit, in bytes.
    fn memory(&self) -> Option<(u64, u64)> {
        let machine = meminfo(&read(Path::new("/proc/meminfo"))?)?;
        let (used, limit) = match self {
            Source::CgroupV2(dir) => {
                let current: u64 = read(&dir.join("memory.current"))?.trim().parse().ok()?;
                let inactive = stat_value(&read(&dir.join("memory.stat"))?, "inactive_file");
                let limit = read(&dir.join("memory.max")).and_then(|t| t.trim().parse().ok());
                (current.saturating_sub(inactive.unwrap_or(0)), limit)
            }
            Source::CgroupV1 { memory, .. } => {
                let usage: u64 = read(&memory.join("memory.usage_in_bytes"))?
                    .trim()
                    .parse()
                    .ok()?;
                let inactive =
                    stat_value(&read(&memory.join("memory.stat"))?, "total_inactive_file");
                let limit =
                    read(&memory.join("memory.limit_in_bytes")).and_then(|t| t.trim().parse().ok());
                (usage.saturating_sub(inactive.unwrap_or(0)), limit)
            }
            Source::Host => return Some(machine),
        };
        // "No limit" is `max` (v2) or a huge number (v1): the machine is the limit.
        Some((used, limit.map_or(machine.1, |l: u64| l.min(machine.1))))
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// `usage_usec` of a v2 `cpu.stat`, in nanoseconds.
pub fn cgroup2_cpu_ns(cpu_stat: &str) -> Option<u64> {
    stat_value(cpu_stat, "usage_usec").map(|us| us * 1000)
}

/// A `key value` line's value in a stat file.
pub fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Cores from a v2 `cpu.max` (`QUOTA PERIOD`, or `max PERIOD` for none).
pub fn cgroup2_quota(cpu_max: &str) -> Option<f64> {
    let mut parts = cpu_max.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok()?;
    let period: f64 = parts.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Cores from v1 `cpu.cfs_quota_us` (-1 for none) and `cpu.cfs_period_us`.
pub fn cgroup1_quota(quota: &str, period: &str) -> Option<f64> {
    let quota: f64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Busy CPU time of the whole machine from `/proc/stat`'s `cpu` line, in nanoseconds:
/// everything but idle and iowait (guest time is already in user).
pub fn proc_stat_cpu_ns(proc_stat: &str, ticks_per_sec: u64) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    Some(busy * (1_000_000_000 / ticks_per_sec.max(1)))
}

/// The machine's memory in use and in all, from `/proc/meminfo` (kB lines).
pub fn meminfo(text: &str) -> Option<(u64, u64)> {
    let kb = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let total = kb("MemTotal")? * 1024;
    let available = kb("MemAvailable")? * 1024;
    Some((total.saturating_sub(available), total))
}

/// Used and total bytes of the filesystem `path` is on, as `df` counts them.
pub fn disk(path: &Path) -> Option<DiskUsage> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path; `st` is written by statvfs on success.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    let block = st.f_frsize as u64;
    let total = st.f_blocks as u64 * block;
    let used = total.saturating_sub(st.f_bfree as u64 * block);
    Some(DiskUsage {
        path: path.display().to_string(),
        used_bytes: used,
        total_bytes: total,
    })
}

/// Samples one source; keeps the previous CPU reading to turn time into cores busy.
pub struct Sampler {
    source: Source,
    disks: Vec<PathBuf>,
    last_cpu: Option<(std::time::Instant, u64)>,
}

impl Sampler {
    /// Samples `source`, measuring the filesystems of `disks` (the home directory first).
    pub fn new(source: Source, disks: Vec<PathBuf>) -> Sampler {
        Sampler {
            source,
            disks,
            last_cpu: None,
        }
    }

    /// One sample; CPU is averaged since the previous call (0 on the first).
    pub fn sample(&mut self) -> Usage {
        let now = std::time::Instant::now();
        let cpu = self.source.cpu_time_ns();
        let cpu_used_cores = match (self.last_cpu, cpu) {
            (Some((then, before)), Some(after)) => {
                let wall = now.duration_since(then).as_nanos() as f64;
                if wall > 0.0 {
                    after.saturating_sub(before) as f64 / wall
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        self.last_cpu = cpu.map(|c| (now, c));
        let (memory_used_bytes, memory_total_bytes) = self.source.memory().unwrap_or((0, 0));
        let cpu_total_cores = self.source.cores();
        Usage {
            collected_at: crate::model::now_ms(),
            cpu_used_cores: cpu_used_cores.min(cpu_total_cores),
            cpu_total_cores,
            memory_used_bytes,
            memory_total_bytes,
            disks: self.disks.iter().filter_map(|p| disk(p)).collect(),
        }
    }
}

/// The workspace's home (where sessions start), then each enabled monitored volume,
/// without repeats.
pub fn disk_paths(home: &Path, spec: &super::protocol::AgentSpec) -> Vec<PathBuf> {
    let mut paths = vec![home.to_path_buf()];
    for v in &spec.resources_monitoring.volumes {
        let p = PathBuf::from(&v.path);
        if v.enabled && p.is_absolute() && !paths.contains(&p) {
            paths.push(p);
        }
    }
    paths
}

/// Reports a sample every `EVERY` until the agent stops; the first a second after start,
/// once the CPU counter has a reading to compare with.
pub async fn watch(reporter: Reporter, disks: Vec<PathBuf>) {
    let mut sampler = Sampler::new(Source::detect(), disks);
    let mut wait = Duration::from_secs(1);
    let mut first = true;
    loop {
        let Ok((s, usage)) = tokio::task::spawn_blocking(move || {
            let u = sampler.sample();
            (sampler, u)
        })
        .await
        else {
            return;
        };
        sampler = s;
        // The first sample only primes the CPU counter.
        if !std::mem::take(&mut first) {
            reporter.usage(usage);
        }
        tokio::time::sleep(wait).await;
        wait = EVERY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_v2_files() {
        let stat = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n";
        assert_eq!(cgroup2_cpu_ns(stat), Some(2_500_000_000));
        assert_eq!(cgroup2_quota("200000 100000\n"), Some(2.0));
        assert_eq!(cgroup2_quota("max 100000\n"), None);
        let mem = "anon 1000\nfile 5000\ninactive_file 3000\nactive_file 2000\n";
        assert_eq!(stat_value(mem, "inactive_file"), Some(3000));
        assert_eq!(stat_value(mem, "file"), Some(5000), "whole keys only");
        assert_eq!(stat_value(mem, "missing"), None);
    }

    #[test]
    fn cgroup_v1_files() {
        assert_eq!(cgroup1_quota("-1\n", "100000\n"), None);
        assert_eq!(cgroup1_quota("50000\n", "100000\n"), Some(0.5));
        let mem = "cache 10\ninactive_file 7\ntotal_inactive_file 9\n";
        assert_eq!(stat_value(mem, "total_inactive_file"), Some(9));
    }

    #[test]
    fn proc_files() {
        let stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 0 1 1 0 0\n";
        // user+nice+system+irq+softirq+steal = 161 ticks of 10 ms.
        assert_eq!(proc_stat_cpu_ns(stat, 100), Some(1_610_000_000));
        let meminfo_text =
            "MemTotal:       16000 kB\nMemFree:  1000 kB\nMemAvailable:   12000 kB\n";
        assert_eq!(meminfo(meminfo_text), Some((4000 * 1024, 16000 * 1024)));
        assert_eq!(meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn a_cgroup_v2_directory_is_read_as_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w("cpu.stat", "usage_usec 1000000\n");
        w("cpu.max", "50000 100000\n");
        w("memory.current", "300000\n");
        w("memory.stat", "inactive_file 100000\n");
        w("memory.max", "1000000\n");
        let mut s = Sampler::new(Source::CgroupV2(dir.path().into()), vec![dir.path().into()]);
        let first = s.sample();
        assert_eq!(first.cpu_used_cores, 0.0, "no previous reading yet");
        assert_eq!(first.cpu_total_cores, 0.5);
        assert_eq!(
            (first.memory_used_bytes, first.memory_total_bytes),
            (200000, 1000000)
        );
        assert_eq!(first.disks.len(), 1);
        assert!(first.disks[0].total_bytes >= first.disks[0].used_bytes);
        // 10 ms of CPU time more; the average can only be positive and at most the quota.
        w("cpu.stat", "usage_usec 1010000\n");
        std::thread::sleep(Duration::from_millis(20));
        let second = s.sample();
        assert!(
            second.cpu_used_cores > 0.0 && second.cpu_used_cores <= 0.5,
            "{second:?}"
        );
        // No limit: the machine's memory is.
        w("memory.max", "max\n");
        let machine = meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap()).unwrap();
        assert_eq!(s.sample().memory_total_bytes, machine.1);
    }

    #[test]
    fn the_host_is_measured_from_proc() {
        let mut s = Sampler::new(Source::Host, vec!["/".into()]);
        s.sample();
        let u = s.sample();
        assert!(u.memory_total_bytes > 0 && u.memory_used_bytes <= u.memory_total_bytes);
        assert_eq!(
            u.cpu_total_cores,
            std::thread::available_parallelism().unwrap().get() as f64
        );
        assert!(u.disks[0].total_bytes > 0);
    }
}
