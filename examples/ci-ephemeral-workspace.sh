#!/usr/bin/env bash
# A CI job's short-lived workspace: create it, use it, and delete it whatever happens.
#
#   HANGAR_URL            the server, e.g. https://hangar.example.com
#   HANGAR_SESSION_TOKEN  an API token: `hangar tokens create --name ci --lifetime 30d`
#   TEMPLATE              the template to build (default: local)
#
# Extra arguments are passed to `hangar create`, e.g. --parameter home_base=/tmp/ci.
set -euo pipefail
: "${HANGAR_URL:?set HANGAR_URL to the Hangar server}"
: "${HANGAR_SESSION_TOKEN:?set HANGAR_SESSION_TOKEN to an API token}"
hangar=${HANGAR_BIN:-hangar}
name="ci-${CI_JOB_ID:-$$}"

# Delete on every exit path, so a failed job never leaves a workspace behind.
trap '"$hangar" delete "$name" -y >/dev/null || "$hangar" delete "$name" --orphan -y' EXIT

# No terminal in CI: every required parameter must be passed, or create says which one.
"$hangar" create "$name" --template="${TEMPLATE:-local}" -y "$@"

# Use it: here, print what it is made of.
"$hangar" show "$name" -o json | python3 -c '
import json, sys
ws = json.load(sys.stdin)
print("{} is {}: {}".format(ws["name"], ws["status"], ", ".join(r["address"] for r in ws["resources"])))
'
