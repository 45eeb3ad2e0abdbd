"""IPsec in a running lab: RFC 4301 §5.1/§5.2 processing on nodes, through the key engine."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import HAO, IPv6, IPv6ExtHdrDestOpt

from mip6lab.ipsec import (BYPASS, DISCARD, PROTECT, IPsecStack, IPsecTemplate, KeyMessage,
                           Lifetime, MigrateRequest, SecurityAssociation, SecurityPolicy,
                           Selectors)
from mip6lab.crypto.esp_suites import suite_spec
from mip6lab.ipsec.wireshark import write_esp_sa
from mip6lab.net.apps import UdpClient, UdpEchoServer
from mip6lab.net.lab import Lab
from mip6lab.testing.prereq import require_tool
from mip6lab.testing.tshark import check_capture, tshark_fields



def manual_keys(node, local, remote, spi_out, spi_in, *, mode="transport", suite="aes128gcm16",
                selectors=None, encap=None, reqid=1, lifetime=None, tunnel=None,
                socket_name="setkey"):
    """Install one policy and an SA pair on ``node`` through its key engine."""
    stack = node.ipsec or IPsecStack(node)
    sock = stack.engine.open(socket_name)
    if selectors is None:
        selectors = Selectors.make(local=local, remote=remote, protocol="udp")
    outer_local, outer_remote = tunnel or (local, remote)
    template = IPsecTemplate(mode, outer_local if mode == "tunnel" else None,
                             outer_remote if mode == "tunnel" else None, reqid)
    assert sock.send(KeyMessage("SPDADD", policy=SecurityPolicy(selectors, PROTECT,
                                                                template))).error is None
    spec = suite_spec(suite)
    keys = (bytes(range(spec.enc_key_len)), bytes(range(100, 100 + spec.integ_key_len)))
    encap_out = encap
    encap_in = (encap[1], encap[0]) if encap else None
    for spi, direction, src, dst, ports in ((spi_out, "out", outer_local, outer_remote, encap_out),
                                            (spi_in, "in", outer_remote, outer_local, encap_in)):
        sa = SecurityAssociation(spi, direction, src, dst, suite, *keys, mode=mode, reqid=reqid,
                                 encap=ports, lifetime=lifetime or Lifetime())
        assert sock.send(KeyMessage("ADD", sa=sa)).error is None
    return stack


def pair_lab(seed=1, family=6, **keying):
    """Two hosts on one segment, a UDP client on ``a`` and an echo server on ``b``."""
    a_addr, b_addr = ("2001:db8:1::a", "2001:db8:1::b") if family == 6 else \
        ("192.0.2.10", "192.0.2.20")
    plen = 64 if family == 6 else 24

    def build(lab):
        lab.add_link("lan")
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.connect(a, "lan", addresses=[f"{a_addr}/{plen}"])
        lab.connect(b, "lan", addresses=[f"{b_addr}/{plen}"])
        if keying is not None:
            manual_keys(a, a_addr, b_addr, 0x1001, 0x2002, **keying)
            manual_keys(b, b_addr, a_addr, 0x2002, 0x1001, **keying)
        UdpEchoServer(b, 7)
        lab.client = UdpClient(a, b_addr, 7, count=3, start=0.1, sport=5000)

    return Lab(seed=seed, build=build)


def udp_frames_in_clear(lab):
    return [e for e in lab.events.frames() if e.summary.startswith("UDP")]


@pytest.mark.parametrize("family", [6, 4])
@pytest.mark.parametrize("suite", ["aes128gcm16", "aes256-sha256", "null-sha256"])
def test_transport_mode_protects_udp_both_ways(family, suite):
    lab = pair_lab(family=family, suite=suite)
    lab.run(until=4)
    assert lab.client.answers == [1, 2, 3]
    assert udp_frames_in_clear(lab) == []          # nothing of it crossed in the clear
    esp = [e for e in lab.events.frames() if e.scapy().lastlayer().name == "ESP"
           or "ESP" in repr(e.scapy())]
    assert len(esp) == 6
    a, b = lab.nodes["a"].ipsec, lab.nodes["b"].ipsec
    assert a.sad.get(0x1001, "out").seq == 3 and b.sad.get(0x1001, "in").replay.top == 3
    assert a.stats["protected"] == 3 and a.stats["decapsulated"] == 3
    assert lab.errors == [] and not lab.events.filter(kind="error")


def test_tshark_decrypts_the_lab_capture_with_exported_keys(tmp_path):
    require_tool("tshark")
    lab = pair_lab(family=6, suite="aes256-sha256")
    lab.run(until=4)
    pcap = tmp_path / "esp.pcapng"
    lab.trace.write_pcapng(pcap)
    keys = tmp_path / "keys"
    write_esp_sa(keys, list(lab.nodes["a"].ipsec.sad))
    check_capture(pcap, keys_dir=keys)
    rows = tshark_fields(pcap, ["esp.spi", "udp.dstport", "udp.srcport"], "esp",
                         keys_dir=keys)
    assert len(rows) == 6
    assert sorted(r["udp.dstport"][0] for r in rows) == ["5000"] * 3 + ["7"] * 3


def test_unprotected_packet_that_policy_says_must_be_protected_is_dropped():
    def build(lab):
        lab.add_link("lan")
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.connect(a, "lan", addresses=["2001:db8:1::a/64"])
        lab.connect(b, "lan", addresses=["2001:db8:1::b/64"])
        manual_keys(b, "2001:db8:1::b", "2001:db8:1::a", 0x2002, 0x1001)  # only b has IPsec
        UdpEchoServer(b, 7)
        lab.client = UdpClient(a, "2001:db8:1::b", 7, count=2, start=0.1, sport=5000)

    lab = Lab(seed=2, build=build)
    lab.run(until=3)
    assert lab.client.answers == []
    drops = lab.events.filter(node="b", module="ipsec", kind="drop")
    assert len(drops) == 2
    assert "unprotected packet" in drops[0].reason and "requires ESP" in drops[0].reason
    assert "proto=udp" in drops[0].reason      # the rule is named
    assert lab.nodes["b"].ipsec.stats["dropped_in"] == 2


def test_protect_without_sa_sends_acquire_to_registered_key_manager_once_per_holddown():
    def build(lab):
        lab.add_link("lan")
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.connect(a, "lan", addresses=["2001:db8:1::a/64"])
        lab.connect(b, "lan", addresses=["2001:db8:1::b/64"])
        stack = IPsecStack(a)
        lab.ike = stack.engine.open("iked")
        lab.ike.register("ACQUIRE")
        lab.mobility = stack.engine.open("mobility")
        lab.mobility.send(KeyMessage("SPDADD", policy=SecurityPolicy(
            Selectors.make(remote="2001:db8:1::b", protocol="udp"), PROTECT,
            IPsecTemplate("transport", reqid=7))))
        lab.client = UdpClient(a, "2001:db8:1::b", 7, count=5, interval=0.3, start=0.1)

    lab = Lab(seed=3, build=build)
    lab.run(until=2)
    acquires = [m for m in lab.ike.received if m.type == "ACQUIRE"]
    assert len(acquires) == 2                       # t=0.1 and t=1.3 (1 s hold-down)
    assert acquires[0].policy.template.reqid == 7
    assert str(acquires[0].dst) == "2001:db8:1::b"
    assert not [m for m in lab.mobility.received if m.type == "ACQUIRE"]  # not registered
    assert len(lab.events.filter(node="a", module="ipsec", kind="drop")) == 5
    seam = lab.events.filter(kind="seam", where=lambda e: e.data["message"] == "ACQUIRE")
    assert seam and seam[0].data["receivers"] == ["iked"]


def test_discard_and_bypass_rules_and_default_action():
    def build(lab):
        lab.add_link("lan")
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.connect(a, "lan", addresses=["2001:db8:1::a/64"])
        lab.connect(b, "lan", addresses=["2001:db8:1::b/64"])
        stack = IPsecStack(a, default_action=DISCARD)
        sock = stack.engine.open("admin")
        sock.send(KeyMessage("SPDADD", policy=SecurityPolicy(
            Selectors.make(protocol="udp", remote_port=9), DISCARD, name="no-discard-service")))
        sock.send(KeyMessage("SPDADD", policy=SecurityPolicy(
            Selectors.make(protocol="udp", remote_port=7), BYPASS)))
        UdpEchoServer(b, 7)
        UdpEchoServer(b, 9)
        lab.c7 = UdpClient(a, "2001:db8:1::b", 7, count=1, start=0.1, sport=5007)
        lab.c9 = UdpClient(a, "2001:db8:1::b", 9, count=1, start=0.1, sport=5009)

    lab = Lab(seed=4, build=build)
    lab.run(until=2)
    # the answer to port 7 comes back from remote port 7: the same BYPASS entry admits it
    assert lab.c7.answers == [1]
    assert lab.c9.answers == []
    reasons = [e.reason for e in lab.events.filter(node="a", module="ipsec", kind="drop")]
    assert any("DISCARD (no-discard-service" in r for r in reasons)


def test_tunnel_mode_between_gateways_carries_ipv4_inside_ipv6():
    """Two IPv4 hosts behind two gateways that only share an IPv6 link."""

    def build(lab):
        for name in ("left", "core", "right"):
            lab.add_link(name)
        h1, h2 = lab.add_host("h1"), lab.add_host("h2")
        g1, g2 = lab.add_router("g1"), lab.add_router("g2")
        lab.connect(h1, "left", addresses=["192.0.2.10/24"])
        lab.connect(g1, "left", addresses=["192.0.2.1/24"])
        lab.connect(g1, "core", addresses=["2001:db8:ff::1/64"])
        lab.connect(g2, "core", addresses=["2001:db8:ff::2/64"])
        lab.connect(g2, "right", addresses=["198.51.100.1/24"])
        lab.connect(h2, "right", addresses=["198.51.100.10/24"])
        h1.routes.add("0.0.0.0/0", "eth0", "192.0.2.1")
        h2.routes.add("0.0.0.0/0", "eth0", "198.51.100.1")
        sel1 = Selectors.make(local="192.0.2.0/24", remote="198.51.100.0/24")
        sel2 = Selectors.make(local="198.51.100.0/24", remote="192.0.2.0/24")
        manual_keys(g1, None, None, 0x3001, 0x3002, mode="tunnel", selectors=sel1,
                    tunnel=("2001:db8:ff::1", "2001:db8:ff::2"))
        manual_keys(g2, None, None, 0x3002, 0x3001, mode="tunnel", selectors=sel2,
                    tunnel=("2001:db8:ff::2", "2001:db8:ff::1"))
        UdpEchoServer(h2, 7)
        lab.client = UdpClient(h1, "198.51.100.10", 7, count=3, start=0.1)

    lab = Lab(seed=5, build=build)
    lab.run(until=4)
    assert lab.client.answers == [1, 2, 3]
    core = lab.events.frames().filter(link="core")
    assert core and not [e for e in core if e.summary.startswith("UDP")]
    # the outer header is IPv6 between the gateways, next header ESP
    outer = [e.scapy()[IPv6] for e in core if IPv6 in e.scapy() and e.scapy()[IPv6].nh == 50]
    assert len(outer) == 6
    assert {(p.src, p.dst) for p in outer} == {("2001:db8:ff::1", "2001:db8:ff::2"),
                                              ("2001:db8:ff::2", "2001:db8:ff::1")}


def nat_lab(seed=6, keepalive=None, transport=False, timeout=30.0):
    """host4 behind a NAT talks ESP-in-UDP to server; the server learns the NAT's port."""

    def build(lab):
        lab.add_link("lan4")
        lab.add_link("wan4", "p2p")
        host, server = lab.add_host("host4"), lab.add_host("server")
        nat = lab.add_nat("nat", mapping_timeout=timeout)
        lab.connect(host, "lan4", addresses=["192.0.2.10/24"])
        lab.connect(nat, "lan4", addresses=["192.0.2.1/24"])
        lab.connect(nat, "wan4", addresses=["203.0.113.2/24"])
        lab.connect(server, "wan4", addresses=["203.0.113.10/24"])
        host.routes.add("0.0.0.0/0", "eth0", "192.0.2.1")
        stack = IPsecStack(host)
        IPsecStack(server)
        lab.host_stack = stack
        if keepalive:
            stack.start_keepalives("192.0.2.10", "203.0.113.10", interval=keepalive)

    lab = Lab(seed=seed, build=build)
    return lab


def _key_nat_lab(lab, transport):
    """Install SAs once the NAT mapping of 4500 is known (as IKE would learn it)."""
    nat = lab.nodes["nat"].nat
    port = next(m["outside_port"] for m in nat.table() if m["inside"] == "192.0.2.10:4500")
    mode = "transport" if transport else "tunnel"
    host_sel = Selectors.make(local="192.0.2.10", remote="203.0.113.10", protocol="udp")
    server_sel = Selectors.make(local="203.0.113.10", remote="203.0.113.2", protocol="udp") \
        if transport else Selectors.make(local="203.0.113.10", remote="192.0.2.10",
                                         protocol="udp")
    manual_keys(lab.nodes["host4"], "192.0.2.10", "203.0.113.10", 0x4001, 0x4002, mode=mode,
                selectors=host_sel, encap=(4500, 4500))
    manual_keys(lab.nodes["server"], "203.0.113.10", "203.0.113.2", 0x4002, 0x4001,
                mode=mode, selectors=server_sel, encap=(4500, port))
    return port


@pytest.mark.parametrize("transport", [False, True])
def test_esp_in_udp_through_the_nat(transport):
    lab = nat_lab(keepalive=10.0)
    lab.run(until=0.5)                 # the first keepalive makes the NAT mapping
    port = _key_nat_lab(lab, transport)
    assert port != 4500 or lab.nodes["nat"].nat.port_range[0] <= 4500
    UdpEchoServer(lab.nodes["server"], 7)
    client = UdpClient(lab.nodes["host4"], "203.0.113.10", 7, count=3, start=0.1,
                       sport=6000)
    lab.run(until=5)
    assert client.answers == [1, 2, 3]
    wan = lab.events.frames().filter(link="wan4")
    data = [e.scapy() for e in wan if UDP in e.scapy() and len(e.scapy()[UDP].payload) > 1]
    assert data and all(p[UDP].sport in (4500, port) and p[UDP].dport in (4500, port)
                        for p in data)
    assert all(p[UDP].chksum == 0 for p in data if p[IP].src == "203.0.113.10")
    if transport:
        # the server saw the datagrams from the NAT's address: the inner UDP checksum was
        # recomputed after decapsulation (RFC 3948 §3.1.2), or the host stack would drop
        assert not lab.events.filter(kind="drop", where=lambda e: "checksum" in (e.reason or ""))


def test_keepalives_keep_the_nat_mapping_and_are_ignored_by_the_receiver():
    lab = nat_lab(keepalive=5.0, timeout=12.0)
    lab.run(until=59)
    nat = lab.nodes["nat"].nat
    assert nat.stats["mappings"] == 1 and nat.stats["expired"] == 0
    assert lab.host_stack.stats["keepalives_sent"] == 12
    assert lab.nodes["server"].ipsec.stats["keepalives"] == 12
    keepalives = [e.scapy() for e in lab.events.frames().filter(link="wan4")
                  if UDP in e.scapy()]
    assert len(keepalives) == 12 and all(bytes(p[UDP].payload) == b"\xff" and p[UDP].chksum == 0 for p in keepalives)


def test_without_keepalives_the_mapping_expires():
    lab = nat_lab(keepalive=None, timeout=12.0)
    lab.host_stack.start_keepalives("192.0.2.10", "203.0.113.10", interval=100.0)
    lab.run(until=60)
    assert lab.nodes["nat"].nat.stats["expired"] == 1


def test_lifetimes_raise_soft_then_hard_expire_and_remove_the_sa():
    lab = pair_lab(suite="aes128gcm16", lifetime=Lifetime(soft_seconds=2, hard_seconds=3))
    listener = lab.nodes["a"].ipsec.engine.open("iked")
    lab.run(until=5)
    expires = [(m.lifetime_kind, m.sa.spi, m.sa.direction) for m in listener.received
               if m.type == "EXPIRE"]
    assert ("soft", 0x1001, "out") in expires and ("hard", 0x1001, "out") in expires
    assert expires.index(("soft", 0x1001, "out")) < expires.index(("hard", 0x1001, "out"))
    assert lab.nodes["a"].ipsec.sad.get(0x1001, "out") is None


def test_byte_lifetime_expires_on_use():
    lab = pair_lab(suite="aes128gcm16", lifetime=Lifetime(soft_bytes=20, hard_bytes=40))
    listener = lab.nodes["a"].ipsec.engine.open("iked")
    lab.run(until=5)
    kinds = [m.lifetime_kind for m in listener.received
             if m.type == "EXPIRE" and m.sa.spi == 0x1001 and m.sa.direction == "out"]
    assert kinds == ["soft", "hard"]
    assert lab.client.answers == [1, 2]     # the third datagram finds no SA


def test_decrypted_packet_must_match_the_policy_of_its_sa():
    """b's SA for reqid 1 carries UDP; an ICMPv6 ping protected with it is refused."""
    lab = pair_lab(suite="aes128gcm16")
    a = lab.nodes["a"]
    # a second rule on a, for ICMPv6, that (wrongly) uses the UDP SA's reqid
    a.ipsec.engine.open("setkey").send(KeyMessage("SPDADD", policy=SecurityPolicy(
        Selectors.make(local="2001:db8:1::a", remote="2001:db8:1::b", protocol="icmpv6"),
        PROTECT, IPsecTemplate("transport", reqid=1)), ))
    a.ping("2001:db8:1::b", seq=1)
    lab.run(until=1)
    drops = lab.events.filter(node="b", module="ipsec", kind="drop")
    assert drops and "RFC 4301 §5.2 step 4" in drops[0].reason
    assert lab.nodes["b"].ipsec.sad.get(0x1001, "in").errors == {"policy mismatch": 1}


def test_home_address_option_makes_the_hoa_the_selector_address():
    """RFC 4877 §4.2: the policy is written for the HoA; the packet leaves from the CoA."""
    hoa, coa, ha = "2001:db8:aaaa::100", "2001:db8:2::5", "2001:db8:1::1"

    def build(lab):
        lab.add_link("lan")
        mn, ha_node = lab.add_host("mn"), lab.add_host("ha")
        lab.connect(mn, "lan", addresses=[f"{coa}/64"])
        lab.connect(ha_node, "lan", addresses=[f"{ha}/64"])
        mn.routes.add("2001:db8:1::/64", "eth0")
        ha_node.routes.add("2001:db8:2::/64", "eth0")
        manual_keys(mn, hoa, ha, 0x5001, 0x5002,
                    selectors=Selectors.make(local=hoa, remote=ha, protocol="udp"))
        manual_keys(ha_node, ha, hoa, 0x5002, 0x5001,
                    selectors=Selectors.make(local=ha, remote=hoa, protocol="udp"))
        lab.received = []
        ha_node.bind_udp(7, lab.received.append)

    lab = Lab(seed=8, build=build)
    mn = lab.nodes["mn"]
    mn.send_ip(IPv6(src=coa, dst=ha) / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)])
               / UDP(sport=5000, dport=7) / b"binding-ish")
    lab.run(until=1)
    assert lab.nodes["mn"].ipsec.stats["protected"] == 1
    frame = lab.events.frames().filter(node="mn", where=lambda e: IPv6 in e.scapy()
                                       and e.scapy()[IPv6].dst == ha)[0].scapy()
    assert frame[IPv6].src == coa                      # the wire shows the CoA ...
    assert frame[IPv6ExtHdrDestOpt].nh == 50           # ... HAO first, then ESP
    assert len(lab.received) == 1 and lab.received[0].payload == b"binding-ish"


def test_migrate_moves_tunnel_sas_to_a_new_care_of_address():
    """The K-bit mechanics: after MIGRATE the tunnel SAs use the new outer address."""

    def build(lab):
        lab.add_link("lan")
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.connect(a, "lan", addresses=["2001:db8:1::a/64", "2001:db8:1::aa/64"])
        lab.connect(b, "lan", addresses=["2001:db8:1::b/64"])
        sel_a = Selectors.make(local="2001:db8:aaaa::1", remote="2001:db8:bbbb::1")
        sel_b = Selectors.make(local="2001:db8:bbbb::1", remote="2001:db8:aaaa::1")
        manual_keys(a, None, None, 0x6001, 0x6002, mode="tunnel", selectors=sel_a,
                    tunnel=("2001:db8:1::a", "2001:db8:1::b"))
        manual_keys(b, None, None, 0x6002, 0x6001, mode="tunnel", selectors=sel_b,
                    tunnel=("2001:db8:1::b", "2001:db8:1::a"))
        a.interface().add_address("2001:db8:aaaa::1/128")
        b.interface().add_address("2001:db8:bbbb::1/128")
        lab.sel_a, lab.sel_b = sel_a, sel_b

    lab = Lab(seed=9, build=build)
    a, b = lab.nodes["a"], lab.nodes["b"]
    iked = b.ipsec.engine.open("iked")
    for node, sel, old, new in (
            (a, lab.sel_a, ("2001:db8:1::a", "2001:db8:1::b"), ("2001:db8:1::aa", "2001:db8:1::b")),
            (b, lab.sel_b, ("2001:db8:1::b", "2001:db8:1::a"), ("2001:db8:1::b", "2001:db8:1::aa"))):
        reply = node.ipsec.engine.open("mobility").send(KeyMessage(
            "MIGRATE", selectors=sel, k_bit=True,
            migrate=[MigrateRequest(*map(ipaddress.ip_address, old + new), reqid=1)]))
        assert reply.error is None and reply.note == "2 SAs moved"
    assert [m.type for m in iked.received] == ["MIGRATE"] and iked.received[0].k_bit
    a.send_ip(IPv6(src="2001:db8:aaaa::1", dst="2001:db8:bbbb::1") / UDP(sport=1, dport=7))
    b.bind_udp(7, lambda d: setattr(lab, "got", d))
    lab.run(until=1)
    assert lab.got.payload == b""
    outer = [e.scapy()[IPv6] for e in lab.events.frames()
             if IPv6 in e.scapy() and e.scapy()[IPv6].nh == 50]
    assert [(p.src, p.dst) for p in outer] == [("2001:db8:1::aa", "2001:db8:1::b")]
    assert b.ipsec.sad.get(0x6001, "in").src == ipaddress.ip_address("2001:db8:1::aa")


def test_same_seed_same_bytes_with_ipsec(tmp_path):
    first, second = pair_lab(seed=11, suite="aes128-sha256"), pair_lab(seed=11,
                                                                       suite="aes128-sha256")
    for lab, name in ((first, "1"), (second, "2")):
        lab.run(until=3)
        lab.trace.write_pcapng(tmp_path / f"{name}.pcapng")
    assert (tmp_path / "1.pcapng").read_bytes() == (tmp_path / "2.pcapng").read_bytes()


def test_a_refused_tunnelled_packet_does_not_let_the_next_esp_packet_skip_ipsec():
    """The inner packet of the first ESP packet is for an address b does not own: it is
    dropped -- and the next ESP packet must still be decrypted, not delivered raw."""

    def build(lab):
        lab.add_link("lan")
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.connect(a, "lan", addresses=["2001:db8:1::a/64", "2001:db8:aaaa::1/128"])
        lab.connect(b, "lan", addresses=["2001:db8:1::b/64"])
        sel_a = Selectors.make(local="2001:db8:aaaa::1", remote="2001:db8:bbbb::/64")
        sel_b = Selectors.make(local="2001:db8:bbbb::/64", remote="2001:db8:aaaa::1")
        manual_keys(a, None, None, 0x7001, 0x7002, mode="tunnel", selectors=sel_a,
                    tunnel=("2001:db8:1::a", "2001:db8:1::b"))
        manual_keys(b, None, None, 0x7002, 0x7001, mode="tunnel", selectors=sel_b,
                    tunnel=("2001:db8:1::b", "2001:db8:1::a"))

    lab = Lab(seed=12, build=build)
    a = lab.nodes["a"]
    for seq in (1, 2):   # b owns no 2001:db8:bbbb:: address and does not forward
        a.send_ip(IPv6(src="2001:db8:aaaa::1", dst="2001:db8:bbbb::1") / UDP(sport=1, dport=7))
    lab.run(until=1)
    drops = lab.events.filter(node="b", kind="drop")
    assert len(drops) == 2
    assert all("not addressed to b" in d.reason for d in drops)
    assert lab.nodes["b"].ipsec.stats["decapsulated"] == 2
