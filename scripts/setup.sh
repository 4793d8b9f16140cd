#!/usr/bin/env bash
# Install what the testbed needs, idempotently: Debian packages, then a
# virtualenv (.venv) with the Python dependencies and the project (editable).
# A second run installs nothing and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export DEBIAN_FRONTEND=noninteractive

# command -> Debian package
declare -A need=(
  [mnexec]=mininet [tcpdump]=tcpdump [tshark]=tshark [ip]=iproute2 [brctl]=bridge-utils
  [ping]=iputils-ping [ffmpeg]=ffmpeg [ffprobe]=ffmpeg [sysctl]=procps [pkill]=procps
  [nft]=nftables [unshare]=util-linux [git]=git [ifconfig]=net-tools [vtysh]=frr [cvlc]=vlc-bin
  [sshd]=openssh-server [ssh]=openssh-client
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
PY=""
for cand in python3.13 python3.12 python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY=$(command -v "$cand"); break
  fi
done
[[ -n $PY ]] || missing+=(python3 python3-venv)
# The VLC player (player=vlc) needs VLC's stdin access and dump demuxer: vlc-plugin-base.
if command -v dpkg-query >/dev/null 2>&1 \
    && ! dpkg-query -W -f='${Status}' vlc-plugin-base 2>/dev/null | grep -q 'install ok installed'; then
  missing+=(vlc-plugin-base)
fi
# pytricia (longest-prefix match) is published as source only: pip compiles it.
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[[ -f /usr/include/stdio.h ]] || missing+=(libc6-dev)
if [[ -z $PY ]] || ! "$PY" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
  missing+=(python3-dev)
fi
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing Debian packages: ${missing[*]}"
  command -v apt-get >/dev/null || { echo "setup: no apt-get; install these by hand: ${missing[*]}" >&2; exit 1; }
  apt-get update -q >/dev/null
  # The testbed starts its own FRR daemons and a loopback-only sshd per test: keep the packages
  # (frr, openssh-server) from starting system services (policy-rc.d 101, honoured by systemd's
  # deb-systemd-invoke too), unless the machine already has a policy of its own.
  policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy && -d /usr/sbin ]]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  if ((made_policy)); then rm -f "$policy"; fi
  trap - EXIT
  if [[ -z $PY ]]; then PY=$(command -v python3); fi
else
  echo "setup: Debian packages already present"
fi
# The CoreCast dissector for Wireshark/tshark: into the global Lua plugin folder
# (root; Debian's init.lua runs plugins for root too), else the user's.
if command -v tshark >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]]; then
    plugdir=$(tshark -G folders 2>/dev/null | awk -F'\t+' '/^Global Lua Plugins:/ {print $2}')
  else
    plugdir=$(tshark -G folders 2>/dev/null | awk -F'\t+' '/^Personal Lua Plugins:/ {print $2}')
  fi
  if [[ -n ${plugdir:-} ]] && ! cmp -s scripts/wireshark/corecast.lua "$plugdir/corecast.lua"; then
    mkdir -p "$plugdir" && install -m 0644 scripts/wireshark/corecast.lua "$plugdir/corecast.lua" \
      && echo "setup: installed the CoreCast Wireshark dissector in $plugdir"
  fi
fi
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python 3.11 or newer is needed, found $("$PY" --version)" >&2; exit 1; }

# Python dependencies: exactly the versions and files pinned in requirements.lock
# (regenerate it with scripts/update-lock.sh); the stamp changes with the lock.
LOCK=requirements.lock
[[ -f $LOCK ]] || { echo "setup: $LOCK is missing (scripts/update-lock.sh writes it)" >&2; exit 1; }
stamp="$VENV/.installed-$(cat setup.cfg pyproject.toml "$LOCK" | sha256sum | cut -c1-16)"
if [[ -f $stamp && -x $VENV/bin/corecast ]]; then
  echo "setup: virtualenv $VENV already up to date"
  exit 0
fi
echo "setup: creating virtualenv $VENV with $PY and installing the pinned dependencies ($LOCK) and the project"
[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
pipq=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
"${pipq[@]}" install --require-hashes --no-deps -r "$LOCK"
"${pipq[@]}" install --no-deps --no-build-isolation -e .
if ! problems=$("$VENV/bin/python" -m pip check 2>&1); then
  echo "setup: the installed packages do not satisfy setup.cfg; is $LOCK out of date (scripts/update-lock.sh)?" >&2
  echo "$problems" >&2
  exit 1
fi
rm -f "$VENV"/.installed-*
touch "$stamp"
echo "setup: done"
