#!/bin/sh
# Builds the workspace image TAG from a Debian root filesystem when Docker does not have
# it yet (no registry is needed: debootstrap reads Debian's package mirror). Run by the
# template before it starts a container; its output is the build log's.
#
#   sh build-image.sh TAG
#
# Environment: HANGAR_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# HANGAR_DEBIAN_SUITE (default bookworm).
set -eu

tag=${1:?usage: build-image.sh TAG}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag: cached"
  exit 0
fi
if ! docker version >/dev/null 2>&1; then
  echo "image $tag: the Docker engine does not answer to the user $(id -un), which runs terraform: start the engine, or give this user its socket (usermod -aG docker $(id -un), then restart the Hangar server)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "image $tag is missing and debootstrap is not installed to build it: install it (apt-get install debootstrap), or set the image parameter to an image Docker has" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "image $tag is missing and building it needs root (debootstrap): build it once as root with 'sh build-image.sh $tag', or set the image parameter to an image Docker has" >&2
  exit 1
fi

# One build at a time on this machine: two workspaces created together wait for the
# first build, then find the image cached.
lock=${TMPDIR:-/tmp}/hangar-image-build.lock
# Appended to, never truncated: a symlink planted at the path harms nothing.
exec 9>>"$lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag: built by another workspace meanwhile"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hangar-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
mirror=${HANGAR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${HANGAR_DEBIAN_SUITE:-bookworm}
packages=bash,bash-completion,ca-certificates,curl,git,less,locales,nano,openssh-client,procps,python3,sudo,vim-tiny,wget
echo "image $tag: building from Debian $suite ($mirror); this takes a minute or two, once"
# Its stages go to the build log as they happen; success is its last line (a pipe's
# status in sh is the last command's, so it is checked in the log).
debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$mirror" 2>&1 |
  tee "$work/debootstrap.log" |
  grep --line-buffered -E '^(I: (Retrieving Packages|Installing core|Unpacking the base|Configuring the base|Base system)|E:)' || true
if ! grep -q '^I: Base system installed successfully' "$work/debootstrap.log"; then
  echo "image $tag: debootstrap failed; its last lines:" >&2
  tail -n 20 "$work/debootstrap.log" >&2
  exit 1
fi

# The developer: `dev` (uid 1000), passwordless sudo, bash; the home is a volume later.
chroot "$work/rootfs" useradd --create-home --uid 1000 --shell /bin/bash --groups sudo dev
echo 'dev ALL=(ALL) NOPASSWD:ALL' >"$work/rootfs/etc/sudoers.d/dev"
chmod 0440 "$work/rootfs/etc/sudoers.d/dev"
echo 'en_US.UTF-8 UTF-8' >"$work/rootfs/etc/locale.gen"
chroot "$work/rootfs" locale-gen >/dev/null
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*

tar -C "$work/rootfs" -c . | docker import \
  --change 'USER dev' \
  --change 'WORKDIR /home/dev' \
  --change 'ENV LANG=en_US.UTF-8 SHELL=/bin/bash' \
  --change 'CMD ["/bin/bash"]' \
  --message "Hangar workspace image (Debian $suite)" \
  - "$tag" >/dev/null
echo "image $tag: built ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
