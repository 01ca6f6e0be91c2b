#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs what is missing
# (Chromium too, for the web UI test), starts a throw-away PostgreSQL on a free loopback
# port, runs every test on embedded SQLite and the integration tests again on
# PostgreSQL, stops PostgreSQL, and fuzzes the API from its OpenAPI document.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/prereqs.sh
ensure_prereqs postgres chromium python-venv ssh npm
# The dashboard test checks accessibility with axe-core (from npm, kept under target/).
ensure_axe "$PWD/target/axe"

pg_dir=$(mktemp -d /tmp/hangar-pg.XXXXXX)
# Runs on every exit, failures included; it must not stop half-way itself.
cleanup() { set +e; stop_postgres "$pg_dir"; rm -rf "$pg_dir"; stop_docker; }
trap cleanup EXIT
# The docker template's tests run containers (the workspace image is built once, on
# first use, and cached by tag in the engine).
ensure_docker
# Servers the tests start as a separate `hangar server` run terraform as this user.
ensure_terraform_user
start_postgres "$pg_dir"
export HANGAR_TEST_PG_URL="postgres://postgres@127.0.0.1:${PG_PORT}/postgres"

echo "== cargo test (SQLite) =="
cargo test --all-targets -- --test-threads="${HANGAR_TEST_THREADS:-2}"
echo "== integration tests on PostgreSQL =="
HANGAR_TEST_DB=postgres cargo test --tests --test '*' -- --test-threads="${HANGAR_TEST_THREADS:-2}"
echo "== API fuzzing (schemathesis against the OpenAPI document) =="
scripts/fuzz_api.sh target/debug/hangar
