#!/usr/bin/env bash
# The REST API with curl: everything the CLI does goes through /api/v2.
#   HANGAR_URL, HANGAR_SESSION_TOKEN as for the CLI; PARAMETERS (JSON object, default {})
#   are the `local` template's parameter values.
set -euo pipefail
auth=(-H "Authorization: Bearer ${HANGAR_SESSION_TOKEN:?}")
api="${HANGAR_URL:?}/api/v2"
params=${PARAMETERS:-'{}'}

curl -fsS "${auth[@]}" "$api/users/me"; echo
curl -fsS "${auth[@]}" "$api/templates"; echo
# Create a workspace; errors come back as {"message", "detail", "validations"}.
curl -sS "${auth[@]}" -H 'Content-Type: application/json' \
  -d "{\"name\": \"api-demo\", \"template\": \"local\", \"parameters\": $params}" "$api/workspaces"; echo
# Follow its first build's logs live (Server-Sent Events).
job=$(curl -fsS "${auth[@]}" "$api/workspaces/me/api-demo" | python3 -c 'import json,sys; print(json.load(sys.stdin)["latest_build"]["job"]["id"])')
curl -fsSN "${auth[@]}" "$api/jobs/$job/logs/stream"
# Stop, then delete.
curl -fsS "${auth[@]}" -H 'Content-Type: application/json' -d '{"transition": "delete"}' "$api/workspaces/me/api-demo/builds"; echo
