//! The TCP ports listening in the workspace, read from `/proc/net/tcp` and `tcp6` every
//! few seconds and reported whenever they change (`show` and the workspace page list
//! them; port-forwards and the port proxy reach them).

use std::collections::BTreeSet;
use std::time::Duration;

use super::Reporter;

const EVERY: Duration = Duration::from_secs(3);
/// The TCP state number of a listening socket.
const LISTEN: &str = "0A";
/// 127.0.0.11, as `/proc/net/tcp` writes it: Docker's DNS resolver in a container on a
/// user-defined network listens there on a random port, which is nobody's app.
const DOCKER_DNS: &str = "0B00007F";

/// The listening ports in one `/proc/net/tcp`-format table.
pub fn listening(table: &str) -> BTreeSet<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != LISTEN {
                return None;
            }
            let (address, port) = local.rsplit_once(':')?;
            if address == DOCKER_DNS {
                return None;
            }
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

fn scan() -> BTreeSet<u16> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| listening(&t))
        .collect()
}

/// Reports the listening ports when they change, until the agent stops.
pub async fn watch(reporter: Reporter) {
    let mut last: Option<BTreeSet<u16>> = None;
    loop {
        let now = tokio::task::spawn_blocking(scan).await.unwrap_or_default();
        if last.as_ref() != Some(&now) {
            reporter.ports(now.iter().copied().collect());
            last = Some(now);
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listening_sockets_count() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 20 4 30 10 -1
   3: 0B00007F:B5FD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0
";
        assert_eq!(listening(table), BTreeSet::from([22, 8080]));
        assert!(listening("").is_empty());
    }

    #[test]
    fn this_machine_has_a_table() {
        // The test process itself listens: the scan must see it.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(scan().contains(&port), "{port} not in {:?}", scan());
    }
}
