"""The QEMU harness for kernel ESP (mip6lab.testing.qemu_kernel), proved end to end.

One boot installs hand-keyed XFRM ESP transport-mode SAs and policies
(rfc4106(gcm(aes)), 20-byte key with salt, 128-bit ICV) in two network namespaces joined
by a veth pair inside the guest, pings across IPv6 and IPv4 and reads the SA counters.
Others check that a failing script's status comes back, that the time limit kills QEMU,
and that the host can exchange Ethernet frames with the guest kernel over a NIC.
Documentation addresses only (2001:db8::/32, 192.0.2.0/24); nothing leaves the VM.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mip6lab.testing.qemu_kernel import (
    KernelVM,
    KernelVMTimeout,
    XfrmStateStats,
    nic_mac,
    parse_xfrm_states,
)

PINGS = 3
KEY_AB = "0x" + bytes(range(1, 21)).hex()  # 16-byte AES key + 4-byte salt
KEY_BA = "0x" + bytes(range(0x21, 0x35)).hex()

XFRM_SCRIPT = r"""
set -u
ip netns add a
ip netns add b
ip link add veth0 netns a type veth peer name veth0 netns b
for ns in a b; do
    ip -n $ns link set lo up
    ip -n $ns link set veth0 up
done
ip -n a addr add 2001:db8:1::1/64 dev veth0 nodad
ip -n b addr add 2001:db8:1::2/64 dev veth0 nodad
ip -n a addr add 192.0.2.1/24 dev veth0
ip -n b addr add 192.0.2.2/24 dev veth0

sa() {  # namespace src dst spi key
    ip -n "$1" xfrm state add src "$2" dst "$3" proto esp spi "$4" reqid 1 \
        mode transport aead 'rfc4106(gcm(aes))' "$5" 128 || exit 10
}
policy() {  # namespace dir src dst
    ip -n "$1" xfrm policy add src "$3" dst "$4" dir "$2" \
        tmpl src "$3" dst "$4" proto esp reqid 1 mode transport || exit 11
}
for ns in a b; do
    sa $ns 2001:db8:1::1 2001:db8:1::2 0x1001 @KEY_AB@
    sa $ns 2001:db8:1::2 2001:db8:1::1 0x1002 @KEY_BA@
    sa $ns 192.0.2.1 192.0.2.2 0x2001 @KEY_AB@
    sa $ns 192.0.2.2 192.0.2.1 0x2002 @KEY_BA@
done
for pair in "2001:db8:1::1 2001:db8:1::2" "192.0.2.1 192.0.2.2"; do
    set -- $pair
    policy a out "$1" "$2"; policy a in "$2" "$1"
    policy b out "$2" "$1"; policy b in "$1" "$2"
done

ip netns exec a ping -n -c @PINGS@ -i 0.2 -W 3 2001:db8:1::2 && echo "RESULT ping6 ok"
ip netns exec a ping -n -c @PINGS@ -i 0.2 -W 3 192.0.2.2 && echo "RESULT ping4 ok"
for ns in a b; do
    echo "=== xfrm state $ns"
    ip -n $ns -s xfrm state
    echo "=== end"
done
grep -E 'XfrmIn(Error|NoStates|StateProtoError|TmplMismatch|NoPols)' /proc/net/xfrm_stat
""".replace("@KEY_AB@", KEY_AB).replace("@KEY_BA@", KEY_BA).replace("@PINGS@", str(PINGS))


def _sections(output: str) -> dict[str, str]:
    """The text between ``=== xfrm state <ns>`` and ``=== end``, by namespace."""
    found: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in output.splitlines():
        if line.startswith("=== xfrm state "):
            current, lines = line.split()[-1], []
        elif line == "=== end" and current is not None:
            found[current] = "\n".join(lines)
            current = None
        elif current is not None:
            lines.append(line)
    return found


def qemu_running(pid: int) -> bool:
    """Whether ``pid`` is (still) a QEMU process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return b"qemu-system" in cmdline


@pytest.mark.qemu
def test_xfrm_esp_transport_between_namespaces(kernel_vm: KernelVM) -> None:
    result = kernel_vm.run(XFRM_SCRIPT, timeout=75)
    assert result.returncode == 0, result.output
    assert "RESULT ping6 ok" in result.output, result.output
    assert "RESULT ping4 ok" in result.output, result.output
    assert not qemu_running(result.pid)

    sections = _sections(result.output)
    assert set(sections) == {"a", "b"}, result.output
    expected = {  # (src, dst) -> spi
        ("2001:db8:1::1", "2001:db8:1::2"): 0x1001, ("2001:db8:1::2", "2001:db8:1::1"): 0x1002,
        ("192.0.2.1", "192.0.2.2"): 0x2001, ("192.0.2.2", "192.0.2.1"): 0x2002,
    }
    local = {"a": ("2001:db8:1::1", "192.0.2.1"), "b": ("2001:db8:1::2", "192.0.2.2")}
    for ns, text in sections.items():
        states: dict[tuple[str, str], XfrmStateStats] = {
            (s.src, s.dst): s for s in parse_xfrm_states(text)}
        assert set(states) == set(expected), text
        for (src, dst), spi in expected.items():
            sa = states[(src, dst)]
            assert (sa.proto, sa.spi, sa.mode) == ("esp", spi, "transport")
            assert sa.algorithms == ("aead rfc4106(gcm(aes))",)
            # Every echo request and reply went through ESP: a sends the requests on
            # the a->b SAs, b the replies on the b->a SAs; each end counts its side
            # (outbound SAs count encryptions, inbound SAs successful decryptions).
            # IPv6 Neighbor Unreachability Detection may add a packet or two.
            assert sa.packets >= PINGS, f"{ns}: {sa}"
            assert sa.bytes > 0
            assert sa.failed == 0 and sa.replay == 0, f"{ns}: {sa}"
            if src in local[ns]:
                assert sa.oseq == sa.packets, f"{ns} outbound: {sa}"
    for counter in ("XfrmInError", "XfrmInNoStates", "XfrmInTmplMismatch", "XfrmInNoPols"):
        line = next(l for l in result.output.splitlines() if l.startswith(counter + " "))
        assert line.split()[-1] == "0", line


@pytest.mark.qemu
def test_failing_script_returns_its_status_and_qemu_is_gone(kernel_vm: KernelVM) -> None:
    script = r"""
echo "to stdout"
echo "to stderr" >&2
ip netns add x
# the host's Python with this checkout importable, inside a namespace of the guest
ip netns exec x "$MIP6LAB_PYTHON" -c 'import mip6lab, sys; print("python", mip6lab.__name__, sys.argv[1])' "$(cat "$MIP6LAB_IN/arg.txt")"
echo "result" > "$MIP6LAB_OUT/result.txt"
false
exit 7
"""
    result = kernel_vm.run(script, timeout=60, files={"arg.txt": "from-host"})
    assert result.returncode == 7
    assert not result.ok
    assert "to stdout" in result.output and "to stderr" in result.output
    assert "python mip6lab from-host" in result.output, result.output
    assert result.files == {"result.txt": b"result\n"}
    assert result.boot_seconds is not None and result.boot_seconds > 0
    assert not qemu_running(result.pid)
    assert all(not qemu_running(pid) for pid in kernel_vm.pids)


@pytest.mark.qemu
def test_time_limit_kills_qemu(kernel_vm: KernelVM) -> None:
    started = time.monotonic()
    with pytest.raises(KernelVMTimeout) as info:
        kernel_vm.run("echo started; sleep 600", timeout=9)
    assert time.monotonic() - started < 30
    pid = kernel_vm.pids[-1]
    assert not qemu_running(pid), f"QEMU {pid} still running"
    assert "exceeded" in str(info.value)


@pytest.mark.qemu
def test_host_exchanges_frames_with_the_guest_kernel(kernel_image) -> None:
    """A NIC whose host end is a unix socket: host Python <-> guest kernel, nothing else."""
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import Ether

    host_mac, host_ip, guest_ip = "02:00:00:00:00:01", "2001:db8:9::1", "2001:db8:9::2"
    vm = KernelVM(kernel_image, nics=1)
    script = f"""
set -e
ip link set eth0 up
ip addr add {guest_ip}/64 dev eth0 nodad
ip neigh replace {host_ip} lladdr {host_mac} dev eth0 nud permanent
touch "$MIP6LAB_JOB/ready"
while [ ! -e "$MIP6LAB_JOB/done" ]; do sleep 0.1; done
ip -s link show eth0
"""
    with vm.start(script) as run:
        run.wait_for_file("ready", timeout=60)
        sock = run.nic(0)
        sock.settimeout(0.5)
        request = (Ether(src=host_mac, dst=nic_mac(0)) / IPv6(src=host_ip, dst=guest_ip)
                   / ICMPv6EchoRequest(id=0x6d36, seq=1, data=b"mip6lab"))
        reply = None
        deadline = time.monotonic() + 20
        while reply is None and time.monotonic() < deadline:
            sock.send(bytes(request))
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                try:
                    frame = Ether(sock.recv(65536))
                except TimeoutError:
                    continue
                if ICMPv6EchoReply in frame and frame[ICMPv6EchoReply].id == 0x6d36:
                    reply = frame
                    break
        run.touch("done")
        result = run.wait(timeout=60)
    assert reply is not None, result.output
    assert reply[Ether].dst == host_mac and reply[IPv6].src == guest_ip
    assert reply[ICMPv6EchoReply].data == b"mip6lab"
    assert result.returncode == 0, result.output
    assert not qemu_running(result.pid)
    assert not os.path.exists(run.tmp)


SAMPLE_STATE = """\
src 192.0.2.2 dst 192.0.2.1
\tproto esp spi 0x00002002(8194) reqid 1(0x00000001) mode transport
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\taead rfc4106(gcm(aes)) 0x2122232425262728292a2b2c2d2e2f3031323334 (160 bits) 128
\tanti-replay context: seq 0x3, oseq 0x0, bitmap 0x00000007
\tsel src 0.0.0.0/0 dst 0.0.0.0/0 uid 0
\tlifetime config:
\t  limit: soft (INF)(bytes), hard (INF)(bytes)
\t  limit: soft (INF)(packets), hard (INF)(packets)
\t  expire add: soft 0(sec), hard 0(sec)
\t  expire use: soft 0(sec), hard 0(sec)
\tlifetime current:
\t  192(bytes), 3(packets)
\t  add 2026-11-27 03:55:44 use 2026-11-27 03:55:45
\tstats:
\t  replay-window 0 replay 0 failed 0
src 192.0.2.1 dst 192.0.2.2
\tproto esp spi 0x00000100(256) reqid 2(0x00000002) mode transport
\treplay-window 32 seq 0x00000000 flag  (0x00000000)
\tauth-trunc hmac(sha256) 0x00 (256 bits) 128
\tenc cbc(aes) 0x00 (128 bits)
\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0
\tanti-replay context: seq 0x0, oseq 0x5, bitmap 0x00000000
\tlifetime current:
\t  500(bytes), 5(packets)
\tstats:
\t  replay-window 0 replay 1 failed 2
"""


def test_parse_xfrm_states() -> None:
    first, second = parse_xfrm_states(SAMPLE_STATE)
    assert first == XfrmStateStats(
        src="192.0.2.2", dst="192.0.2.1", proto="esp", spi=0x2002, mode="transport",
        algorithms=("aead rfc4106(gcm(aes))",), bytes=192, packets=3, oseq=0, seq=3,
        replay=0, failed=0)
    assert second.algorithms == ("auth-trunc hmac(sha256)", "enc cbc(aes)")
    assert (second.packets, second.oseq, second.replay, second.failed) == (5, 5, 1, 2)
    assert second.encap == "espinudp 4500 4500"
    assert parse_xfrm_states("") == []
