# An external workspace: the compute is yours (a laptop, a VM, a Raspberry Pi). Hangar
# creates no machine; it issues an agent token and init script, and the dashboard shows
# the command to run on your machine. Deleting the workspace revokes the token and leaves
# the machine alone.
#
# `hangar_external_agent` is what marks the agent as external.

terraform {
  required_providers {
    hangar = {
      source = "hangar/hangar"
    }
  }
}

data "hangar_workspace" "me" {}

# Options make the dashboard show a picker; the value must be one of them.
data "hangar_parameter" "os" {
  name         = "os"
  display_name = "Operating system"
  description  = "The operating system of the machine you will run the agent on."
  default      = "linux"
  mutable      = true
  order        = 1

  option {
    name  = "Linux"
    value = "linux"
  }
  option {
    name  = "macOS"
    value = "darwin"
  }
  option {
    name  = "Windows"
    value = "windows"
  }
}

data "hangar_parameter" "arch" {
  name         = "arch"
  display_name = "Architecture"
  default      = "amd64"
  mutable      = true
  order        = 2

  option {
    name  = "x86-64"
    value = "amd64"
  }
  option {
    name  = "ARM64"
    value = "arm64"
  }
  option {
    name  = "ARMv7"
    value = "armv7"
  }
}

resource "hangar_agent" "main" {
  os   = data.hangar_parameter.os.value
  arch = data.hangar_parameter.arch.value

  # Runs on your machine each time the agent starts.
  startup_script = "echo \"connected to ${data.hangar_workspace.me.name}\""
}

# No compute resource hosts the agent, so this tells Hangar to treat it as external:
# the server shows `init_script` (with the token) for you to run yourself.
resource "hangar_external_agent" "main" {
  agent_id = hangar_agent.main.id
}
