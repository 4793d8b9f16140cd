"""The attack tool (testbed.attack): the datagrams of each attack, and counting what reached clients."""

import socket

import pytest
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from testbed.attack import (MARKER, AttackError, Datagram, attack_chunk, build, classify, count_delivered,
                            drop_deltas, fresh_statuses)
from testbed.lisp.corecast_etr import CoreCastEtr
from testbed.lisp.dataplane import WRITE_TUN, Etr
from testbed.wire import corecast as cc
from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N

CLIENTS = ["10.1.1.1", "10.1.1.2"]


def etr_spec(**over):
    spec = {"kind": "etr", "id": 1, "target": "172.16.1.2", "spoof": None, "stream_id": 77, "chunk_bytes": 1316,
            "src_eids": ["10.0.0.10"], "dst_eids": CLIENTS, "sport": 5000, "dport": 7001, "refs": 100}
    spec.update(over)
    return spec


def test_issue_sample_100_refs_of_a_1316_byte_chunk():
    """One DATA (48 + P on the wire) and 100 REFs (68 bytes each): 8,164 bytes for 134,400 rebuilt (16.5x)."""
    out = build(etr_spec())
    assert len(out) == 101 and not any(d.raw for d in out)
    assert out[0].ip_bytes == 48 + 1316 and {d.ip_bytes for d in out[1:]} == {68}
    assert sum(d.ip_bytes for d in out) == 8164
    assert out[0].data[0] == LISP_FLAG_N | LISP_FLAG_C and out[0].port == 4341
    data = cc.decode(out[0].data[8:])
    assert data.chunk.startswith(MARKER + b"\x01") and len(data.chunk) == 1316
    ref = cc.decode(out[5].data[8:])
    assert ref.chunk_hash == cc.chunk_hash(data.chunk) and socket.inet_ntoa(ref.dst_eid) == CLIENTS[0]
    assert (ref.src_port, ref.dst_port, ref.stream_id) == (5000, 7001, 77)


def test_undefended_etr_amplifies_the_sample_16_5x():
    """What the attack measures, on the old ETR core: every REF becomes a full datagram to a client."""
    etr = Etr(["10.1.0.0/16"], corecast=CoreCastEtr(["10.1.0.0/16"], defence=False))
    sent = build(etr_spec())
    written = [a[1] for d in sent for a in etr.on_lisp_packet(d.data, "172.17.1.2", 0.0) if a[0] == WRITE_TUN]
    assert len(written) == 100 and sum(len(p) for p in written) == 134_400
    assert round(134_400 / sum(d.ip_bytes for d in sent), 1) == 16.5


def test_oversized_chunk_goes_as_one_udp_datagram():
    [data, *_refs] = build(etr_spec(chunk_bytes=65000, refs=3))
    assert data.ip_bytes == 65048 and not data.raw
    with pytest.raises(AttackError, match="chunk_bytes"):
        build(etr_spec(chunk_bytes=65488))


def test_spoofed_outer_source_is_a_raw_ipv4_packet():
    out = build(etr_spec(spoof="172.16.0.2", refs=2, rounds=3, src_eids=["10.2.0.1", "192.0.2.1"]))
    assert len(out) == 9 and all(d.raw for d in out)
    pkt = IP(out[0].data)
    assert (pkt.src, pkt.dst, pkt[UDP].dport) == ("172.16.0.2", "172.16.1.2", 4341)
    assert [socket.inet_ntoa(cc.decode(d.data[36:]).src_eid) for d in out[1:3]] == ["10.2.0.1", "192.0.2.1"]
    assert [cc.decode(d.data[36:]).seq for d in (out[0], out[3], out[6])] == [1, 2, 3]
    with pytest.raises(AttackError, match="MTU"):
        build(etr_spec(spoof="172.16.0.2", chunk_bytes=2000))


def test_service_attack_raw_and_lisp():
    spec = {"kind": "service", "id": 5, "via": "raw", "service": "10.0.255.254", "port": 4340,
            "claimed_src": "10.0.0.10", "target": "172.16.0.2", "stream_id": 9, "chunk_bytes": 1316,
            "dst_eids": CLIENTS, "sport": 5000, "dport": 7005, "refs": 4}
    raw = build(spec)
    assert len(raw) == 5 and all(d.raw for d in raw)
    pkt = IP(raw[1].data)
    assert (pkt.src, pkt.dst, pkt[UDP].dport) == ("10.0.0.10", "10.0.255.254", 4340)
    again = IP(raw[1].data)
    del again[UDP].chksum, again[IP].chksum
    assert bytes(again) == raw[1].data  # checksums as scapy computes them
    assert raw[0].ip_bytes == 40 + 1316 and raw[1].ip_bytes == 60
    lisp = build({**spec, "via": "lisp"})
    assert not lisp[0].raw and lisp[0].dst == "172.16.0.2" and lisp[0].port == 4341
    assert lisp[0].data[0] == LISP_FLAG_N and lisp[0].data[8:] == raw[0].data


@pytest.mark.parametrize("bad, match", [
    ({"kind": "nope"}, "unknown attack kind"), (etr_spec(target="x"), "target"), (etr_spec(refs=-1), "refs"),
    (etr_spec(dst_eids=[]), "dst_eids"), (etr_spec(refs=30000), "refs"), (etr_spec(id=300), "id"),
    ({"kind": "service", "via": "tcp"}, "via")])
def test_bad_specs_are_one_line_errors(bad, match):
    with pytest.raises(AttackError, match=match):
        build(bad)


def test_marker_chunk():
    assert attack_chunk(7, 10) == MARKER + b"\x07" + bytes(range(3))
    with pytest.raises(AttackError):
        attack_chunk(1, 3)


def test_count_delivered_reassembles_fragments_and_ignores_the_stream(tmp_path):
    big = IP(src="10.0.0.10", dst="10.1.1.1", id=0) / UDP(sport=5000, dport=7003) / attack_chunk(3, 65000)
    frags = fragment(big, fragsize=1480)
    legit = IP(src="10.0.0.10", dst="10.1.1.1") / UDP(sport=5000, dport=6000) / (b"\x47" + bytes(1315))
    small = IP(src="10.0.0.10", dst="10.1.1.2") / UDP(sport=5000, dport=7001) / attack_chunk(1, 1316)
    path = str(tmp_path / "lan.pcap")
    wrpcap(path, [Ether() / p for p in [legit, *frags, small, legit, small]])
    got = count_delivered([path])
    assert got[3] == {"datagrams": 1, "bytes": 65028, "fragments": len(frags)} and len(frags) > 40
    assert got[1] == {"datagrams": 2, "bytes": 2 * 1344, "fragments": 2}
    assert set(got) == {1, 3}


def test_classify_skips_non_udp_and_orphan_fragments():
    groups = {}
    icmp = bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=1) / (b"x" * 20))
    assert classify(icmp, groups) is None
    orphan = bytearray(bytes(IP(src="1.1.1.1", dst="2.2.2.2", id=5, frag=100) / UDP() / b"y"))
    assert classify(orphan, groups) is None and groups == {}
    assert Datagram(False, "1.2.3.4", 4341, b"x" * 10).ip_bytes == 38


def test_drop_deltas_name_the_counters_that_rose(tmp_path):
    before = {"x1": {"time": 1, "corecast_etr": {"cc-unknown-itr": 5, "delivered": 10, "cc-promoted": 0},
                     "io": {"lisp-in": 3}}}
    after = {"x1": {"time": 2, "corecast_etr": {"cc-unknown-itr": 105, "delivered": 50, "cc-promoted": 2,
                                                "cc-quarantined": 1}, "io": {"lisp-in": 200},
                    "corecast_defence": True}}
    assert drop_deltas(before, after) == {"x1.corecast_etr.cc-unknown-itr": 100, "x1.corecast_etr.cc-quarantined": 1}


def test_fresh_statuses_waits_for_a_newer_file(tmp_path):
    import json
    import time as _time
    path = tmp_path / "x1.status.json"
    path.write_text(json.dumps({"time": _time.time() + 5, "etr": {}}))
    assert fresh_statuses({"x1": str(path)}, _time.time())["x1"]["etr"] == {}
    path.write_text(json.dumps({"time": 1.0}))
    with pytest.raises(RuntimeError, match="x1"):
        fresh_statuses({"x1": str(path)}, _time.time(), timeout=0.2)


def _attacker(tmp_path, cfg):
    import json
    import subprocess
    import sys
    path = tmp_path / "attacker.json"
    path.write_text(json.dumps(cfg))
    return subprocess.run([sys.executable, "-m", "nodes.attacker", "--config", str(path)], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("over, message", [
    ({"rate_pps": 0}, "config 'rate_pps'"), ({"burst": 1.5}, "config 'burst'"), ({"speed": 2}, "unknown field"),
    ({"warmup": {"dst": "10.0.0", "port": 4340}}, "config 'warmup.dst'"),
    ({"spec": {"kind": "etr", "id": 1}}, "target"), ({"spec": etr_spec(refs=-5)}, "refs")])
def test_attacker_node_bad_config_is_one_line_and_exit_2(tmp_path, over, message):
    cfg = {"name": "atk", "spec": etr_spec(target="127.0.0.1", refs=0), **over}
    res = _attacker(tmp_path, cfg)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_attacker_node_sends_and_reports(tmp_path):
    import json
    status = tmp_path / "atk.status.json"
    res = _attacker(tmp_path, {"name": "atk", "status_file": str(status), "rate_pps": 1000,
                               "spec": etr_spec(target="127.0.0.1", refs=3, chunk_bytes=2000)})
    assert res.returncode == 0, res.stderr
    got = json.loads(status.read_text())
    assert (got["packets"], got["bytes"], got["errors"]) == (4, 48 + 2000 + 3 * 68, 0)


def test_attacker_hosts_in_the_plan_keep_eid_and_rloc_spaces_apart():
    import ipaddress

    from testbed.addressing import make_plan
    from testbed.params import topo_params
    from topologies.paper import PaperTopo
    plain = make_plan(topo_params({"ases": 3, "clients": 2}))
    plan = make_plan(topo_params({"ases": 3, "clients": 2}), attackers=True)
    assert "attackers" not in plain.to_dict() and plain.outsider is None
    assert (plan.outsider, plan.outsider_ip, plan.rogue, plan.rogue_ip, plan.rogue_as) == \
        ("outsider", "172.17.1.2", "rogue", "10.3.0.66", 3)
    eid, rloc = ipaddress.ip_network(plan.eid_block), ipaddress.ip_network(plan.rloc_block)
    assert ipaddress.ip_address(plan.outsider_ip) in rloc and ipaddress.ip_address(plan.rogue_ip) in eid
    assert plan.rogue_ip not in {e for _a, _h, e in plan.clients()}
    topo = PaperTopo(plan=plan)
    assert {"outsider", "rogue"} <= set(topo.hosts()) and len(topo.hosts()) == len(PaperTopo(plan=plain).hosts()) + 2
    assert all(len(n) <= 9 for n in topo.nodes())
    names = [info.get(k) for _a, _b, info in topo.links(withInfo=True) for k in ("intfName1", "intfName2")]
    assert all(len(n) <= 15 for n in names if n) and "outsider-eth0" in names and "core-eth4" in names


@pytest.mark.parametrize("value, settings", [
    ("off,on,sav", ["off", "on", "on+sav"]), (False, ["off"]), (True, ["on"]), ("both", ["on", "off"]),
    ("sav", ["on+sav"]), ("on,on", ["on"])])
def test_defence_settings(value, settings):
    from experiments.attack import defences
    assert defences(value) == settings


@pytest.mark.parametrize("sets, message", [
    (["defence=maybe"], "defence must list"), (["ases=1"], "at least 2"), (["refs=0"], "refs must be within"),
    (["big_chunk=70000"], "big_chunk"), (["core=tree"], "star core")])
def test_attack_parameters_one_line_errors(sets, message):
    from experiments import attack
    from testbed.experiment import parse_experiment_params
    from testbed.nodeutil import ConfigError
    with pytest.raises(ConfigError, match=message):
        parse_experiment_params(attack, sets)
