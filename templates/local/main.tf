# A workspace on the machine that runs Hangar's provisioner.
#
# What it teaches:
#   * `data "hangar_workspace"`, `data "hangar_workspace_owner"`: who and what this build
#     is for. Their values come from the build runner (outside Hangar: safe defaults).
#   * Persistent vs ephemeral: resources without `count = start_count` survive a stop
#     (the home directory); resources with it exist only while the workspace runs (the
#     agent process). A stop build destroys the ephemeral ones, a start build recreates
#     them, a delete build destroys everything.
#   * `hangar_agent`: the agent's `init_script` + `token`, run on the "machine" (here: a
#     background process on this host).
#
# Only `terraform_data` and Hangar's provider are used, so it runs without downloads.

terraform {
  required_providers {
    hangar = {
      source = "hangar/hangar"
    }
  }
}

data "hangar_workspace" "me" {}

data "hangar_workspace_owner" "me" {}

# A parameter the owner chooses when creating the workspace. `mutable = false` (the
# default) because moving the home directory would orphan the old one.
data "hangar_parameter" "home_base" {
  name         = "home_base"
  display_name = "Home directory base"
  description  = "Absolute directory under which this workspace's home directory is created."
  type         = "string"
  default      = "/tmp/hangar-workspaces"
  icon         = "/icon/folder.svg"
  order        = 1

  validation {
    regex = "^/[^\\s]*$"
    error = "Use an absolute path without spaces, got {value}."
  }
}

locals {
  # One directory per owner and workspace, so workspaces never share files.
  home = "${data.hangar_parameter.home_base.value}/${data.hangar_workspace_owner.me.name}/${data.hangar_workspace.me.name}"
  # Where the agent process keeps its pidfile and log.
  run_dir = "${local.home}/.hangar"
}

# Persistent: no `count`, so stop builds keep it and only deleting the workspace removes
# it. `input` is echoed to `output`, which the destroy provisioner reads through `self`
# (destroy-time provisioners may not reference anything else).
resource "terraform_data" "home" {
  input = local.home

  provisioner "local-exec" {
    command     = "mkdir -p \"$HOME_DIR\""
    environment = { HOME_DIR = self.output }
  }

  provisioner "local-exec" {
    when = destroy
    # Guard against an empty or root path: this is `rm -rf`.
    command     = "[ -n \"$HOME_DIR\" ] && [ \"$HOME_DIR\" != / ] && rm -rf -- \"$HOME_DIR\" || true"
    environment = { HOME_DIR = self.output }
  }
}

resource "hangar_agent" "main" {
  os   = "linux"
  arch = "amd64" # the host's architecture; use "arm64" on ARM machines
  dir  = local.home
  env = {
    HANGAR_WORKSPACE_HOME = local.home
    # Sessions start in the workspace's own home, not the home of the user running the
    # agent (one user runs every local workspace: see the README's trust model).
    HOME = local.home
  }

  # Runs once the agent is up. Keep it short and idempotent: it runs on every start.
  startup_script = <<-EOT
    #!/bin/sh
    set -e
    [ -f "${local.home}/.hangar-welcome" ] || echo "Welcome to ${data.hangar_workspace.me.name}" > "${local.home}/.hangar-welcome"
    echo "home directory ${local.home} is ready"
  EOT

  # The agent reports CPU, memory and disk use by itself; the dashboard raises an alert
  # when memory or the home directory's disk is fuller than this.
  resources_monitoring {
    memory {
      enabled   = true
      threshold = 95
    }
    volume {
      path      = local.home
      enabled   = true
      threshold = 95
    }
  }

  # Live values the agent reports to the dashboard.
  metadata {
    key          = "home_usage"
    display_name = "Home directory size"
    script       = "du -sh \"${local.home}\" | cut -f1"
    interval     = 60
    timeout      = 5
  }
}

# Ephemeral: `count = start_count` is 1 for start builds and 0 for stop/delete, so the
# process runs only while the workspace is started.
resource "terraform_data" "agent_process" {
  count = data.hangar_workspace.me.start_count

  # Each build issues a new agent token (the old one stops working), so a new build
  # restarts the process with the new token. The token is sensitive: terraform hides it.
  triggers_replace = [hangar_agent.main.id, hangar_agent.main.token]
  input            = local.run_dir

  provisioner "local-exec" {
    # The init script is empty outside a Hangar server (e.g. `terraform plan` on a
    # laptop, or tests): then there is nothing to start. Otherwise start it in its own
    # session (so the destroy provisioner can stop its whole process group), detached
    # from terraform's pipes (or terraform would wait for it), and record its pid.
    command     = <<-EOT
      set -eu
      mkdir -p "$RUN_DIR"
      if [ -n "$INIT_SCRIPT" ]; then
        cd "$HOME_DIR"
        if command -v setsid >/dev/null; then run=setsid; else run=nohup; fi
        # A clean environment: the agent and its sessions get none of the build's
        # variables (terraform's, Hangar's parameters, this script's own).
        $run env -i HOME="$HOME" PATH="$PATH" USER="$${USER:-}" LOGNAME="$${LOGNAME:-}" \
          SHELL="$${SHELL:-/bin/sh}" LANG="$${LANG:-C.UTF-8}" \
          HANGAR_AGENT_TOKEN="$HANGAR_AGENT_TOKEN" \
          sh -c "$INIT_SCRIPT" </dev/null >"$RUN_DIR/agent.log" 2>&1 &
        echo $! >"$RUN_DIR/agent.pid"
      else
        echo "hangar_agent.main has no init script (no Hangar server); not starting an agent"
      fi
    EOT
    environment = {
      INIT_SCRIPT        = hangar_agent.main.init_script
      HANGAR_AGENT_TOKEN = hangar_agent.main.token
      HANGAR_URL         = data.hangar_workspace.me.access_url
      RUN_DIR            = local.run_dir
      HOME_DIR           = local.home
    }
  }

  provisioner "local-exec" {
    when        = destroy
    command     = <<-EOT
      pidfile="$RUN_DIR/agent.pid"
      if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        # The whole process group (the agent and what its scripts started); dash's kill
        # takes no `--`, so the system's kill does it.
        /bin/kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        rm -f "$pidfile"
      fi
    EOT
    environment = { RUN_DIR = self.output }
  }

  depends_on = [terraform_data.home]
}

# An app the dashboard offers: a command opens a terminal running it. (Workspaces of this
# template share the host's ports, so a web app on a fixed port would collide between
# them; the docker template's workspaces each have their own network.)
resource "hangar_app" "top" {
  agent_id     = hangar_agent.main.id
  slug         = "top"
  display_name = "Processes"
  command      = "top"
  icon         = "/icon/terminal.svg"
}

# Facts shown next to the home directory in the dashboard.
resource "hangar_metadata" "home" {
  resource_id = terraform_data.home.id
  icon        = "/icon/folder.svg"
  daily_cost  = 0

  item {
    key   = "path"
    value = local.home
  }
  item {
    key   = "base"
    value = data.hangar_parameter.home_base.value
  }
}
