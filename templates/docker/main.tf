# Each workspace a Docker container with Hangar's agent inside, as Coder's `docker`
# starter template does, driven through the `docker` CLI (no provider to download, so it
# runs in air-gapped sites too; examples/templates/docker-kreuzwerker does the same with
# the kreuzwerker/docker provider).
#
# What it makes, per workspace, all labelled hangar.workspace_id and hangar.owner:
#   * a network  hangar-OWNER.WORKSPACE       persistent: workspaces cannot reach each other
#   * a volume   hangar-OWNER.WORKSPACE-home  persistent: the home directory, /home/dev
#   * a container hangar-OWNER.WORKSPACE      ephemeral: removed on stop, made on start
# (The dot cannot be in a name, so `ann`/`lee-dev` and `ann-lee`/`dev` never share one.)
# Deleting the workspace removes all three; every step succeeds when its object is
# already there (create) or already gone (destroy), and touches only objects labelled
# with this workspace's id (docker-object.sh).
#
# The server must be reachable from containers: start it on an address they reach
# (`hangar server --address 0.0.0.0:3000`); the agent dials the host as
# host.docker.internal when the access URL says localhost or 127.0.0.1.

terraform {
  required_providers {
    hangar = {
      source = "hangar/hangar"
    }
  }
}

data "hangar_workspace" "me" {}

data "hangar_workspace_owner" "me" {}

data "hangar_parameter" "image" {
  name         = "image"
  display_name = "Image"
  description  = "A Docker image this server's engine has, with a user `dev` (uid 1000). Empty: Hangar's Debian image, built on first use. Any image the engine has can be named: on a shared engine, make this a list of options."
  type         = "string"
  default      = ""
  mutable      = true
  order        = 1

  validation {
    regex = "^([a-z0-9][a-z0-9._/:@-]*)?$"
    error = "An image reference is lowercase letters, digits and . _ / : @ -, got {value}."
  }
}

data "hangar_parameter" "cpus" {
  name         = "cpus"
  display_name = "CPUs"
  description  = "Cores the workspace may use (docker run --cpus)."
  type         = "number"
  default      = 2
  mutable      = true
  order        = 2

  validation {
    min = 1
    max = 64
  }
}

data "hangar_parameter" "memory_gb" {
  name         = "memory_gb"
  display_name = "Memory (GB)"
  description  = "Memory limit of the workspace (docker run --memory)."
  type         = "number"
  default      = 4
  mutable      = true
  order        = 3

  validation {
    min = 1
    max = 256
  }
}

data "hangar_parameter" "git_repo" {
  name         = "git_repo"
  display_name = "Git repository"
  description  = "Cloned into ~/repo on the first start, from inside the container (a URL it reaches: https://, ssh://, or git://host.docker.internal/...; empty: none)."
  type         = "string"
  default      = ""
  mutable      = true
  order        = 4
}

data "hangar_parameter" "dotfiles_uri" {
  name         = "dotfiles_uri"
  display_name = "Dotfiles repository"
  description  = "A git repository cloned into ~/.dotfiles on the first start, from inside the container; its install.sh runs if it has one (empty: none)."
  type         = "string"
  default      = ""
  mutable      = true
  order        = 5
}

locals {
  name   = "hangar-${data.hangar_workspace_owner.me.name}.${data.hangar_workspace.me.name}"
  image  = data.hangar_parameter.image.value != "" ? data.hangar_parameter.image.value : "hangar-workspace:bookworm-1"
  build  = data.hangar_parameter.image.value == ""
  labels = "--label hangar.workspace_id=${data.hangar_workspace.me.id} --label hangar.owner=${data.hangar_workspace_owner.me.name}"
  # What the destroy steps need, which may only read their own resource.
  object = {
    id     = data.hangar_workspace.me.id
    owner  = data.hangar_workspace_owner.me.name
    module = path.module
  }
}

# Persistent: the workspace's own network.
resource "terraform_data" "network" {
  input = merge(local.object, { name = local.name })

  provisioner "local-exec" {
    command     = "sh \"$MODULE/docker-object.sh\" ensure network \"$NAME\" \"$ID\" \"$OWNER\""
    environment = { MODULE = self.output.module, NAME = self.output.name, ID = self.output.id, OWNER = self.output.owner }
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "sh \"$MODULE/docker-object.sh\" remove network \"$NAME\" \"$ID\""
    environment = { MODULE = self.output.module, NAME = self.output.name, ID = self.output.id }
  }
}

# Persistent: the home directory, kept across stops.
resource "terraform_data" "home" {
  input = merge(local.object, { name = "${local.name}-home" })

  provisioner "local-exec" {
    command     = "sh \"$MODULE/docker-object.sh\" ensure volume \"$NAME\" \"$ID\" \"$OWNER\""
    environment = { MODULE = self.output.module, NAME = self.output.name, ID = self.output.id, OWNER = self.output.owner }
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "sh \"$MODULE/docker-object.sh\" remove volume \"$NAME\" \"$ID\""
    environment = { MODULE = self.output.module, NAME = self.output.name, ID = self.output.id }
  }
}

resource "hangar_agent" "main" {
  os   = "linux"
  arch = "amd64"
  dir  = "/home/dev"

  startup_script = <<-EOT
    #!/bin/sh
    set -e
    # First start only: the home volume keeps them afterwards.
    if [ -n "$GIT_REPO" ] && [ ! -d "$HOME/repo" ]; then
      git clone -- "$GIT_REPO" "$HOME/repo"
    fi
    if [ -n "$DOTFILES_URI" ] && [ ! -d "$HOME/.dotfiles" ]; then
      git clone -- "$DOTFILES_URI" "$HOME/.dotfiles"
      if [ -x "$HOME/.dotfiles/install.sh" ]; then (cd "$HOME/.dotfiles" && ./install.sh); fi
    fi
  EOT

  # Parameters reach the script as environment, never spliced into its text.
  env = {
    GIT_REPO     = data.hangar_parameter.git_repo.value
    DOTFILES_URI = data.hangar_parameter.dotfiles_uri.value
  }

  # The agent reports the container's CPU, memory and disk use (from its cgroup) by
  # itself; the dashboard raises an alert past these thresholds.
  resources_monitoring {
    memory {
      enabled   = true
      threshold = 90
    }
    volume {
      path      = "/home/dev"
      enabled   = true
      threshold = 90
    }
  }
  metadata {
    key          = "load"
    display_name = "Load average"
    interval     = 10
    timeout      = 2
    script       = "cut -d ' ' -f 1-3 /proc/loadavg"
  }
}

# The image, checked (and built when it is Hangar's and missing) at every start. Apart
# from the container so that its output reaches the build log: terraform hides the output
# of a provisioner that is given a secret (the container's gets the agent token).
resource "terraform_data" "image" {
  count            = data.hangar_workspace.me.start_count
  triggers_replace = [local.image]

  provisioner "local-exec" {
    command     = <<-EOT
      set -eu
      if [ "$BUILD" = true ]; then
        sh "$MODULE/build-image.sh" "$IMAGE"
      elif ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
        echo "image $IMAGE is not in this server's Docker engine (no registry is used): build or load it there, or leave the image parameter empty" >&2
        exit 1
      fi
    EOT
    environment = { BUILD = local.build, IMAGE = local.image, MODULE = path.module }
  }
}

# Ephemeral: the container runs only while the workspace is started. A new build gives
# the agent a new token, so the container is made anew with it.
resource "terraform_data" "container" {
  count = data.hangar_workspace.me.start_count

  triggers_replace = [
    hangar_agent.main.id,
    hangar_agent.main.token,
    local.image,
    data.hangar_parameter.cpus.value,
    data.hangar_parameter.memory_gb.value,
  ]
  input = merge(local.object, { name = local.name })

  provisioner "local-exec" {
    command     = <<-EOT
      set -eu
      # The network and volume again: an operator's `docker network prune` removes the
      # network of a stopped workspace, which would otherwise never start again.
      sh "$MODULE/docker-object.sh" ensure network "$NAME" "$ID" "$OWNER"
      sh "$MODULE/docker-object.sh" ensure volume "$NAME-home" "$ID" "$OWNER"
      # A container left by an interrupted build is replaced, not an error.
      sh "$MODULE/docker-object.sh" remove container "$NAME" "$ID"
      # No more memory than the machine has: beyond it, a limit limits nothing.
      total=$(docker info --format '{{.MemTotal}}')
      memory=$(awk -v g="$MEMORY_GB" -v t="$total" 'BEGIN { m = g * 1073741824; if (m > t) m = t; printf "%d", m }')
      if [ -z "$INIT_SCRIPT" ]; then
        echo "hangar_agent.main has no init script (no Hangar server): the container runs a shell only"
        INIT_SCRIPT="exec sleep infinity"
      fi
      # Restarted after the engine restarts (not after `docker stop`/`kill`); a bounded
      # number of processes and of log bytes, so one workspace cannot starve the host.
      docker run --detach --init --name "$NAME" --hostname "$WORKSPACE" $LABELS \
        --network "$NAME" --add-host host.docker.internal:host-gateway \
        --restart unless-stopped --pids-limit 4096 \
        --log-opt max-size=10m --log-opt max-file=2 \
        --cpus "$CPUS" --memory "$memory" \
        --volume "$NAME-home:/home/dev" \
        --env HANGAR_AGENT_TOKEN \
        "$IMAGE" sh -c "$INIT_SCRIPT" >/dev/null
      echo "container $NAME runs $IMAGE with $CPUS CPUs and $${MEMORY_GB} GB"
    EOT
    environment = {
      MODULE      = path.module
      ID          = data.hangar_workspace.me.id
      OWNER       = data.hangar_workspace_owner.me.name
      IMAGE       = local.image
      NAME        = local.name
      WORKSPACE   = data.hangar_workspace.me.name
      LABELS      = local.labels
      CPUS        = data.hangar_parameter.cpus.value
      MEMORY_GB   = data.hangar_parameter.memory_gb.value
      INIT_SCRIPT = replace(hangar_agent.main.init_script, "/localhost|127\\.0\\.0\\.1/", "host.docker.internal")
      # Passed to the container by name (`--env NAME`): never on a command line.
      HANGAR_AGENT_TOKEN = hangar_agent.main.token
    }
  }

  # Stopped with time for the agent's shutdown scripts, then removed; already gone is fine.
  provisioner "local-exec" {
    when        = destroy
    command     = "sh \"$MODULE/docker-object.sh\" remove container \"$NAME\" \"$ID\""
    environment = { MODULE = self.output.module, NAME = self.output.name, ID = self.output.id }
  }

  depends_on = [terraform_data.network, terraform_data.home, terraform_data.image]
}

# What the dashboard shows beside the container and the volume; the image check is a
# step, not a thing to show.
resource "hangar_metadata" "image" {
  count       = data.hangar_workspace.me.start_count
  resource_id = terraform_data.image[0].id
  hide        = true
}

resource "hangar_metadata" "container" {
  count       = data.hangar_workspace.me.start_count
  resource_id = terraform_data.container[0].id

  item {
    key   = "image"
    value = local.image
  }
  item {
    key   = "cpus"
    value = tostring(data.hangar_parameter.cpus.value)
  }
  item {
    key   = "memory"
    value = "${data.hangar_parameter.memory_gb.value} GB"
  }
}

resource "hangar_metadata" "home" {
  resource_id = terraform_data.home.id

  item {
    key   = "volume"
    value = "${local.name}-home"
  }
  item {
    key   = "mounted at"
    value = "/home/dev"
  }
}
