#!/usr/bin/env bash
# Runs Hangar on this machine: installs what is missing, builds, and starts the server on
# embedded SQLite with an owner and the built-in templates, ready for `hangar create`.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/prereqs.sh
ensure_prereqs ssh
cargo build --release
mkdir -p "$HOME/.local/bin"
ln -sf "$PWD/target/release/hangar" "$HOME/.local/bin/hangar"
echo "hangar is linked at ~/.local/bin/hangar"
exec target/release/hangar server --bootstrap "$@"
