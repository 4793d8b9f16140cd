#!/usr/bin/env bash
# Build a Debian bookworm base image locally, without a registry:
#   debootstrap --variant=minbase bookworm DIR MIRROR  ->  podman/docker import
# MIRROR defaults to the Debian mirror this machine's apt already uses.
#
# Usage: scripts/container/build-base.sh [IMAGE_TAG]   (default: localhost/corecast-base:bookworm)
# Env:   ENGINE=podman|docker (default: podman if installed, else docker)
#        MIRROR=http://...    (default: taken from /etc/apt/sources.list{,.d})
#        SUITE=bookworm
# Needs root and debootstrap (apt-get install debootstrap). Idempotent: an
# existing image with that tag is kept unless FORCE=1.
set -euo pipefail
TAG=${1:-localhost/corecast-base:bookworm}
SUITE=${SUITE:-bookworm}
die() { echo "build-base: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap needs it)"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
if [[ -z ${ENGINE:-} ]]; then
  if command -v podman >/dev/null; then ENGINE=podman
  elif command -v docker >/dev/null; then ENGINE=docker
  else die "neither podman nor docker is installed"; fi
fi

# The first Debian (not -security) mirror apt is configured with.
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/ && $i !~ /security/) { print $i; exit } }' "$f"
  done
}
if [[ -z ${MIRROR:-} ]]; then
  mirrors=$(find_mirror || true)
  MIRROR=${mirrors%%$'\n'*}
fi
[[ -n $MIRROR ]] || die "no Debian mirror found in apt's sources; set MIRROR=URL"

if [[ ${FORCE:-0} != 1 ]] && $ENGINE image inspect "$TAG" >/dev/null 2>&1; then
  echo "build-base: $TAG already exists (FORCE=1 to rebuild)"
  exit 0
fi

dir=$(mktemp -d /var/tmp/corecast-base.XXXXXX)
trap 'rm -rf --one-file-system "$dir"' EXIT
echo "build-base: debootstrap $SUITE from $MIRROR into $dir"
debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 \
  || { tail -n 20 "$dir.log" >&2; die "debootstrap failed (log: $dir.log)"; }
rm -f "$dir.log"
# Slim it like the official image: no apt lists, no caches.
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
echo "build-base: importing as $TAG with $ENGINE"
quiet=(); [[ $ENGINE == podman ]] && quiet=(--quiet)
tar -C "$dir" --numeric-owner -c . \
  | $ENGINE import "${quiet[@]}" --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
echo "build-base: done: $TAG"
