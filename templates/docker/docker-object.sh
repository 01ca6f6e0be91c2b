#!/bin/sh
# Makes and removes a workspace's Docker objects, only ever touching its own: each one
# carries the label hangar.workspace_id, and a network, volume or container of the same
# name that carries another id (another workspace's, or an orphaned one's) is left alone
# with a message saying what to do.
#
#   sh docker-object.sh ensure network|volume NAME WORKSPACE_ID OWNER
#   sh docker-object.sh remove network|volume|container NAME WORKSPACE_ID
#
# `ensure` makes the object when it is missing (so a pruned network comes back on the
# next start); `remove` succeeds when the object is already gone.
set -eu

action=${1:?usage: docker-object.sh ensure|remove KIND NAME WORKSPACE_ID [OWNER]}
kind=${2:?kind}
name=${3:?name}
id=${4:?workspace id}

case $kind in
  container) format='{{index .Config.Labels "hangar.workspace_id"}}' ;;
  network | volume) format='{{index .Labels "hangar.workspace_id"}}' ;;
  *) echo "docker-object.sh: unknown kind $kind" >&2; exit 2 ;;
esac

# The workspace id on the object; fails when there is no such object.
label() { docker inspect --type "$kind" --format "$format" "$name" 2>/dev/null; }

if found=$(label); then
  if [ "$found" != "$id" ]; then
    echo "a Docker $kind named $name exists but is not this workspace's (hangar.workspace_id=${found:-none}): remove it (docker $kind rm $name) if nothing needs it, then try again" >&2
    exit 1
  fi
  if [ "$action" = remove ]; then
    case $kind in
      # Time for the agent's shutdown scripts first.
      container) docker stop --time 20 "$name" >/dev/null 2>&1 || true; docker rm -f "$name" >/dev/null ;;
      *) docker "$kind" rm "$name" >/dev/null ;;
    esac
  fi
elif [ "$action" = ensure ]; then
  owner=${5:?owner}
  if ! docker "$kind" create --label "hangar.workspace_id=$id" --label "hangar.owner=$owner" "$name" >/dev/null; then
    if ! docker version >/dev/null 2>&1; then
      echo "the Docker engine does not answer to the user $(id -un), which runs terraform: start the engine, or give this user its socket (usermod -aG docker $(id -un), then restart the Hangar server)" >&2
    fi
    exit 1
  fi
fi
