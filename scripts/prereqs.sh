# Shared by run.sh and test.sh: install what a fresh Debian/Ubuntu machine lacks.
# Sourced, not run.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  echo "Installing $* from Debian's packages…" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bin_dir() {
  # `return 0`, not a bare `return`: inside a trap a bare return reports the status of
  # the command that fired the trap, and the EXIT trap calls this to stop PostgreSQL.
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# ensure_prereqs [postgres] [chromium] [python-venv] [ssh] [npm]: the words name what only some
# uses need (PostgreSQL for the second test run, Chromium for the web UI test in
# tests/web.rs, a Python venv for schemathesis in scripts/fuzz_api.sh, OpenSSH's client
# and sftp-server for `hangar ssh`, scp and sftp, and rsync, which runs over it).
ensure_prereqs() {
  local need=() want
  command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
  command -v cc >/dev/null 2>&1 || need+=(build-essential)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  for want in "$@"; do
    case $want in
      postgres) [ -n "$(pg_bin_dir)" ] || need+=(postgresql) ;;
      # tests/web.rs runs exactly this path, so a chromium elsewhere does not count.
      chromium) [ -x /usr/bin/chromium ] || need+=(chromium) ;;
      python-venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv) ;;
      # axe-core (the web UI's accessibility check in tests/dashboard.rs) comes from npm.
      npm) command -v npm >/dev/null 2>&1 || need+=(npm) ;;
      # `hangar ssh` drives OpenSSH's client; agents serve SFTP (scp, sftp) with its
      # sftp-server, and the `local` template's workspaces run on this machine.
      ssh)
        command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
        [ -x /usr/lib/openssh/sftp-server ] || need+=(openssh-sftp-server)
        command -v rsync >/dev/null 2>&1 || need+=(rsync)
        ;;
    esac
  done
  if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install Rust (https://rustup.rs) and run this again." >&2
    exit 1
  fi
  if ! command -v terraform >/dev/null 2>&1 && ! command -v tofu >/dev/null 2>&1 && [ -z "${HANGAR_TERRAFORM:-}" ]; then
    echo "terraform (or tofu) is missing: install it (https://developer.hashicorp.com/terraform/install) or set HANGAR_TERRAFORM." >&2
    exit 1
  fi
}

# ensure_axe DIR: axe-core from npm under DIR (kept between runs); sets HANGAR_AXE_JS.
ensure_axe() {
  local dir=$1
  if [ ! -f "$dir/node_modules/axe-core/axe.min.js" ]; then
    echo "Installing axe-core from npm…" >&2
    npm install --prefix "$dir" axe-core@4 --no-audit --no-fund --silent >/dev/null
  fi
  export HANGAR_AXE_JS="$dir/node_modules/axe-core/axe.min.js"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_postgres DIR: a throw-away cluster owned by `postgres` (PostgreSQL refuses root),
# trust auth on loopback only; sets PG_PORT.
start_postgres() {
  local dir=$1 bin run=()
  bin=$(pg_bin_dir)
  PG_PORT=$(free_port)
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
  export PG_PORT
}

stop_postgres() {
  local dir=$1 bin run=()
  bin=$(pg_bin_dir)
  [ -d "$dir/data" ] || return 0
  if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); fi
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
}

# ensure_docker: a Docker engine answering on its socket, for the `docker` template.
# Installs Debian's docker.io (and debootstrap, which builds the workspace image) when
# missing, and starts dockerd in the background when nothing answers; then
# DOCKERD_STARTED=1, and stop_docker stops it again.
ensure_docker() {
  local need=() i
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
  if docker info >/dev/null 2>&1; then return 0; fi
  echo "Starting dockerd in the background (log: /tmp/hangar-dockerd.log)…" >&2
  as_root sh -c 'nohup dockerd >/tmp/hangar-dockerd.log 2>&1 &'
  for i in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      DOCKERD_STARTED=1
      export DOCKERD_STARTED
      return 0
    fi
    sleep 0.5
  done
  echo "The Docker engine did not start within 30 s; the end of its log:" >&2
  tail -n 20 /tmp/hangar-dockerd.log >&2 || true
  exit 1
}

stop_docker() {
  [ "${DOCKERD_STARTED:-}" = 1 ] || return 0
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null) || return 0
  as_root kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    as_root kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
}

# ensure_terraform_user: a server started as root runs terraform (and every template's
# local-exec) as the unprivileged user `hangar-terraform`, never as root; this creates it
# when missing. Its shell is bash because the `local` template's workspaces run as it;
# it joins `docker` when that group exists, for the `docker` template (that group is
# root on this machine in all but name: leave it out where templates run no containers).
ensure_terraform_user() {
  [ "$(id -u)" = 0 ] || return 0
  local user=hangar-terraform
  if ! id "$user" >/dev/null 2>&1; then
    echo "Creating the system user $user, which terraform runs as…" >&2
    useradd --system --user-group --create-home --home-dir "/var/lib/$user" --shell /bin/bash "$user"
  fi
  if getent group docker >/dev/null 2>&1 && ! id -nG "$user" | tr ' ' '\n' | grep -qx docker; then
    usermod -aG docker "$user"
  fi
}
