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

/// The agent a `WORKSPACE[.AGENT]` names: the named one, or the only one.
pub async fn find_agent(client: &Client, target: &str) -> anyhow::Result<(String, AgentView)> {
    let (workspace, agent) = match target.rsplit_once('.') {
        Some((w, a)) => (w, Some(a)),
        None => (target, None),
    };
    let ws = client.workspace(workspace).await?;
    if ws.status != WorkspaceStatus::Running {
        anyhow::bail!(
            "{workspace} is {}: start it with `hangar start {workspace}`",
            ws.status
        );
    }
    let agents: Vec<&AgentView> = ws.agents().collect();
    let found = match agent {
        Some(name) => agents.iter().find(|a| a.name == name).copied().with_context(|| {
            let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
            format!(
                "{workspace} has no agent {name:?}; its agents: {}",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )
        })?,
        None => match agents.as_slice() {
            [one] => *one,
            [] => anyhow::bail!(
                "{workspace} has no agent in its latest build ({}): start it with `hangar start {workspace}`",
                ws.status
            ),
            many => anyhow::bail!(
                "{workspace} has several agents ({}): name one as {workspace}.AGENT",
                many.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    Ok((
        format!("{}/{}.{}", ws.owner, ws.name, found.name),
        found.clone(),
    ))
}

pub async fn port_forward(args: PortForwardArgs) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let forwards = args
        .tcp
        .iter()
        .map(|s| parse_forward(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (place, agent) = find_agent(&client, &args.workspace).await?;
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
