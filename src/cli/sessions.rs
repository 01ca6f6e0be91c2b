//! Getting into a workspace: `hangar port-forward`. Every session is a WebSocket to the
//! server, which relays it through the agent's tunnel.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::net::{TcpListener, TcpStream};

use super::session;
use crate::client::Client;
use crate::model::WorkspaceStatus;
use crate::tunnel;
use crate::wire::agents::AgentView;

#[derive(Debug, Args)]
pub struct PortForwardArgs {
    /// The workspace: NAME, NAME.AGENT, OWNER/NAME or OWNER/NAME.AGENT.
    pub workspace: String,
    /// A TCP port to forward: LOCAL:REMOTE, or PORT for the same on both ends. Repeat it
    /// for several.
    #[arg(long = "tcp", short = 'p', required = true)]
    pub tcp: Vec<String>,
    /// Fail on a stopped workspace instead of starting it.
    #[arg(long)]
    pub disable_autostart: bool,
}

/// `LOCAL:REMOTE` or `PORT`.
pub fn parse_forward(spec: &str) -> anyhow::Result<(u16, u16)> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| format!("{p:?} in --tcp {spec} is not a port (1-65535)"))
    };
    match spec.split_once(':') {
        Some((local, remote)) => Ok((port(local)?, port(remote)?)),
        None => {
            let p = port(spec)?;
            Ok((p, p))
        }
    }
}

/// How long a session waits for a workspace's agent to connect.
const AGENT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The agent a `WORKSPACE[.AGENT]` names (the named one, or the only one), ready for a
/// session, as `coder ssh` does it: a workspace being built is waited for, a stopped one
/// is started, and a connecting agent is waited for. What it waits on goes to stderr.
pub async fn find_agent(
    client: &Client,
    target: &str,
    autostart: bool,
) -> anyhow::Result<(String, AgentView)> {
    let (workspace, agent) = match target.rsplit_once('.') {
        Some((w, a)) => (w, Some(a)),
        None => (target, None),
    };
    let mut ws = client.workspace(workspace).await?;
    if ws.status.is_busy() && ws.latest_build.transition == crate::model::Transition::Start {
        eprintln!("Waiting for {workspace} to start…");
        client.follow_job(&ws.latest_build.job.id, |_| {}).await?;
        ws = client.workspace(workspace).await?;
    }
    if autostart
        && matches!(
            ws.status,
            WorkspaceStatus::Stopped | WorkspaceStatus::Canceled
        )
        && !ws.external
    {
        eprintln!("{workspace} is {}: starting it…", ws.status);
        let b = client
            .build_workspace(
                workspace,
                &crate::wire::workspaces::BuildRequest {
                    transition: Some(crate::model::Transition::Start),
                    ..Default::default()
                },
            )
            .await?;
        client.follow_job(&b.job.id, |_| {}).await?;
        ws = client.workspace(workspace).await?;
    }
    match ws.status {
        WorkspaceStatus::Running => {}
        WorkspaceStatus::Failed => anyhow::bail!(
            "{workspace}'s last build ({}) failed: see `hangar logs {workspace}`, then `hangar start {workspace}`",
            ws.latest_build.transition
        ),
        other => anyhow::bail!(
            "{workspace} is {other}: sessions need it running (`hangar start {workspace}`)"
        ),
    }
    let pick = |ws: &crate::wire::workspaces::WorkspaceView| -> anyhow::Result<AgentView> {
        let agents: Vec<&AgentView> = ws.agents().collect();
        let found = match agent {
            Some(name) => agents
                .iter()
                .find(|a| a.name == name)
                .copied()
                .with_context(|| {
                    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
                    format!(
                        "{workspace} has no agent {name:?}; its agents: {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    )
                })?,
            None => match agents.as_slice() {
                [one] => *one,
                [] => anyhow::bail!("{workspace} has no agent in its latest build"),
                many => anyhow::bail!(
                    "{workspace} has several agents ({}): name one as {workspace}.AGENT",
                    many.iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        };
        Ok(found.clone())
    };
    let mut found = pick(&ws)?;
    let deadline = std::time::Instant::now() + AGENT_WAIT;
    let mut said = false;
    while found.status != crate::model::agent::AgentStatus::Connected {
        if std::time::Instant::now() > deadline
            || found.status == crate::model::agent::AgentStatus::Timeout
        {
            let hint = if ws.external {
                format!("start it on its machine (`hangar external-workspaces agent-instructions {workspace}`)")
            } else {
                format!("if its machine stopped, `hangar restart {workspace}` makes a new one")
            };
            anyhow::bail!(
                "the agent {} of {workspace} is {}: {hint}",
                found.name,
                found.status
            );
        }
        if !said {
            eprintln!(
                "Waiting for the agent {} of {workspace} to connect…",
                found.name
            );
            said = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        ws = client.workspace(workspace).await?;
        found = pick(&ws)?;
    }
    Ok((format!("{}/{}.{}", ws.owner, ws.name, found.name), found))
}

pub async fn port_forward(args: PortForwardArgs) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let forwards = args
        .tcp
        .iter()
        .map(|s| parse_forward(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (place, agent) = find_agent(&client, &args.workspace, !args.disable_autostart).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (local, remote) in forwards {
        let listener = TcpListener::bind(("127.0.0.1", local))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{local}"))?;
        println!("Forwarding 127.0.0.1:{local} to port {remote} of {place}");
        let (client, agent_id) = (client.clone(), agent.id.clone());
        tasks.spawn(async move {
            loop {
                let (conn, _) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("accepting on 127.0.0.1:{local}: {e}");
                        continue;
                    }
                };
                let (client, agent_id) = (client.clone(), agent_id.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward_one(&client, &agent_id, remote, conn).await {
                        eprintln!("127.0.0.1:{local} -> port {remote}: {e:#}");
                    }
                });
            }
        });
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    tasks.abort_all();
    Ok(ExitCode::SUCCESS)
}

/// One forwarded connection, for as long as both ends keep it.
async fn forward_one(
    client: &Client,
    agent_id: &str,
    remote: u16,
    mut conn: TcpStream,
) -> anyhow::Result<()> {
    let _ = conn.set_nodelay(true);
    let socket = client.dial_tcp(agent_id, remote).await?;
    let tunnel::Split {
        control_rx: _control_rx,
        control_tx: _control_tx,
        mut mux,
        ..
    } = tunnel::split(socket);
    tunnel::relay(&mut conn, &mut mux).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse_as_coder_writes_them() {
        assert_eq!(parse_forward("8080").unwrap(), (8080, 8080));
        assert_eq!(parse_forward("9000:80").unwrap(), (9000, 80));
        for bad in ["0", "x", "70000", "1:2:3", ":80"] {
            assert!(parse_forward(bad).is_err(), "{bad}");
        }
    }
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// Speak raw SSH on stdin/stdout, for OpenSSH's ProxyCommand (what `config-ssh` sets up).
    #[arg(long)]
    pub stdio: bool,
    /// With --stdio: the name given is an SSH host alias starting with this prefix.
    #[arg(long, requires = "stdio")]
    pub ssh_host_prefix: Option<String>,
    /// Fail on a stopped workspace instead of starting it.
    #[arg(long)]
    pub disable_autostart: bool,
    /// Forward the local SSH agent (OpenSSH's -A).
    #[arg(short = 'A', long)]
    pub forward_agent: bool,
    /// The workspace: NAME, NAME.AGENT, OWNER/NAME or OWNER/NAME.AGENT.
    pub workspace: String,
    /// A command to run instead of a login shell; its output and exit status come back.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The SSH host alias prefix `config-ssh` writes: `ssh hangar.NAME`.
pub const HOST_PREFIX: &str = "hangar.";

/// OpenSSH options for a host reached through `hangar ssh --stdio`: its host key is made
/// per agent start and the tunnel already authenticated the user, so there is nothing
/// for known_hosts to protect.
const SSH_OPTIONS: &[(&str, &str)] = &[
    ("StrictHostKeyChecking", "no"),
    ("UserKnownHostsFile", "/dev/null"),
    ("LogLevel", "ERROR"),
];

/// `text` quoted for a POSIX shell (OpenSSH runs ProxyCommand with one).
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// This very binary, as ProxyCommand and config-ssh name it.
fn this_binary() -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding the hangar binary")?;
    Ok(exe.display().to_string())
}

pub async fn ssh(args: SshArgs) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let target = match &args.ssh_host_prefix {
        Some(prefix) => args
            .workspace
            .strip_prefix(prefix.as_str())
            .unwrap_or(&args.workspace)
            .to_string(),
        None => args.workspace.clone(),
    };
    let (place, agent) = find_agent(&client, &target, !args.disable_autostart).await?;
    if args.stdio {
        return stdio(&client, &agent.id, &place).await;
    }
    // Interactive use goes through OpenSSH, which does terminals, resizes, escapes and
    // exit statuses; this binary is its ProxyCommand.
    let proxy = format!(
        "{} ssh --stdio {}",
        shell_quote(&this_binary()?),
        shell_quote(&place)
    );
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-o").arg(format!("ProxyCommand={proxy}"));
    for (k, v) in SSH_OPTIONS {
        cmd.arg("-o").arg(format!("{k}={v}"));
    }
    if args.forward_agent {
        cmd.arg("-A");
    }
    // A command run from a terminal gets one, as `coder ssh` gives it (`top`, `vim`).
    use std::io::IsTerminal;
    if !args.command.is_empty() && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
    {
        cmd.arg("-t");
    }
    cmd.arg(format!("{HOST_PREFIX}{}", place.replace('/', ".")));
    if !args.command.is_empty() {
        cmd.arg("--").args(&args.command);
    }
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    anyhow::bail!(
        "cannot run OpenSSH's ssh ({err}): install openssh-client, or use `hangar ssh --stdio` as a ProxyCommand"
    )
}

/// Relays stdin/stdout to the agent's SSH server until either side ends; says so on
/// stderr when the workspace's side ended first (the agent went away, the workspace
/// stopped).
async fn stdio(client: &Client, agent_id: &str, place: &str) -> anyhow::Result<ExitCode> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = client.dial_ssh(agent_id).await?;
    let tunnel::Split {
        control_rx: _control_rx,
        control_tx: _control_tx,
        mux,
        ..
    } = tunnel::split(socket);
    let (mut from_agent, mut to_agent) = tokio::io::split(mux);
    let upstream = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut to_agent).await;
        let _ = to_agent.shutdown().await;
    });
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = from_agent.read(&mut buf).await.unwrap_or_default();
        if n == 0 {
            break;
        }
        stdout.write_all(&buf[..n]).await?;
        stdout.flush().await?;
    }
    // A connection that ended normally is followed at once by OpenSSH closing our
    // stdin; one the workspace's side cut is not: only then is there something to say.
    let finished = tokio::time::timeout(std::time::Duration::from_secs(2), upstream)
        .await
        .is_ok();
    if !finished {
        eprintln!(
            "hangar: the SSH connection to {place} closed (its agent disconnected, the workspace stopped, or the server restarted): see `hangar show`, then try again"
        );
        // Exit now: the runtime would otherwise wait for the blocking read of stdin,
        // which OpenSSH keeps open.
        std::process::exit(255);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ConfigSshArgs {
    /// Write without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Print the new file instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove Hangar's block instead.
    #[arg(long)]
    pub remove: bool,
    /// The SSH config file to manage.
    #[arg(long, default_value = "~/.ssh/config")]
    pub ssh_config_file: String,
}

const BLOCK_START: &str = "# ------------START-HANGAR------------";
const BLOCK_END: &str = "# ------------END-HANGAR------------";

/// `config` with Hangar's managed block replaced by `block` (or removed when `None`);
/// everything else is kept as it was.
pub fn with_block(config: &str, block: Option<&str>) -> String {
    let mut out = String::new();
    let mut rest = config;
    if let (Some(start), Some(end)) = (config.find(BLOCK_START), config.find(BLOCK_END)) {
        if start < end {
            out.push_str(&config[..start]);
            rest = config[end + BLOCK_END.len()..].trim_start_matches('\n');
        }
    } else {
        out.push_str(config);
        rest = "";
    }
    if let Some(block) = block {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
        }
        out.push_str(block);
        if !rest.is_empty() {
            out.push('\n');
        }
    }
    out.push_str(rest);
    out
}

/// The managed block: every `hangar.NAME[.AGENT]` host goes through `hangar ssh --stdio`.
/// Paths are shell-quoted and their `%` doubled (OpenSSH expands `%` tokens in
/// ProxyCommand); a path with a control character would end the line and add config of
/// its own, so it is refused.
pub fn ssh_block(binary: &str, config_dir: Option<&str>) -> anyhow::Result<String> {
    for path in std::iter::once(binary).chain(config_dir) {
        anyhow::ensure!(
            !path.chars().any(char::is_control),
            "{path:?} has a control character: it cannot go into an SSH config"
        );
    }
    let token = |text: &str| shell_quote(text).replace('%', "%%");
    let env = config_dir
        .map(|d| format!("env HANGAR_CONFIG_DIR={} ", token(d)))
        .unwrap_or_default();
    let mut block = format!(
        "{BLOCK_START}\n# Written by `hangar config-ssh`: run it again to update, with --remove to remove.\nHost {HOST_PREFIX}*\n  ProxyCommand {env}{} ssh --stdio --ssh-host-prefix {HOST_PREFIX} '%h'\n",
        token(binary)
    );
    for (k, v) in SSH_OPTIONS {
        block.push_str(&format!("  {k} {v}\n"));
    }
    block.push_str(BLOCK_END);
    block.push('\n');
    Ok(block)
}

pub async fn config_ssh(args: ConfigSshArgs) -> anyhow::Result<ExitCode> {
    let path = match args.ssh_config_file.strip_prefix("~/") {
        Some(rest) => std::path::PathBuf::from(
            std::env::var_os("HOME").context("HOME is not set: pass --ssh-config-file")?,
        )
        .join(rest),
        None => std::path::PathBuf::from(&args.ssh_config_file),
    };
    let current = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let block = if args.remove {
        None
    } else {
        // Checks the session now, so the ProxyCommand will work later.
        let client = session::client()?;
        client.me().await?;
        let config_dir = std::env::var("HANGAR_CONFIG_DIR").ok();
        Some(ssh_block(&this_binary()?, config_dir.as_deref())?)
    };
    let updated = with_block(&current, block.as_deref());
    if args.dry_run {
        print!("{updated}");
        return Ok(ExitCode::SUCCESS);
    }
    if updated == current {
        println!("{} is up to date.", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("Update {}? [y/N] ", path.display());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Nothing written.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    if args.remove {
        println!("Removed Hangar's hosts from {}.", path.display());
    } else {
        println!(
            "Wrote {}: `ssh {HOST_PREFIX}WORKSPACE` (or {HOST_PREFIX}WORKSPACE.AGENT) now works, and so do scp, sftp, rsync and VS Code Remote-SSH.",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn the_block_is_added_replaced_and_removed_leaving_the_rest() {
        let mine = "Host work\n  User me\n";
        let block = ssh_block("/usr/bin/hangar", None).unwrap();
        let added = with_block(mine, Some(&block));
        assert!(
            added.starts_with(mine) && added.contains("Host hangar.*"),
            "{added}"
        );
        assert!(added
            .contains("ProxyCommand '/usr/bin/hangar' ssh --stdio --ssh-host-prefix hangar. '%h'"));
        assert_eq!(
            with_block(&added, Some(&block)),
            added,
            "re-running changes nothing"
        );
        let other = ssh_block("/opt/it's/hangar", Some("/tmp/cfg")).unwrap();
        let replaced = with_block(&format!("{added}Host after\n"), Some(&other));
        assert_eq!(replaced.matches(BLOCK_START).count(), 1);
        assert!(
            replaced.contains("'/opt/it'\\''s/hangar'")
                && replaced.contains("env HANGAR_CONFIG_DIR='/tmp/cfg'")
        );
        assert!(replaced.ends_with("Host after\n"), "{replaced}");
        let removed = with_block(&replaced, None);
        assert_eq!(removed, format!("{mine}\nHost after\n"));
        assert_eq!(with_block("", None), "");
    }

    #[test]
    fn hostile_paths_cannot_add_config() {
        let err =
            ssh_block("/bin/hangar", Some("/tmp/x\nHost *\n  LocalCommand evil")).unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
        let block = ssh_block("/opt/100%h/hangar", Some("/tmp/dir%h")).unwrap();
        assert!(
            block.contains("'/opt/100%%h/hangar'") && block.contains("'/tmp/dir%%h'"),
            "{block}"
        );
        assert_eq!(block.matches("\nHost ").count(), 1);
    }
}

#[derive(Debug, Args)]
pub struct PingArgs {
    /// The workspace: NAME, NAME.AGENT, OWNER/NAME or OWNER/NAME.AGENT.
    pub workspace: String,
    /// How many round trips.
    #[arg(short = 'n', long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub num: u32,
}

/// Round trips through the whole path: this machine → the server → the agent's tunnel →
/// the agent, and back.
pub async fn ping(args: PingArgs) -> anyhow::Result<ExitCode> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let client = session::client()?;
    // Diagnostics measure what is there: they never start a workspace.
    let (place, agent) = find_agent(&client, &args.workspace, false).await?;
    let t = std::time::Instant::now();
    let socket = client.dial_echo(&agent.id).await?;
    println!(
        "Connected to {place} through {} in {:.1} ms (you -> server -> agent tunnel -> agent)",
        client.url(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let tunnel::Split {
        control_rx: _control_rx,
        control_tx: _control_tx,
        mut mux,
        ..
    } = tunnel::split(socket);
    let mut times = Vec::new();
    for i in 0..args.num {
        let probe = u64::from(i).to_be_bytes();
        let t = std::time::Instant::now();
        mux.write_all(&probe).await?;
        let mut back = [0u8; 8];
        mux.read_exact(&mut back)
            .await
            .context("the agent stopped answering")?;
        anyhow::ensure!(back == probe, "the agent answered with other bytes");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!("pong from {place} in {ms:.2} ms");
        times.push(ms);
        if i + 1 < args.num {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let min = times.iter().cloned().fold(f64::MAX, f64::min);
    let max = times.iter().cloned().fold(0.0, f64::max);
    let avg = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{} round trips: min {min:.2} ms, avg {avg:.2} ms, max {max:.2} ms",
        times.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct SpeedtestArgs {
    /// The workspace: NAME, NAME.AGENT, OWNER/NAME or OWNER/NAME.AGENT.
    pub workspace: String,
    /// MiB to send (the agent sends them back at the same time).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub mib: u64,
}

/// Sends `--mib` MiB to the agent, which echoes them, both directions at once.
pub async fn speedtest(args: SpeedtestArgs) -> anyhow::Result<ExitCode> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let client = session::client()?;
    // Diagnostics measure what is there: they never start a workspace.
    let (place, agent) = find_agent(&client, &args.workspace, false).await?;
    let socket = client.dial_echo(&agent.id).await?;
    let tunnel::Split {
        control_rx: _control_rx,
        control_tx: _control_tx,
        mux,
        ..
    } = tunnel::split(socket);
    let (mut r, mut w) = tokio::io::split(mux);
    let total = args.mib * 1024 * 1024;
    let t = std::time::Instant::now();
    let sender = tokio::spawn(async move {
        let chunk = vec![0x5au8; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            w.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        w.shutdown().await
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < total {
        let n = r.read(&mut buf).await?;
        anyhow::ensure!(
            n > 0,
            "the agent closed the stream after {got} of {total} bytes"
        );
        got += n as u64;
    }
    sender.await??;
    let secs = t.elapsed().as_secs_f64();
    let rate = args.mib as f64 / secs;
    println!(
        "{place}: {} MiB up and {} MiB down at once in {secs:.2} s: {rate:.1} MiB/s ({:.0} Mbit/s) each way",
        args.mib,
        args.mib,
        rate * 8.0 * 1.048_576
    );
    Ok(ExitCode::SUCCESS)
}
