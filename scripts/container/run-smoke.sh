#!/usr/bin/env bash
# Build the CoreCast image and run `make smoke` (or COMMAND) in a container,
# with the flags this host needs. See docs/container.md.
#
# Usage: scripts/container/run-smoke.sh [options] [-- COMMAND ...]
#   --engine podman|docker  container engine (default: podman if installed, else docker)
#   --base IMAGE            base image; "local" builds one with build-base.sh
#                           (default: local on a restricted VM, else debian:bookworm)
#   --tag TAG               project image tag (default: localhost/corecast:smoke)
#   --no-build              run the existing image, do not build
#   --results DIR           host directory mounted as the image's results/
#                           (default: the repo's results/)
#   --privileges full|none|no-tun
#                           full (default): what the testbed needs; none: the
#                           engine's defaults; no-tun: everything but /dev/net/tun
#                           (the last two show the preflight's one-line error)
# Env: CORECAST_CONTAINER_PROFILE=auto|vm|plain (default auto: "vm" when this
#      root lacks CAP_SYS_RESOURCE, as on the project's VMs, where --privileged
#      alone fails).
# pip's CA bundle: found as pip finds it on this host (PIP_CERT, else `cert` in
# its configuration files: /etc/pip.conf, ~/.config/pip/pip.conf, ...); if there
# is one, the base image gets it and an /etc/pip.conf naming it (both engines).
# The container always gets its own network namespace with no way out
# (--network none): the emulated networks never touch the host's.
# docker: if no daemon answers (DOCKER_HOST or the default socket), this script
# starts a private one with no bridge, no NAT and no iptables rules
# (dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false,
# its own data root /var/lib/corecast-docker, exec root /run/corecast-docker and
# socket), installs Debian's docker.io first if dockerd is missing (root and
# apt-get, services kept from starting), and stops it again on exit: nothing
# stays running or mounted. The docker build runs with --network host (its
# RUN steps download Debian and pip packages, as the host's apt does).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
die() { echo "run-smoke: $*" >&2; exit 2; }

ENGINE="" BASE="" TAG=localhost/corecast:smoke BUILD=1 PRIV=full RESULTS=$repo/results
while (($#)); do
  case $1 in
    --engine) ENGINE=${2:?}; shift 2 ;;
    --base) BASE=${2:?}; shift 2 ;;
    --tag) TAG=${2:?}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --results) RESULTS=${2:?}; shift 2 ;;
    --privileges) PRIV=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
[[ $PRIV =~ ^(full|none|no-tun)$ ]] || die "--privileges must be full, none or no-tun"
if [[ -z $ENGINE ]]; then
  if command -v podman >/dev/null; then ENGINE=podman
  elif command -v docker >/dev/null; then ENGINE=docker
  else die "neither podman nor docker is installed"; fi
fi
[[ $ENGINE =~ ^(podman|docker)$ ]] || die "--engine must be podman or docker"
command -v "$ENGINE" >/dev/null || die "$ENGINE is not installed"

# A restricted VM: root without CAP_SYS_RESOURCE (bit 24) in its bounding set.
profile=${CORECAST_CONTAINER_PROFILE:-auto}
if [[ $profile == auto ]]; then
  capbnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
  if (( (16#$capbnd >> 24) & 1 )); then profile=plain; else profile=vm; fi
fi
[[ $profile =~ ^(vm|plain)$ ]] || die "CORECAST_CONTAINER_PROFILE must be auto, vm or plain"
if [[ $ENGINE == podman && $profile == vm ]]; then
  export CONTAINERS_CONF="$here/containers.conf"   # runc + ulimits within the host's
fi

# --- docker: a private daemon when none answers (tests cut this block out) ---
# Paths are short on purpose (containerd's shim sockets live under the exec root).
DOCKERD_DATA=${CORECAST_DOCKERD_DATA:-/var/lib/corecast-docker}   # images stay here between runs
DOCKERD_EXEC=${CORECAST_DOCKERD_EXEC:-/run/corecast-docker} dockerd_pid=""
docker_answers() { timeout 20 docker "$@" version >/dev/null 2>&1; }
# dockerd from Debian's docker.io when it is missing (root, apt-get). Services
# are kept from starting (policy-rc.d exit 101): a packaged daemon would bring
# the default bridge and NAT rules with it.
install_dockerd() {
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null \
    || die "no docker daemon answers and dockerd is missing: install Debian's docker.io (apt-get install docker.io) or start a daemon"
  echo "run-smoke: no dockerd: apt-get install docker.io (services not started)"
  local prc=/usr/sbin/policy-rc.d made=0
  if [[ ! -e $prc ]]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 755 "$prc"; made=1; fi
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q --no-install-recommends docker.io >/dev/null 2>&1
  local rc=$?
  if ((made)); then rm -f "$prc"; fi
  ((rc == 0)) && command -v dockerd >/dev/null || die "apt-get install docker.io failed (exit $rc)"
}
ensure_docker_daemon() {
  if docker_answers; then echo "run-smoke: using the docker daemon that answers"; return 0; fi
  local sock=unix://$DOCKERD_EXEC/docker.sock i
  if docker_answers -H "$sock"; then
    export DOCKER_HOST=$sock; echo "run-smoke: using the private docker daemon already at $sock"; return 0
  fi
  command -v dockerd >/dev/null || install_dockerd
  mkdir -p "$DOCKERD_DATA" "$DOCKERD_EXEC"
  echo '{}' >"$DOCKERD_EXEC/daemon.json"   # not the host's /etc/docker/daemon.json
  echo "run-smoke: starting a private dockerd (no bridge, no NAT, no iptables) at $sock"
  dockerd --config-file "$DOCKERD_EXEC/daemon.json" --data-root "$DOCKERD_DATA" \
    --exec-root "$DOCKERD_EXEC" --pidfile "$DOCKERD_EXEC/dockerd.pid" -H "$sock" \
    --bridge=none --iptables=false --ip-masq=false --ip-forward=false --userland-proxy=false \
    >"$DOCKERD_DATA/dockerd.log" 2>&1 &
  dockerd_pid=$!
  export DOCKER_HOST=$sock
  for i in $(seq 120); do
    docker_answers && return 0
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  die "the private dockerd did not answer within 60 s (log: $DOCKERD_DATA/dockerd.log: $(tail -n 1 "$DOCKERD_DATA/dockerd.log" 2>/dev/null))"
}
# Stop the daemon this script started (it stops its containerd), then make sure
# nothing it ran or mounted is left: processes under its exec root, mounts under
# its roots.
descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}
shims_of_ours() {   # processes whose command line names this daemon's exec root (the pattern is not in grep's)
  grep -laFf <(printf '%s\n' "$DOCKERD_EXEC/") /proc/[0-9]*/cmdline 2>/dev/null | sed 's,^/proc/,,; s,/cmdline$,,'
  return 0
}
stop_private_dockerd() {
  [[ -n $dockerd_pid ]] || return 0
  local pid=$dockerd_pid i m p kids
  dockerd_pid=""
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in $kids; do kill -KILL "$p" 2>/dev/null || true; done   # containerd, shims it started
  # containerd's shims detach from it: wait for those naming our exec root to end (5 s), then end them
  for i in $(seq 10); do [[ -z $(shims_of_ours) ]] && break; sleep 0.5; done
  for p in $(shims_of_ours); do kill -KILL "$p" 2>/dev/null || true; done
  for m in $(awk -v a="$DOCKERD_DATA" -v b="$DOCKERD_EXEC" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$DOCKERD_EXEC"
  echo "run-smoke: private dockerd stopped"
}
# --- end of the docker block ---

BASE=${BASE:-$([[ $profile == vm ]] && echo local || echo debian:bookworm)}
echo "run-smoke: engine $ENGINE, profile $profile, privileges $PRIV, base $BASE"

# Podman build steps get a private network namespace reaching out through
# slirp4netns (user-mode NAT): no bridge, veth or NAT rule on the host.
nspid="" slpid=""
cleanup() {
  local pid
  for pid in $slpid $nspid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  slpid="" nspid=""
  if [[ -n ${cactx:-} ]]; then rm -rf "$cactx"; cactx=""; fi
  return 0
}
on_exit() { cleanup; stop_private_dockerd; }

# The CA bundle pip uses on this host, as pip resolves it: the PIP_CERT
# environment variable, else `cert` in its configuration files (install or
# global section; later files win: /etc/xdg/pip/pip.conf, /etc/pip.conf,
# ~/.pip/pip.conf, ~/.config/pip/pip.conf, PIP_CONFIG_FILE; none at all if
# PIP_CONFIG_FILE=/dev/null, as for pip). Prints nothing if there is no bundle.
host_pip_cert() {
  local val="" out py f v
  if [[ -n ${PIP_CERT:-} ]]; then
    val=$PIP_CERT
  else
    for py in python3 python; do
      if command -v "$py" >/dev/null && out=$("$py" -m pip config list 2>/dev/null); then
        val=$(printf '%s\n' "$out" | sed -n "s/^install\.cert='\(.*\)'$/\1/p" | tail -n 1)
        [[ -n $val ]] || val=$(printf '%s\n' "$out" | sed -n "s/^global\.cert='\(.*\)'$/\1/p" | tail -n 1)
        break
      fi
    done
    if [[ -z $val && -z ${out:-} && ${PIP_CONFIG_FILE:-} != /dev/null ]]; then   # no pip: read its files as it would
      for f in /etc/xdg/pip/pip.conf /etc/pip.conf "$HOME/.pip/pip.conf" \
               "${XDG_CONFIG_HOME:-$HOME/.config}/pip/pip.conf" ${PIP_CONFIG_FILE:-}; do
        [[ -r $f ]] || continue
        v=$(awk -F= '/^[ \t]*\[/ {sec = $0; next}
                     sec ~ /\[(global|install)\]/ && $1 ~ /^[ \t]*cert[ \t]*$/ {
                       sub(/^[ \t]+/, "", $2); sub(/[ \t]+$/, "", $2); print $2 }' "$f" | tail -n 1)
        [[ -n $v ]] && val=$v
      done
    fi
  fi
  [[ -n $val ]] || return 0
  [[ -r $val ]] || die "pip's CA bundle $val (from this host's pip configuration) is not readable"
  printf '%s\n' "$val"
}

# A base image with the host's CA bundle for pip: BASE plus /etc/corecast-host-ca.crt
# and an /etc/pip.conf that names it. Copies only (no RUN step, no network).
with_pip_ca() {
  local ca=$1 base=$2 tag=localhost/corecast-base-pipca:latest
  cactx=$(mktemp -d /tmp/corecast-pipca.XXXXXX)
  cp "$ca" "$cactx/host-ca.crt"
  printf '[global]\ncert = /etc/corecast-host-ca.crt\n' >"$cactx/pip.conf"
  printf 'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY host-ca.crt /etc/corecast-host-ca.crt\nCOPY pip.conf /etc/pip.conf\n' \
    >"$cactx/Containerfile"
  local cmd=("$ENGINE" build -q --network none --build-arg "BASE_IMAGE=$base" -t "$tag" -f "$cactx/Containerfile")
  if [[ $ENGINE == podman && $base == localhost/* ]]; then cmd+=(--pull=never); fi
  "${cmd[@]}" "$cactx" >/dev/null || die "could not add pip's CA bundle to $base"
  rm -rf "$cactx"; cactx=""
  printf '%s\n' "$tag"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM   # a signal still runs on_exit: no private dockerd left behind
if [[ $ENGINE == docker ]]; then ensure_docker_daemon; fi   # after the traps: stopped whatever happens
private_build_net() {
  command -v slirp4netns >/dev/null || die "slirp4netns is missing (apt-get install slirp4netns)"
  local self i
  self=$(readlink /proc/self/ns/net)
  unshare -n sleep infinity &
  nspid=$!
  for i in $(seq 50); do
    [[ $(readlink "/proc/$nspid/ns/net" 2>/dev/null) != "$self" ]] && break
    sleep 0.1
  done
  [[ $(readlink "/proc/$nspid/ns/net") != "$self" ]] || die "could not make a network namespace for the build"
  slirp4netns --configure --mtu=65520 --disable-host-loopback "$nspid" tap0 >/dev/null 2>&1 &
  slpid=$!
  for i in $(seq 50); do
    nsenter -t "$nspid" -n ip -4 route show default 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  die "slirp4netns did not come up"
}

if ((BUILD)); then
  t0=$SECONDS
  if [[ $BASE == local ]]; then
    BASE=localhost/corecast-base:bookworm
    ENGINE=$ENGINE "$here/build-base.sh" "$BASE"
  fi
  ca=$(host_pip_cert)
  if [[ -n $ca ]]; then
    echo "run-smoke: pip's CA bundle on this host: $ca (added to the base image)"
    BASE=$(with_pip_ca "$ca" "$BASE")
  fi
  build=("$ENGINE" build --build-arg "BASE_IMAGE=$BASE" -t "$TAG" -f "$repo/Dockerfile")
  if [[ $ENGINE == docker ]]; then build+=(--network host); fi   # no bridge on a private daemon
  if [[ $ENGINE == podman ]]; then
    if [[ $BASE == localhost/* ]]; then build+=(--pull=never); fi   # local base: no registry
    if [[ $profile == vm ]]; then
      private_build_net
      build+=(--network "ns:/proc/$nspid/ns/net")
    fi
  fi
  echo "run-smoke: building $TAG"
  "${build[@]}" "$repo"
  cleanup
  echo "run-smoke: image built in $((SECONDS - t0)) s"
fi

# Privileges. "full" is --privileged where the host allows it (podman, with
# containers.conf, also on a restricted VM). Docker on a restricted VM cannot
# grant SYS_RESOURCE, so everything --privileged gives is spelled out instead:
# all other capabilities, no seccomp/AppArmor filter, writable /proc/sys and
# /sys (systempaths=unconfined: routers need net.ipv4.ip_forward) and the TUN
# device. "no-tun" is the same minus the device.
unconfined=(--security-opt seccomp=unconfined)
if [[ $ENGINE == docker ]]; then
  unconfined+=(--security-opt apparmor=unconfined --security-opt systempaths=unconfined)
else
  unconfined+=(--security-opt unmask=ALL)
fi
caps=(--cap-add ALL)
if [[ $profile == vm ]]; then caps+=(--cap-drop SYS_RESOURCE); fi
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
run=("$ENGINE" run --rm --network none -v "$RESULTS:/opt/corecast/results")
case $PRIV/$ENGINE/$profile in
  full/podman/*|full/docker/plain) run+=(--privileged) ;;
  full/docker/vm) run+=("${caps[@]}" "${unconfined[@]}" --device /dev/net/tun) ;;
  no-tun/*) run+=("${caps[@]}" "${unconfined[@]}") ;;
  none/*) ;;
esac
run+=("$TAG" "$@")
echo "run-smoke: ${run[*]}"
t0=$SECONDS
set +e
"${run[@]}"
rc=$?
set -e
echo "run-smoke: exit status $rc after $((SECONDS - t0)) s"
exit "$rc"
