"""IkeDaemon on two lab hosts: the negotiated child SA installed through the key engine,
traffic from the assigned HoA inside ESP, the capture dissected by tshark, determinism,
and NAT traversal through the in-process NAT44."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from mip6lab.ikev2.config import IkeConfig
from mip6lab.ikev2.daemon import IkeDaemon
from mip6lab.ikev2.pools import AddressPool
from mip6lab.ikev2.wireshark import write_ikev2_decryption_table
from mip6lab.ipsec import PROTECT
from mip6lab.ipsec.wireshark import write_esp_sa
from mip6lab.net.apps import UdpClient, UdpEchoServer
from mip6lab.net.lab import Lab
from mip6lab.testing.prereq import require_tool
from mip6lab.testing.tshark import check_capture, tshark_fields

MN, HA = "2001:db8:2::10", "2001:db8:2::1"
HOA = "2001:db8:aaaa::1"
MN_ID, HA_ID, PSK = "mn@mip6lab.example", "ha.mip6lab.example", "psk-lab-0123"


def ike_lab(seed=3, request=("ipv6",), psk=PSK):
    def build(lab):
        lab.add_link("lan")
        mn, ha = lab.add_host("mn"), lab.add_host("ha")
        lab.connect(mn, "lan", addresses=[f"{MN}/64"])
        lab.connect(ha, "lan", addresses=[f"{HA}/64"])
        lab.mnd = IkeDaemon(mn, IkeConfig.make(MN_ID, psk, HA_ID, request=request))
        lab.had = IkeDaemon(ha, IkeConfig.make(HA_ID, PSK, MN_ID,
                                               pool6=AddressPool.parse("2001:db8:aaaa::/64")))
        UdpEchoServer(ha, 7)

    lab = Lab(seed=seed, build=build)
    lab.at(0.1, lab.mnd.initiate, HA)
    return lab


def _use_hoa(lab, start=0.0):
    """The MN configures the address IKE gave it and talks from it."""
    mn = lab.nodes["mn"]
    mn.interfaces["eth0"].add_address(f"{HOA}/128")
    return UdpClient(mn, HA, 7, count=3, start=start, sport=5000, src=HOA)


def test_daemons_install_the_child_sa_pair_and_policies_through_the_key_engine():
    lab = ike_lab()
    lab.run(until=1)
    mn, ha = lab.nodes["mn"], lab.nodes["ha"]
    (mn_sa,), (ha_sa,) = lab.mnd.established, lab.had.established
    assert mn_sa.spi_pair == ha_sa.spi_pair
    child_mn, child_ha = mn_sa.child, ha_sa.child
    assert child_mn.inbound_spi == child_ha.outbound_spi
    assert child_mn.outbound_spi == child_ha.inbound_spi
    # the SADs hold the pair, crosswise, with the same keys
    mn_in, mn_out = mn.ipsec.sad.get(child_mn.inbound_spi, "in"), \
        mn.ipsec.sad.get(child_mn.outbound_spi, "out")
    ha_in, ha_out = ha.ipsec.sad.get(child_ha.inbound_spi, "in"), \
        ha.ipsec.sad.get(child_ha.outbound_spi, "out")
    assert None not in (mn_in, mn_out, ha_in, ha_out)
    assert mn_out.enc_key == ha_in.enc_key and ha_out.enc_key == mn_in.enc_key
    assert mn_out.src == ipaddress.ip_address(MN) and mn_out.dst == ipaddress.ip_address(HA)
    assert mn_out.mode == "tunnel"
    # PROTECT policies owned by iked, with the HoA as the MN's selector
    for node, local, remote in ((mn, HOA, HA), (ha, HA, HOA)):
        policies = [p for p in node.ipsec.spd if p.owner == "iked" and p.action == "protect"]
        assert policies and all(p.action == PROTECT for p in policies)
        assert any(p.selectors.local == ipaddress.ip_network(local) and
                   p.selectors.remote == ipaddress.ip_network(remote) for p in policies)
    # every crossing that installed them is a seam event sent by iked
    for node in ("mn", "ha"):
        sent = [e.data["message"] for e in lab.events.filter(node=node, module="keyengine",
                                                             kind="seam")
                if e.data.get("sender") == "iked"]
        assert sent.count("UPDATE") == 1 and sent.count("ADD") == 1
        assert sent.count("SPDADD") >= 1 and "GETSPI" in sent
    assert not lab.events.filter(kind="error")
    assert not lab.mnd.failures and not lab.had.failures


def test_ike_messages_on_the_wire_and_address_assignment_events():
    lab = ike_lab()
    lab.run(until=1)
    ike = [e.scapy() for e in lab.events.frames()
           if UDP in e.scapy() and 500 in (e.scapy()[UDP].sport, e.scapy()[UDP].dport)]
    assert [bytes(p[UDP].payload)[18] for p in ike] == [34, 34, 35, 35]
    assigned = lab.events.filter(node="ha", module="ike",
                                 where=lambda e: e.data.get("attribute") ==
                                 "INTERNAL_IP6_ADDRESS")
    assert len(assigned) == 1 and assigned[0].data["value"].startswith(HOA)


def test_udp_from_the_hoa_flows_inside_esp():
    lab = ike_lab()
    lab.run(until=0.5)
    client = _use_hoa(lab)
    lab.run(until=5)
    assert client.answers == [1, 2, 3]
    frames = [e.scapy() for e in lab.events.frames().filter(since=0.5)]
    clear_udp = [p for p in frames if UDP in p and p[UDP].dport != 500 and p[UDP].sport != 500]
    assert clear_udp == []
    esp = [p for p in frames if IPv6 in p and p[IPv6].nh == 50]
    assert len(esp) == 6
    assert {(p[IPv6].src, p[IPv6].dst) for p in esp} == {(MN, HA), (HA, MN)}
    assert lab.nodes["mn"].ipsec.stats["protected"] == 3
    assert lab.nodes["ha"].ipsec.stats["protected"] == 3


def test_without_the_sa_udp_from_the_hoa_is_not_protected():
    """Control: with the wrong PSK no SA exists and nothing is ESP."""
    lab = ike_lab(psk="wrong-psk")
    lab.run(until=1)
    assert not lab.mnd.established and not lab.had.established
    assert [f.notify for f in lab.mnd.failures] == ["AUTHENTICATION_FAILED"]
    assert [f.notify for f in lab.had.failures] == ["AUTHENTICATION_FAILED"]
    assert not [p for p in lab.nodes["mn"].ipsec.spd
                if p.owner == "iked" and p.action == "protect"]
    assert len(list(lab.nodes["ha"].ipsec.sad)) <= 1       # at most the larval GETSPI one


def test_capture_passes_tshark_and_dissects_ike(tmp_path):
    require_tool("tshark")
    lab = ike_lab()
    lab.run(until=0.5)
    _use_hoa(lab)
    lab.run(until=5)
    pcap = tmp_path / "ike.pcapng"
    lab.trace.write_pcapng(pcap)
    keys = tmp_path / "keys"
    write_ikev2_decryption_table(keys, lab.mnd.sas.values())
    write_esp_sa(keys, list(lab.nodes["mn"].ipsec.sad))
    check_capture(pcap, keys_dir=keys)
    rows = tshark_fields(pcap, ["isakmp.exchangetype", "isakmp.ispi"], "isakmp", keys_dir=keys)
    assert sorted(r["isakmp.exchangetype"][0] for r in rows) == ["34", "34", "35", "35"]
    (spi_i,) = {r["isakmp.ispi"][0] for r in rows}
    assert spi_i.replace(":", "").lower().endswith(lab.mnd.established[0].spi_i.hex())
    esp = tshark_fields(pcap, ["esp.spi", "udp.dstport"], "esp", keys_dir=keys)
    assert len(esp) == 6
    assert sorted(r["udp.dstport"][0] for r in esp if r["udp.dstport"]) == \
        ["5000"] * 3 + ["7"] * 3


def test_same_seed_same_pcapng_bytes(tmp_path):
    paths = []
    for name in ("1", "2"):
        lab = ike_lab(seed=9)
        lab.run(until=0.5)
        _use_hoa(lab)
        lab.run(until=4)
        paths.append(tmp_path / f"{name}.pcapng")
        lab.trace.write_pcapng(paths[-1])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = ike_lab(seed=10)
    other.run(until=1)
    other.trace.write_pcapng(tmp_path / "3.pcapng")
    assert (tmp_path / "3.pcapng").read_bytes() != paths[0].read_bytes()


def test_delete_removes_sas_and_policies_on_both_nodes_and_returns_the_lease():
    lab = ike_lab()
    lab.run(until=1)
    (sa,) = lab.mnd.established
    lab.at(1.5, lab.mnd.delete, sa)
    lab.run(until=3)
    for node in ("mn", "ha"):
        assert not [p for p in lab.nodes[node].ipsec.spd
                    if p.owner == "iked" and p.action == "protect"]
        assert not [s for s in lab.nodes[node].ipsec.sad if s.spi in (
            sa.child.inbound_spi, sa.child.outbound_spi)]
    assert lab.had.config.pool6.leases == {}


# -- NAT traversal -------------------------------------------------------------------------


def nat_ike_lab(seed=6):
    """host4 behind the NAT44 initiates to server (IPv4 documentation addresses)."""

    def build(lab):
        lab.add_link("lan4")
        lab.add_link("wan4", "p2p")
        host, server = lab.add_host("host4"), lab.add_host("server")
        lab.add_nat("nat", mapping_timeout=60.0)
        lab.connect(host, "lan4", addresses=["192.0.2.10/24"])
        lab.connect(lab.nodes["nat"], "lan4", addresses=["192.0.2.1/24"])
        lab.connect(lab.nodes["nat"], "wan4", addresses=["203.0.113.2/24"])
        lab.connect(server, "wan4", addresses=["203.0.113.10/24"])
        host.routes.add("0.0.0.0/0", "eth0", "192.0.2.1")
        lab.hostd = IkeDaemon(host, IkeConfig.make("host4@mip6lab.example", PSK,
                                                   "server.mip6lab.example"))
        lab.serverd = IkeDaemon(server, IkeConfig.make(
            "server.mip6lab.example", PSK, "host4@mip6lab.example",
            remote_ts=[_ts("192.0.2.0/24"), _ts("203.0.113.0/24")]))
        UdpEchoServer(server, 7)

    lab = Lab(seed=seed, build=build)
    lab.at(0.1, lab.hostd.initiate, "203.0.113.10")
    return lab


def _ts(net):
    from mip6lab.ikev2.ts import TrafficSelector
    return TrafficSelector.from_network(net)


def test_nat_is_detected_the_initiator_moves_to_4500_and_the_child_sa_is_encapsulated():
    lab = nat_ike_lab()
    lab.run(until=2)
    assert lab.hostd.established and lab.serverd.established, \
        (lab.hostd.failures, lab.serverd.failures)
    host_sa, server_sa = lab.hostd.established[0], lab.serverd.established[0]
    assert host_sa.nat_detected and server_sa.nat_detected
    assert host_sa.nat_local and not host_sa.nat_remote
    assert server_sa.nat_remote and not server_sa.nat_local
    assert host_sa.local_port == host_sa.remote_port == 4500
    assert host_sa.child.udp_encapsulation and server_sa.child.udp_encapsulation
    lan = [e.scapy() for e in lab.events.frames().filter(link="lan4")]
    requests = [p for p in lan if UDP in p and p[IP].src == "192.0.2.10"
                and len(p[UDP].payload) > 1]
    assert [(p[UDP].sport, p[UDP].dport) for p in requests[:2]] == [(500, 500), (4500, 4500)]
    assert bytes(requests[1][UDP].payload)[:4] == bytes(4)            # non-ESP marker
    assert bytes(requests[1][UDP].payload)[4 + 18] == 35              # IKE_AUTH
    host_out = lab.nodes["host4"].ipsec.sad.get(host_sa.child.outbound_spi, "out")
    assert host_out.encap == (4500, 4500)
    assert lab.nodes["host4"].ipsec.stats["keepalives_sent"] >= 1


def test_through_the_nat_the_responder_follows_to_4500_and_traffic_flows():
    lab = nat_ike_lab()
    lab.run(until=2)
    server_sa = lab.serverd.established[0]
    wan = [e.scapy() for e in lab.events.frames().filter(link="wan4")]
    auth_answer = [p for p in wan if UDP in p and p[IP].src == "203.0.113.10"
                   and len(p[UDP].payload) > 1][1]
    assert auth_answer[UDP].sport == 4500 and bytes(auth_answer[UDP].payload)[:4] == bytes(4)
    assert server_sa.local_port == 4500 and server_sa.remote_port != 500
    server_out = lab.nodes["server"].ipsec.sad.get(server_sa.child.outbound_spi, "out")
    assert server_out.encap == (4500, server_sa.remote_port)
    assert str(server_out.dst) == "203.0.113.2"
    client = UdpClient(lab.nodes["host4"], "203.0.113.10", 7, count=3, start=0.1,
                       sport=6000)
    lab.run(until=6)
    assert client.answers == [1, 2, 3]
    wan = [e.scapy() for e in lab.events.frames().filter(since=2, link="wan4")]
    data = [p for p in wan if UDP in p and len(p[UDP].payload) > 1]
    assert data and all(4500 in (p[UDP].sport, p[UDP].dport) for p in data)


def test_ike_messages_after_establishment_stay_in_the_clear():
    lab = ike_lab(request=())
    lab.run(until=1)
    (sa,) = lab.mnd.established
    lab.at(1.5, lab.mnd.delete, sa)
    lab.run(until=3)
    assert sa.state == "CLOSED"
    later = [e.scapy() for e in lab.events.frames().filter(since=1.5)]
    assert [bytes(p[UDP].payload)[18] for p in later if UDP in p and p[UDP].dport == 500
            or UDP in p and p[UDP].sport == 500] == [37, 37]
    assert not [p for p in later if IPv6 in p and p[IPv6].nh == 50]


def test_the_daemon_keeps_its_own_ike_traffic_out_of_the_child_sas():
    """RFC 4301 §4.4.1: IKE is BYPASS. The daemon's two entries come first in the SPD."""
    lab = ike_lab(request=())
    lab.run(until=1)
    for node in ("mn", "ha"):
        first_two = list(lab.nodes[node].ipsec.spd)[:2]
        assert [p.action for p in first_two] == ["bypass", "bypass"]
        assert [p.selectors.local_port for p in first_two] == [(500, 500), (4500, 4500)]


def mobike_lab():
    """mn on v1 or v2 behind router r; ha on core. mn follows its move with MOBIKE."""
    from mip6lab.ikev2 import AddressPool as Pool

    def build(lab):
        for name in ("v1", "v2", "core"):
            lab.add_link(name)
        mn, ha, r = lab.add_host("mn"), lab.add_host("ha"), lab.add_router("r")
        lab.connect(mn, "v1")
        lab.connect(r, "v1", addresses=["2001:db8:11::1/64"])
        lab.connect(r, "v2", addresses=["2001:db8:12::1/64"])
        lab.connect(r, "core", addresses=["2001:db8:1::2/64"])
        lab.connect(ha, "core", addresses=["2001:db8:1::1/64"])
        r.advertise("eth0", ["2001:db8:11::/64"], interval=(0.2, 0.5))
        r.advertise("eth1", ["2001:db8:12::/64"], interval=(0.2, 0.5))
        ha.routes.add("::/0", "eth0", "2001:db8:1::2")
        lab.mnd = IkeDaemon(mn, IkeConfig.make("mn@mip6lab.example", PSK,
                                               "ha.mip6lab.example", request=("ipv6",)))
        lab.had = IkeDaemon(ha, IkeConfig.make("ha.mip6lab.example", PSK,
                                               "mn@mip6lab.example",
                                               pool6=Pool.parse("2001:db8:aaaa::/64")))
        UdpEchoServer(ha, 7)

    return Lab(seed=3, build=build)


def test_mobike_moves_the_ike_sa_and_the_child_sas_through_migrate():
    lab = mobike_lab()
    lab.at(1.5, lab.mnd.initiate, "2001:db8:1::1")
    client = UdpClient(lab.nodes["mn"], "2001:db8:1::1", 7, count=10, start=2.0,
                       src="2001:db8:aaaa::1", interval=0.5)
    lab.at(4.2, lab.move, "mn", "v2")

    def follow():
        new = next(str(a.ip) for a in lab.nodes["mn"].interface().addresses6
                   if a.origin == "slaac")
        lab.mnd.move(lab.mnd.established[-1], new)

    lab.at(5.0, follow)
    lab.run(until=8)
    new_coa = next(str(a.ip) for a in lab.nodes["mn"].interface().addresses6
                   if a.origin == "slaac")
    assert new_coa.startswith("2001:db8:12::")
    # the exchange is one INFORMATIONAL with UPDATE_SA_ADDRESSES, no new IKE_SA_INIT
    ike = [e for e in lab.events.frames().filter(node="mn") if e.summary.startswith("IKE ")]
    assert sum("IKE_SA_INIT request" in e.summary for e in ike) == 1
    assert any("INFORMATIONAL request" in e.summary and new_coa in e.summary for e in ike)
    # both daemons moved their SAs with MIGRATE through the key engine
    migrates = lab.events.filter(kind="seam", where=lambda e: e.data.get("message") == "MIGRATE"
                                 and e.data.get("sender") == "kernel")
    assert {e.node for e in migrates} == {"mn", "ha"}
    assert all("2 SAs moved" in e.summary for e in migrates)
    ha_out = [sa for sa in lab.nodes["ha"].ipsec.sad if sa.direction == "out"]
    assert [str(sa.dst) for sa in ha_out] == [new_coa]
    # traffic resumed after the move; only what was sent before the MOBIKE update was lost
    assert client.answers[-3:] == [8, 9, 10] and len(client.answers) >= 8


def test_tshark_decrypts_ike_auth_and_shows_idi_auth_cp_sa_and_ts(tmp_path):
    """Issue 4 item 9: with our ikev2_decryption_table tshark opens IKE_AUTH."""
    require_tool("tshark")
    lab = ike_lab()
    lab.run(until=1)
    pcap = tmp_path / "ike.pcapng"
    lab.trace.write_pcapng(pcap)
    write_ikev2_decryption_table(tmp_path / "keys", lab.mnd.sas.values())
    fields = ["isakmp.exchangetype", "isakmp.id.data.user_fqdn", "isakmp.id.data.fqdn",
              "isakmp.auth.method", "isakmp.cfg.type", "isakmp.cfg.attr.type",
              "isakmp.tf.id.encr", "isakmp.ts.start_ipv6"]
    rows = tshark_fields(pcap, fields, "isakmp.exchangetype == 35",
                         keys_dir=tmp_path / "keys")
    assert len(rows) == 2
    request, response = rows
    assert request["isakmp.id.data.user_fqdn"] == [MN_ID]        # IDi, RFC822
    assert response["isakmp.id.data.fqdn"] == [HA_ID]            # IDr
    assert request["isakmp.auth.method"] == response["isakmp.auth.method"] == ["2"]
    assert request["isakmp.cfg.type"] == ["1"] and response["isakmp.cfg.type"] == ["2"]
    assert "8" in response["isakmp.cfg.attr.type"]               # INTERNAL_IP6_ADDRESS
    assert request["isakmp.tf.id.encr"] == ["20"]                # ESP AES-GCM-16 in SAi2
    assert HOA in response["isakmp.ts.start_ipv6"]               # TSi narrowed to the HoA
    # without the key table the same messages are opaque
    assert tshark_fields(pcap, ["isakmp.id.data.user_fqdn"], "isakmp.exchangetype == 35"
                         ) == [{"isakmp.id.data.user_fqdn": []}] * 2


def test_a_packet_that_needs_an_sa_starts_the_negotiation_through_acquire():
    """Issue 4 item 6: an SPD entry without SA makes the kernel ACQUIRE; iked answers
    by negotiating, and the traffic that follows is protected."""
    from mip6lab.ipsec import IPsecTemplate, KeyMessage, SecurityPolicy, Selectors

    def build(lab):
        lab.add_link("lan")
        mn, ha = lab.add_host("mn"), lab.add_host("ha")
        lab.connect(mn, "lan", addresses=[f"{MN}/64"])
        lab.connect(ha, "lan", addresses=[f"{HA}/64"])
        lab.mnd = IkeDaemon(mn, IkeConfig.make(MN_ID, PSK, HA_ID, mode="transport"))
        lab.had = IkeDaemon(ha, IkeConfig.make(HA_ID, PSK, MN_ID, mode="transport"))
        # an administrator's policy: UDP to the HA must be protected, no SA exists yet
        mn.ipsec.engine.open("admin").send(KeyMessage("SPDADD", policy=SecurityPolicy(
            Selectors.make(local=MN, remote=HA, protocol="udp", remote_port=7), "protect",
            IPsecTemplate("transport", reqid=1))))
        UdpEchoServer(ha, 7)
        lab.client = UdpClient(mn, HA, 7, count=4, start=0.5, sport=5000)

    lab = Lab(seed=9, build=build)
    lab.run(until=5)
    acquire = lab.events.filter(node="mn", kind="seam",
                                where=lambda e: e.data.get("message") == "ACQUIRE")
    assert acquire and acquire[0].data["receivers"] == ["iked"]
    assert lab.mnd.established and lab.mnd.established[0].child.mode == "transport"
    assert lab.client.answers[0] > 1           # the first datagram died waiting for the SA
    assert lab.client.answers[-2:] == [3, 4]   # the later ones went through the new SA
    assert lab.nodes["mn"].ipsec.stats["protected"] >= 2
