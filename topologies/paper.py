"""The paper scenario (CoreCast, Fig. 2): a source AS, j client ASes, a core, a mapping host.

```
 [src]--cc0--[x0]==\\                    /==[x1]--cc1--[h1x1 ... h1xn]
                    [core]----[ms]      ...
                     \\==[xj]--ccj--[hjx1 ...]
```
Every AS is a LAN (a Linux bridge ``cc<i>``) in EID space behind its border
router ``x<i>``; border routers and the mapping host hang off one core router
in RLOC space. Addresses come from :mod:`testbed.addressing`.
"""

from __future__ import annotations

from mininet.topo import Topo

from testbed.addressing import AddressPlan
from testbed.net.nodeclasses import EidHost, LinuxRouter


class PaperTopo(Topo):
    """One source AS, j client ASes and a mapping host around a core: one router, or a tree of transit routers."""

    def build(self, plan: AddressPlan, router_cls: type = LinuxRouter, host_cls: type = EidHost) -> None:  # type: ignore[override]
        """Add nodes and links for ``plan``; node classes are passed in."""
        core = self.addNode(plan.core, cls=router_cls, ip=None)
        ms = self.addHost(plan.ms, cls=host_cls, ip=None, gateway=plan.ms_core_ip)
        self.addLink(ms, core, intfName1=f"{plan.ms}-eth0", intfName2=f"{plan.core}-eth0",
                     params1={"ip": f"{plan.ms_ip}/24"}, params2={"ip": f"{plan.ms_core_ip}/24"})
        routers = {plan.core: core}
        for t in plan.transit:  # a tree core: transit routers under the root (testbed.addressing)
            routers[t.name] = self.addNode(t.name, cls=router_cls, ip=None)
            self.addLink(routers[t.name], core, intfName1=t.root_if, intfName2=f"{plan.core}-{t.name}",
                         params1={"ip": f"{t.ip}/24"}, params2={"ip": f"{t.root_ip}/24"})
        for a in plan.all_ases:
            routes = [(plan.rloc_block, a.core_ip)]
            if a.many_block:
                routes.append((a.many_block, a.many_host_ip))
            xtr = self.addNode(a.xtr, cls=router_cls, ip=None, routes=routes)
            switch = self.addSwitch(a.switch, dpid=f"{0xCC0000 + a.number:016x}")
            self.addLink(xtr, switch, intfName1=a.lan_if, params1={"ip": f"{a.xtr_lan_ip}/{a.eid_len}"})
            self.addLink(xtr, routers[a.upstream], intfName1=a.core_if, intfName2=a.up_if,
                         params1={"ip": f"{a.rloc}/{a.link_len}"}, params2={"ip": f"{a.core_ip}/{a.link_len}"})
            if a.number == 0:
                src = self.addHost(plan.source_host, cls=host_cls, ip=f"{plan.source_eid}/{a.eid_len}", gateway=a.xtr_lan_ip)
                self.addLink(src, switch)
                continue
            if a.many_host:
                host = self.addHost(a.many_host, cls=host_cls, ip=f"{a.many_host_ip}/{a.eid_len}",
                                    gateway=a.xtr_lan_ip, local_block=a.many_block)
                self.addLink(host, switch)
            else:
                for name, eid in a.clients:
                    host = self.addHost(name, cls=host_cls, ip=f"{eid}/{a.eid_len}", gateway=a.xtr_lan_ip)
                    self.addLink(host, switch)
            if plan.rogue and a.number == plan.rogue_as:  # attackers: see testbed.addressing
                self.addLink(self.addHost(plan.rogue, cls=host_cls, ip=f"{plan.rogue_ip}/{a.eid_len}",
                                          gateway=a.xtr_lan_ip), switch)
        if plan.outsider:
            out = self.addHost(plan.outsider, cls=host_cls, ip=None, gateway=plan.outsider_core_ip)
            self.addLink(out, core, intfName1=f"{plan.outsider}-eth0",
                         intfName2=f"{plan.core}-eth{len(plan.all_ases) + 1}",
                         params1={"ip": f"{plan.outsider_ip}/24"}, params2={"ip": f"{plan.outsider_core_ip}/24"})


TOPOLOGIES = {"paper": PaperTopo}
"""Topologies by name, for ``corecast list`` and ``--topology``."""
