#!/usr/bin/env bash
# Check that this machine can run the testbed: root, network namespaces, veth,
# Linux bridges and TUN. Prints one line and exits 1 on the first thing missing.
# All probes run inside a throw-away network namespace (unshare -n), so nothing
# is left on the host.
set -u
fail() { echo "corecast: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || fail "must run as root (try: sudo make $1)"
[[ -e /proc/self/ns/net ]] || fail "this kernel has no network namespaces (CONFIG_NET_NS)"
command -v unshare >/dev/null || fail "unshare (util-linux) is missing"
command -v ip >/dev/null || fail "ip (iproute2) is missing"
unshare -n true 2>/dev/null || fail "cannot create a network namespace (unshare -n failed: container without --privileged?)"
unshare -n ip link add ccpf0 type veth peer name ccpf1 2>/dev/null || fail "the kernel cannot create veth pairs (CONFIG_VETH)"
unshare -n ip link add ccpfbr type bridge 2>/dev/null || fail "the kernel cannot create Linux bridges (CONFIG_BRIDGE)"
unshare -n sysctl -qw net.ipv4.ip_forward=1 2>/dev/null || fail "cannot write /proc/sys in a network namespace (container without --privileged or systempaths=unconfined?)"
[[ -c /dev/net/tun ]] || { modprobe tun 2>/dev/null; unshare -n sysctl -qw net.ipv4.ip_forward=1 2>/dev/null || fail "cannot write /proc/sys in a network namespace (container without --privileged or systempaths=unconfined?)"
[[ -c /dev/net/tun ]]; } || fail "no /dev/net/tun: the kernel lacks TUN (CONFIG_TUN) or the container lacks --device /dev/net/tun"
unshare -n ip tuntap add dev ccpftun mode tun 2>/dev/null || fail "cannot create a TUN device (/dev/net/tun not usable here)"
exit 0
