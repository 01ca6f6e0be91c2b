#!/usr/bin/env bash
# Runs Hangar on this machine: installs what is missing, builds, and starts the server on
# embedded SQLite with an owner and the built-in templates, ready for `hangar create`.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/prereqs.sh
ensure_prereqs ssh
ensure_docker
# As root, the server runs terraform as hangar-terraform, which may not build the
# `docker` template's image (debootstrap needs root): build it here, once.
ensure_terraform_user
if [ "$(id -u)" = 0 ]; then sh templates/docker/build-image.sh hangar-workspace:bookworm-1; fi
cargo build --release
mkdir -p "$HOME/.local/bin"
ln -sf "$PWD/target/release/hangar" "$HOME/.local/bin/hangar"
echo "hangar is linked at ~/.local/bin/hangar"
# Containers of the `docker` template reach the server through their gateway, so it
# listens on every interface; pass --address (and --access-url) to choose otherwise.
if [[ " $* " != *" --address"* && -z "${HANGAR_ADDRESS:-}" ]]; then
  set -- --address 0.0.0.0:3000 "$@"
  if [[ " $* " != *" --access-url"* && -z "${HANGAR_ACCESS_URL:-}" ]]; then
    set -- --access-url http://127.0.0.1:3000 "$@"
  fi
fi
exec target/release/hangar server --bootstrap "$@"
