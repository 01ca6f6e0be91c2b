#!/usr/bin/env bash
# Fuzzes the REST API from its own OpenAPI document with schemathesis (from PyPI): a real
# server on a free loopback port, an owner's token, a bounded time. Any 5xx answer, or an
# answer that does not match the document, fails the run.
#   scripts/fuzz_api.sh [HANGAR_BINARY]    (default target/debug/hangar)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh

bin=${1:-target/debug/hangar}
venv=${HANGAR_TOOLS_DIR:-$HOME/.cache/hangar-tools}/schemathesis
if [ ! -x "$venv/bin/st" ]; then
  echo "installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis>=4.32,<5"
fi

dir=$(mktemp -d /tmp/hangar-fuzz.XXXXXX)
port=$(free_port)
url="http://127.0.0.1:$port"
cleanup() { set +e; [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$bin" server --address "127.0.0.1:$port" --data-dir "$dir/data" --provisioners 1 --bootstrap \
  >"$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  [ -s "$dir/data/admin-password" ] && curl -fsS "$url/api/v2/buildinfo" >/dev/null 2>&1 && break
  sleep 0.2
done
token=$(curl -fsS -X POST "$url/api/v2/users/login" -H 'Content-Type: application/json' \
  -d "{\"login\":\"admin\",\"password\":\"$(cat "$dir/data/admin-password")\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["session_token"])')

# Logout would end the fuzzer's own session; the WebSocket and the event stream are not
# request/response operations.
status=0
"$venv/bin/st" run "$url/api/v2/openapi.json" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance \
  --header "Authorization: Bearer $token" \
  --exclude-path /users/logout --exclude-path /workspaceagents/me/ws --exclude-path '/jobs/{id}/logs/stream' \
  --max-examples "${HANGAR_FUZZ_EXAMPLES:-25}" --max-time "${HANGAR_FUZZ_SECONDS:-180}" \
  --seed 1 --no-color || status=$?
if grep -q "internal error" "$dir/server.log"; then
  echo "the server logged internal errors while fuzzed:" >&2
  grep "internal error" "$dir/server.log" | head -20 >&2
  status=1
fi
exit $status
