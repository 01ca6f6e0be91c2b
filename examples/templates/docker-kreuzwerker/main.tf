# The built-in `docker` template's behaviour with the kreuzwerker/docker provider, for
# sites whose terraform reaches the public registry: the same network, home volume and
# container, the same names and labels, the same parameters. Push it with
# `hangar templates push docker-kreuzwerker -d examples/templates/docker-kreuzwerker`.

terraform {
  required_providers {
    hangar = {
      source = "hangar/hangar"
    }
    docker = {
      source  = "kreuzwerker/docker"
      version = "~> 3.0"
    }
  }
}

provider "docker" {}

data "hangar_workspace" "me" {}

data "hangar_workspace_owner" "me" {}

data "hangar_parameter" "cpus" {
  name         = "cpus"
  display_name = "CPUs"
  type         = "number"
  default      = 2
  mutable      = true
  order        = 1

  validation {
    min = 1
    max = 64
  }
}

data "hangar_parameter" "memory_gb" {
  name         = "memory_gb"
  display_name = "Memory (GB)"
  type         = "number"
  default      = 4
  mutable      = true
  order        = 2

  validation {
    min = 1
    max = 256
  }
}

data "hangar_parameter" "git_repo" {
  name         = "git_repo"
  display_name = "Git repository"
  description  = "Cloned into ~/repo on the first start (empty: none)."
  type         = "string"
  default      = ""
  mutable      = true
  order        = 3
}

locals {
  name = "hangar-${data.hangar_workspace_owner.me.name}.${data.hangar_workspace.me.name}"
  labels = {
    "hangar.workspace_id" = data.hangar_workspace.me.id
    "hangar.owner"        = data.hangar_workspace_owner.me.name
  }
}

# Built from ./Dockerfile once per content; rebuilt when it changes.
resource "docker_image" "workspace" {
  name = "hangar-workspace-kreuzwerker:${substr(filesha1("${path.module}/Dockerfile"), 0, 12)}"
  build {
    context = path.module
  }
  keep_locally = true
}

resource "docker_network" "workspace" {
  name = local.name
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

resource "docker_volume" "home" {
  name = "${local.name}-home"
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
  # The home directory outlives every change to the template.
  lifecycle {
    ignore_changes = all
  }
}

resource "hangar_agent" "main" {
  os   = "linux"
  arch = "amd64"
  dir  = "/home/dev"

  startup_script = <<-EOT
    #!/bin/sh
    set -e
    if [ -n "$GIT_REPO" ] && [ ! -d "$HOME/repo" ]; then
      git clone -- "$GIT_REPO" "$HOME/repo"
    fi
  EOT

  env = {
    GIT_REPO = data.hangar_parameter.git_repo.value
  }
}

resource "docker_container" "workspace" {
  count    = data.hangar_workspace.me.start_count
  name     = local.name
  image    = docker_image.workspace.image_id
  hostname = data.hangar_workspace.me.name
  init     = true
  # The agent dials the host as host.docker.internal when the access URL is loopback.
  entrypoint = ["sh", "-c", replace(hangar_agent.main.init_script, "/localhost|127\\.0\\.0\\.1/", "host.docker.internal")]
  env        = ["HANGAR_AGENT_TOKEN=${hangar_agent.main.token}"]
  cpu_shares = 1024
  cpus       = tostring(data.hangar_parameter.cpus.value)
  memory     = data.hangar_parameter.memory_gb.value * 1024

  host {
    host = "host.docker.internal"
    ip   = "host-gateway"
  }
  networks_advanced {
    name = docker_network.workspace.name
  }
  volumes {
    container_path = "/home/dev"
    volume_name    = docker_volume.home.name
    read_only      = false
  }
  dynamic "labels" {
    for_each = local.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}
