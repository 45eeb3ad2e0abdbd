"""A home agent registering N mobile nodes in process: time and memory per MN, and growth.

    python benchmarks/mobility.py                 # N = 100 and 1000 (about a minute)
    python benchmarks/mobility.py --large         # and N = 10 000 (10 to 15 minutes)
    python benchmarks/mobility.py --sizes 100,300 # any sizes (the first is the baseline)
    python benchmarks/mobility.py --tracemalloc   # memory counted by tracemalloc too
    python benchmarks/mobility.py --profile 1000  # cProfile at 100 and 1000: what grows
    python benchmarks/mobility.py --trace-level full   # with the course's full trace
    python benchmarks/run.py mobility --large     # the same, from the one command

The lab: one home agent ``ha`` on the home link (2001:db8:0:1::/64, with the home router
``hr``), access routers ``ar0`` .. behind ``hr``, each with up to 16 visited links, and
N mobile nodes ``mn0`` .. ``mn{N-1}``, each a host with its own IPsec stack, IKE daemon,
RFC 4877 coupling and MobileNode, and its own identity ``mn{i}@mip6lab.example`` (one
PSK for all). The home agent is built as MobilityScenario._home_agent builds it, but for
its pool, 2001:db8:0:1:1::/100 (2^28 home addresses, clear of hr's ::1 and ha's ::2),
and its binding cache bounded at N (the default bound, 4096, is a denial-of-service
limit that a run of 10 000 legitimate MNs would reach).

MN ``i`` appears at ``i * stagger`` seconds of simulated time (2 ms by default) on
visited link ``visit{i // per_link}``: it solicits a router, forms its care-of address
by SLAAC, runs IKE_SA_INIT + IKE_AUTH (CFG_REQUEST for INTERNAL_IP6_ADDRESS, the BU/BA
SA as the first child), CREATE_CHILD_SA for the tunnel-mode payload SA (not with
``--no-payload-sa``: protect_payload=False, half the IKE work after the handshake; the
output says so), then the Binding Update / Binding Acknowledgement in ESP. A visited
link holds ``--per-link`` MNs (100), links fill one after the other, and an access
router serves 16 links: what a shared segment costs (every RA and every multicast NS
reaches every host on it) and what a router's lookup costs are then the same per MN at
any N >= 100, so what grows with N is the home agent's share. Below N = 100 a link is
not full and an MN costs less: use 100 or more as the baseline.

What is measured, each size in a fresh child process, timed alone (up to N = 300 three
times, the best counting):

- the wall time of the whole run (building the lab, the MNs appearing and registering,
  until the last BA) per MN, the process's CPU time, and the part of it spent in the
  cyclic garbage collector (off while the lab runs, what survives each 0.25 s slice of
  simulated time frozen, gc.freeze, unless ``--no-gc-freeze``: see RegistrationLab.run);
- the baseline of the time: the IKE work of one registration alone, IKE_SA_INIT +
  IKE_AUTH (+ CREATE_CHILD_SA) between two IkeSa engines in memory configured as the MN
  and the HA are (as bench_ike does), measured in the same process just before and just
  after the lab. Time per MN in these "floors" takes out the speed the (shared) machine
  had at the moment, so the growth from one size to the next is the lab's own;
- memory: the growth of the process's RSS, and the Python objects still held after the
  last BA (sys.getsizeof of everything reachable from the lab), with two parts of it:
  the trace's event list, and the home agent's own state (what is reachable from the
  ``ha`` node without going through the lab, the simulator, the trace or other nodes);
  with ``--tracemalloc``, also tracemalloc's count of it, in another child per size
  (tracemalloc makes a run several times slower: those children run side by side).

Growth ratios are against the first size, N = 100 by default: time per MN (in floors)
and memory per MN at N over the same at N = 100; 1.00 is linear growth of the total.

The trace keeps what a run needs: the lab is built with ``trace_level="counts"`` by
default (mip6lab/trace.py: the number of events of each kind, no event kept), as a
run at scale would; ``--trace-level events`` keeps the modules' events without the
frames, ``--trace-level full`` every frame with its bytes, as a course's lab does. The
trace's share of the memory is reported at every level.

Targets (issue 14, point 4), printed beside the figures: at N = 10 000, at most 3 ms per
registered MN and at most 50 KB per MN. The IKE work is not this benchmark's to speed up
(the IKE engine is measured by bench_ike): the table says which part of each
registration's time is the IKE floor ("IKE %") and what the rest costs ("rest"), so
the total with a faster IKE engine is the rest plus its floor.

Where it stands (a shared two-core machine, so wall times are noisy; CPU ms steadier):
at N = 10 000, 2.80 to 2.87 ms wall (and as much CPU) per registered MN in three runs
(all 10 000 registered), of which 0.7 ms is the IKE floor, and 36 KB held per MN by the
walk below (3.74 ms with the collector as Python sets it, ``--no-gc-freeze``, of which
0.82 ms in the collector); 40.6 KB per MN by tracemalloc (``--tracemalloc``; 43.8 KB at
N = 1000), and the process's resident set grew by 62 KB per MN (freed memory the
allocator keeps, the transient state of the registrations in flight).
The walk's and tracemalloc's counts differ: on Python 3.11 an ordinary object's attribute
values live beside it, where ``sys.getsizeof`` and the referents walk do not see them (an
object with ``__slots__`` counts them itself): tracemalloc's is the truer figure. Time per MN grows
from N = 100 to N = 10 000 by about 1.2 (in floors): a larger heap of pending timers
(the earliest MNs' gratuitous NAs and retransmission timers go on while the last ones
register) and a larger working set. Before this work: 17.3 ms CPU and 66.7 KB/MN by the
walk; 5 ms and 59 KB (tracemalloc) before the second round, of which about 0.5 ms per MN
is how the benchmark runs the cyclic collector, not the stack: it spent 0.55 ms per MN
at N = 1000 when each slice was collected before its freeze. What made it: BUs, BAs and
Neighbor Discovery built and read on bytes (mip6lab/wire/mh_codec.py,
mip6lab/wire/nd_codec.py; scapy still shows them); addresses parsed and formatted once
(mip6lab/addresses.py) and kept as numbers where they are only compared or used as keys;
no summary written for an event the trace does not keep; the frames a segment's cards
filter counted at the link, not handed to 100 nodes each; an IKE engine that computes
once what does not change between SAs; IPsec state that shares what is the same for
every SA and keeps smaller indexes; slotted events, keys and selectors; integer keys
where IPsec looks up per packet; numbers, not ipaddress calls, on the per-hop path. What
is left is spread over the whole stack (every registration is 3 IKE exchanges, 19 key
messages, about 28 frames over 3 hops each, SLAAC and ND), no part of it more than a few
per cent.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import ipaddress
import json
import os
import pathlib
import pstats
import random
import subprocess
import sys
import time
import tracemalloc
import types
from dataclasses import dataclass

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import Result  # noqa: E402

from mip6lab.ikev2.config import IkeConfig  # noqa: E402
from mip6lab.ikev2.daemon import IkeDaemon  # noqa: E402
from mip6lab.ikev2.pools import AddressPool  # noqa: E402
from mip6lab.ikev2.sa import IkeSa  # noqa: E402
from mip6lab.ikev2.ts import TrafficSelector, mh_type_selector  # noqa: E402
from mip6lab.ipsec import IPsecStack  # noqa: E402
from mip6lab.mobility.coupling import (BU_REQID, PAYLOAD_REQID,  # noqa: E402
                                       HomeAgentCoupling, MobileNodeCoupling)
from mip6lab.mobility.binding_cache import DEFAULT_MAX_ENTRIES  # noqa: E402
from mip6lab.mobility.home_agent import HomeAgent  # noqa: E402
from mip6lab.mobility.mobile_node import MobileNode  # noqa: E402
from mip6lab.net.lab import Lab  # noqa: E402
from mip6lab.scenarios.mobility import (HA6, HA_ID, HOME_PREFIX, HR6, PSK)  # noqa: E402
from mip6lab.trace import LEVELS  # noqa: E402

POOL6 = "2001:db8:0:1:1::/100"
DEFAULT_SIZES = (100, 1000)
LARGE = 10_000
#: issue 14 point 4, at N = LARGE: time and memory per registered MN
TARGET_MS_PER_MN = 3.0
TARGET_KB_PER_MN = 50.0


@dataclass
class Options:
    per_link: int = 100          # MNs per visited link
    links_per_router: int = 16   # visited links per access router (a power of 2)
    stagger: float = 0.002       # seconds of simulated time between two MNs appearing
    protect_payload: bool = True
    lifetime: int = 3600         # BU lifetime, s: no refresh during the run
    seed: int = 1
    trace_level: str = "counts"  # what the lab's trace keeps (mip6lab.trace.LEVELS)
    gc_freeze: bool = True       # GC off, what survived each slice frozen (RegistrationLab.run)


# -- the lab ---------------------------------------------------------------------------


class RegistrationLab:
    """One HA, N MNs appearing one after the other on visited links of ``per_link``."""

    def __init__(self, n: int, options: Options) -> None:
        self.n, self.options = n, options
        self.links = (n + options.per_link - 1) // options.per_link
        self.mobiles: list[MobileNode] = []
        self.cycles = 0          # unreachable objects found at the end (see run)
        self.lab = Lab(seed=options.seed, build=self._build,
                       trace_level=options.trace_level)

    def _build(self, lab: Lab) -> None:
        per_router = self.options.links_per_router
        routers = (self.links + per_router - 1) // per_router
        lab.add_link("home", "segment", delay=0.002)
        hr, ha = lab.add_router("hr"), lab.add_router("ha")
        lab.connect(hr, "home", addresses=[f"{HR6}/64"])
        lab.connect(ha, "home", addresses=[f"{HA6}/64"])
        hr.advertise("eth0", [HOME_PREFIX], interval=(0.05, 600.0))
        ha.routes.add("::/0", "eth0", HR6)
        for j in range(routers):
            ar = lab.add_router(f"ar{j}")
            lab.add_link(f"up{j}", "p2p", delay=0.002)
            lab.connect(hr, f"up{j}", ifname=f"eth{j + 1}",
                        addresses=[f"2001:db8:ff:{j:x}::1/64"])
            lab.connect(ar, f"up{j}", addresses=[f"2001:db8:ff:{j:x}::2/64"])
            ar.routes.add("::/0", "eth0", f"2001:db8:ff:{j:x}::1")
            first = j * per_router
            hr.routes.add(f"2001:db8:a:{first:x}::/{64 - (per_router - 1).bit_length()}",
                          f"eth{j + 1}", f"2001:db8:ff:{j:x}::2")
            for k in range(first, min(first + per_router, self.links)):
                prefix = self._prefix(k)
                lab.add_link(f"visit{k}", "segment", delay=0.002)
                ifname = f"eth{k - first + 1}"
                lab.connect(ar, f"visit{k}", ifname=ifname,
                            addresses=[f"{prefix.network_address + 1}/64"])
                # solicited RAs at most every 50 ms (RFC 6275 §7.5 lets it be that low),
                # unsolicited ones rarely: a link that is full costs nothing more
                ar.advertise(ifname, [str(prefix)], interval=(0.05, 600.0))
        self._home_agent(ha)
        for i in range(self.n):
            lab.at(i * self.options.stagger, self._appear, i, label=f"mn{i} appears")

    @staticmethod
    def _prefix(k: int) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network(f"2001:db8:a:{k:x}::/64")

    def _home_agent(self, ha) -> None:
        """As MobilityScenario._home_agent, with a pool for 2^28 MNs."""
        IPsecStack(ha)
        config = IkeConfig.make(HA_ID, PSK, mode="transport", mobike=False,
                                pool6=AddressPool.parse(POOL6),
                                home_prefixes=AddressPool.parse(HOME_PREFIX, 64),
                                local_ts=[TrafficSelector.from_network("::/0"),
                                          TrafficSelector.from_network("0.0.0.0/0")],
                                reqid_by_mode={"transport": BU_REQID,
                                               "tunnel": PAYLOAD_REQID})
        daemon = IkeDaemon(ha, config)
        coupling = HomeAgentCoupling(ha, daemon, HA6)
        self.home_agent = HomeAgent(ha, coupling, home_interface="eth0",
                                    home_prefix=HOME_PREFIX,
                                    max_bindings=max(self.n, DEFAULT_MAX_ENTRIES))

    def _appear(self, i: int) -> None:
        """As MobilityScenario._mobile_node, for MN ``i`` with its own identity."""
        lab = self.lab
        mn = lab.add_host(f"mn{i}")
        lab.connect(mn, f"visit{i // self.options.per_link}")
        IPsecStack(mn)
        config = IkeConfig.make(f"mn{i}@mip6lab.example", PSK, HA_ID, mobike=False)
        daemon = IkeDaemon(mn, config)
        coupling = MobileNodeCoupling(mn, daemon, HA6,
                                      protect_payload=self.options.protect_payload)
        self.mobiles.append(MobileNode(mn, coupling, lifetime=self.options.lifetime))

    def registered(self) -> int:
        return sum(1 for m in self.mobiles
                   if m.handovers and m.handovers[0].ba_status is not None
                   and m.handovers[0].ba_status < 128)

    def run(self, timeout: float = 60.0) -> bool:
        """Run until every MN has its BA (or ``timeout`` s after the last appeared).

        With ``gc_freeze``, the cyclic garbage collector is off while the lab runs, and
        what survived each slice of 0.25 s of simulated time is moved out of its sight
        (``gc.freeze()``): the registered MNs' state lives as long as the run, and the
        collector would otherwise walk all of it again and again -- time per MN growing
        with N. The stack makes almost no garbage cycles: 20 in all at N = 1000 (counted
        with gc.DEBUG_SAVEALL; the routers' RAs and RSs, built with scapy), so a
        collection before each freeze (0.3 ms per MN) would find next to nothing; the
        ones frozen stay in memory, counted in what is held. With the collector as
        Python sets it (``--no-gc-freeze``) a run at N = 10 000 spends 0.8 ms per MN in
        it, walking the MNs' state again and again.
        One collection at the end, of what is not frozen, finds the last slice's
        (:attr:`cycles`); its time counts as the run's and as "GC ms"."""
        lab, step = self.lab, 0.25
        end = (self.n - 1) * self.options.stagger + timeout
        freezing, collecting = self.options.gc_freeze, gc.isenabled()
        if freezing:
            gc.disable()
        try:
            while lab.now < end:
                lab.run(until=lab.now + step)
                if freezing:
                    gc.freeze()
                if len(self.mobiles) == self.n and self.registered() == self.n:
                    return True
            return False
        finally:
            if freezing:
                self.cycles = gc.collect()
                if collecting:
                    gc.enable()


# -- measurements (each in a child process) --------------------------------------------


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _reachable_bytes(root, stop: set[int]) -> int:
    """sys.getsizeof of everything reachable from ``root`` without passing through the
    objects in ``stop`` (by id), nor classes, modules, functions and code."""
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
            types.CodeType, types.MethodDescriptorType, types.WrapperDescriptorType)
    seen, todo, total = set(stop), [root], 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
    return total


def _home_agent_bytes(reg: RegistrationLab) -> int:
    lab = reg.lab
    ha = lab.nodes["ha"]
    stop = {id(lab), id(lab.sim), id(lab.trace), id(lab.trace.events), id(lab.links),
            id(lab.nodes)}
    stop |= {id(node) for name, node in lab.nodes.items() if name != "ha"}
    stop |= {id(link) for link in lab.links.values()}
    return _reachable_bytes(ha, stop)


def measure(n: int, options: Options, traced: bool = False) -> dict:
    """One size: wall time, GC time, RSS growth, and the Python objects held at the end
    (by walking them); with ``traced``, tracemalloc's count instead of the timing."""
    before = ike_floor(options.protect_payload) if not traced else 0.0
    gc.collect()
    if traced:
        tracemalloc.start()
    base_rss = _rss_kb()
    collecting = {"s": 0.0, "full": 0}

    def collector(phase: str, info: dict) -> None:    # the cyclic GC's share
        if phase == "start":
            collecting["t"] = time.perf_counter()
        else:
            collecting["s"] += time.perf_counter() - collecting.pop("t")
            collecting["full"] += info["generation"] == 2

    gc.callbacks.append(collector)
    start, cpu = time.perf_counter(), time.process_time()
    reg = RegistrationLab(n, options)
    complete = reg.run()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    gc.callbacks.remove(collector)
    gc.collect()
    if traced:
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {"n": n, "traced_bytes": held}
    floor = (before + ike_floor(options.protect_payload)) / 2
    out = {"n": n, "wall": wall, "cpu": cpu, "floor": floor, "complete": complete,
           "registered": reg.registered(),
           "events": sum(reg.lab.trace.counts.values()), "kept": len(reg.lab.events),
           "trace_level": reg.lab.trace.level, "sim_time": reg.lab.now,
           "sim_events": reg.lab.sim.executed, "gc_s": collecting["s"],
           "gc_full": collecting["full"], "rss_kb": _rss_kb() - base_rss}
    start = time.perf_counter()
    out["held_bytes"] = _reachable_bytes(reg, set())
    out["trace_bytes"] = _reachable_bytes(reg.lab.trace.events, set())
    out["ha_bytes"] = _home_agent_bytes(reg)
    out["walk_s"] = time.perf_counter() - start
    return out


def ike_floor(protect_payload: bool, count: int = 20) -> float:
    """Registrations' IKE work per second: IKE_SA_INIT + IKE_AUTH (+ CREATE_CHILD_SA)
    between two engines in memory, configured as the MN and the HA are; best of three,
    with the cyclic GC off (what it costs depends on the heap, not on the machine)."""
    rng = random.Random(1)
    spis = iter(range(0x1000, 0x1000000))
    responder = IkeConfig.make(HA_ID, PSK, mode="transport", mobike=False,
                               pool6=AddressPool.parse(POOL6),
                               local_ts=[TrafficSelector.from_network("::/0")],
                               reqid_by_mode={"transport": BU_REQID,
                                              "tunnel": PAYLOAD_REQID})
    base = IkeConfig.make("mn@mip6lab.example", PSK, HA_ID, mobike=False)
    initiator = IkeConfig(**{**base.__dict__, "request": ("ipv6",), "mode": "transport",
                             "local_ts": [mh_type_selector("::/0", "BU")],
                             "remote_ts": [mh_type_selector(f"{HA6}/128", "BA")],
                             "reqid_by_mode": {"transport": BU_REQID,
                                               "tunnel": PAYLOAD_REQID}})
    coa = "2001:db8:a::10"

    def pump(i: IkeSa, r: IkeSa) -> None:
        for _ in range(4):
            for d in i.datagrams_to_send():
                r.receive(d.data, d.src, d.sport, 0)
            for d in r.datagrams_to_send():
                i.receive(d.data, d.src, d.sport, 0)

    def work() -> int:
        for k in range(count):
            i = IkeSa(initiator, True, coa, HA6, rng.randbytes, lambda: next(spis))
            r = IkeSa(responder, False, HA6, coa, rng.randbytes, lambda: next(spis))
            i.initiate(0)
            pump(i, r)
            assert i.state == r.state == "ESTABLISHED", (i.state, r.state)
            if protect_payload:
                hoa = next(a.value for a in i.assigned) if i.assigned else "2001:db8:0:1::99"
                hoa = str(ipaddress.ip_interface(hoa).ip)
                i.create_child(0, mode="tunnel",
                               local_ts=[TrafficSelector.from_network(f"{hoa}/128")],
                               remote_ts=[TrafficSelector.from_network("::/0")])
                pump(i, r)
            responder.pool6.release("rfc822:mn@mip6lab.example")
        return count

    best = 0.0
    gc.disable()
    try:
        for _ in range(3):
            start = time.perf_counter()
            done = work()
            best = max(best, done / (time.perf_counter() - start))
    finally:
        gc.enable()
    return best


def _options(args: argparse.Namespace) -> Options:
    return Options(per_link=args.per_link, links_per_router=args.links_per_router,
                   stagger=args.stagger, protect_payload=not args.no_payload_sa,
                   trace_level=args.trace_level, gc_freeze=not args.no_gc_freeze)


def _child(args: argparse.Namespace) -> int:
    options = _options(args)
    print(json.dumps(measure(args.child, options, traced=args.child_memory)))
    return 0


def _command(flags: list[str]) -> list[str]:
    return [sys.executable, str(pathlib.Path(__file__).resolve()), *flags]


def _answer(command: list[str], code: int, stdout: str, stderr: str) -> dict:
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr}")
    return json.loads(stdout.strip().splitlines()[-1])


def _spawn(flags: list[str]) -> dict:
    """One child, alone on the machine (what is timed)."""
    command = _command(flags)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return _answer(command, done.returncode, done.stdout, done.stderr)


def _spawn_parallel(runs: list[list[str]]) -> list[dict]:
    """Children side by side, as many as there are CPUs (memory only: not timed)."""
    results: list[dict | None] = [None] * len(runs)
    pending = list(enumerate(runs))
    running: list[tuple[int, list[str], subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < (os.cpu_count() or 1):
            index, flags = pending.pop()          # the largest (last) first
            command = _command(flags)
            running.append((index, command, subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        index, command, process = running.pop(0)
        stdout, stderr = process.communicate()
        results[index] = _answer(command, process.returncode, stdout, stderr)
    return results  # type: ignore[return-value]


def _option_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--per-link", str(args.per_link), "--stagger", str(args.stagger),
             "--links-per-router", str(args.links_per_router),
             "--trace-level", args.trace_level] \
        + (["--no-gc-freeze"] if args.no_gc_freeze else [])
    return flags + (["--no-payload-sa"] if args.no_payload_sa else [])


# -- the report ------------------------------------------------------------------------


def _sizes(args: argparse.Namespace) -> list[int]:
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(DEFAULT_SIZES)
    if args.large and LARGE not in sizes:
        sizes.append(LARGE)
    return sizes


def _repeat(n: int) -> int:
    """Small sizes are run three times (the best counts), as the baseline must be sure."""
    return 3 if n <= 300 else 1


def _table(rows: list[dict]) -> list[str]:
    base = rows[0]
    n0 = base["n"]
    traced = "traced_bytes" in base

    def per(row: dict, key: str) -> float:
        return row[key] / row["n"]

    def floors(row: dict) -> float:      # ms/MN in units of the IKE floor
        return per(row, "wall") * row["floor"]

    header = (f"{'N':>6} {'wall s':>7} {'ms/MN':>6} {'floor':>5} {'x fl':>5} "
              f"{'x N=' + str(n0):>7} {'CPU ms':>6} {'GC ms':>5} {'IKE %':>5} "
              f"{'rest':>5} {'KB/MN':>6} "
              f"{'x N=' + str(n0):>7} {'trace':>5} {'HA':>4} {'RSS':>5} "
              + (f"{'traced':>6} " if traced else "") + f"{'ev/MN':>5} {'done':>11}")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['n']:>6} {row['wall']:>7.1f} {1000 * per(row, 'wall'):>6.2f} "
            f"{1000 / row['floor']:>5.2f} {floors(row):>5.2f} "
            f"{floors(row) / floors(base):>7.2f} {1000 * per(row, 'cpu'):>6.2f} "
            f"{1000 * per(row, 'gc_s'):>5.2f} "
            f"{100 * (1000 / row['floor']) / (1000 * per(row, 'wall')):>5.0f} "
            f"{1000 * per(row, 'wall') - 1000 / row['floor']:>5.2f} "
            f"{per(row, 'held_bytes') / 1024:>6.1f} "
            f"{per(row, 'held_bytes') / per(base, 'held_bytes'):>7.2f} "
            f"{per(row, 'trace_bytes') / 1024:>5.1f} {per(row, 'ha_bytes') / 1024:>4.1f} "
            f"{per(row, 'rss_kb'):>5.0f} "
            + (f"{per(row, 'traced_bytes') / 1024:>6.1f} " if traced else "")
            + f"{per(row, 'events'):>5.0f} "
            f"{str(row['registered']) + '/' + str(row['n']):>11}")
    lines += [
        "ms/MN: wall time per registration (best of 3 runs up to N=300); floor: the IKE "
        "work of one registration alone, ms, measured in the same process before and "
        "after; x fl: ms/MN in floors;",
        f"x N={n0}: x fl at N over x fl at N={n0}, the growth of the time per MN with "
        "the machine's speed of the moment taken out (1.00: the total grows linearly);",
        "CPU ms: the process's CPU time per MN (above ms/MN if the machine is shared), "
        "of which 'GC ms' in the cyclic garbage collector;",
        "IKE %: the floor's share of ms/MN; rest: ms/MN minus the floor, what is not the "
        "IKE engine's (SLAAC, ND, routing, ESP, BU/BA, the trace, the simulator);",
        f"KB/MN: Python objects held after the last BA (sys.getsizeof of all that is "
        f"reachable from the lab; x N={n0}: its growth), of which 'trace' is the trace's "
        "events and 'HA' the home agent's state;",
        "RSS: resident set growth of the process, KB/MN;"
        + (" traced: tracemalloc's count of what is held (another run), KB/MN;"
           if traced else "")
        + f" ev/MN: trace events emitted per MN (trace level {base['trace_level']!r}: "
        f"{'all kept' if base['trace_level'] == 'full' else 'see the module docstring'}); "
        "done: MNs registered (BA status < 128).",
        f"targets at N={LARGE}: <= {TARGET_MS_PER_MN:g} ms/MN and <= "
        f"{TARGET_KB_PER_MN:g} KB/MN (issue 14 point 4)"
        + "".join(f"; at N={row['n']}: {1000 * per(row, 'wall'):.2f} ms/MN "
                  f"(rest {1000 * per(row, 'wall') - 1000 / row['floor']:.2f}), "
                  f"{per(row, 'held_bytes') / 1024:.1f} KB/MN"
                  for row in rows if row['n'] == LARGE),
    ]
    return lines


def run(argv: list[str] | None = None) -> list[Result]:
    """For benchmarks/run.py: the table is printed, the results are returned."""
    args = _parser().parse_args(argv or [])
    sizes = _sizes(args)
    flags = _option_flags(args)
    rows = [min((_spawn(["--child", str(n), *flags]) for _ in range(_repeat(n))),
                key=lambda row: row["wall"] * row["floor"]) for n in sizes]
    if args.tracemalloc:
        for row, traced in zip(rows, _spawn_parallel(
                [["--child", str(n), "--child-memory", *flags] for n in sizes])):
            row["traced_bytes"] = traced["traced_bytes"]
    what = ("IKE_SA_INIT + IKE_AUTH + CREATE_CHILD_SA (payload SA) + BU/BA"
            if not args.no_payload_sa else "IKE_SA_INIT + IKE_AUTH + BU/BA, no payload SA "
            "(--no-payload-sa, protect_payload=False: no CREATE_CHILD_SA)")
    print(f"   per MN: {what}; {args.per_link} MNs per visited link, one appearing every "
          f"{args.stagger * 1000:g} ms of simulated time; each size in a fresh process")
    for line in _table(rows):
        print("   " + line)
    base = rows[0]
    us = lambda row: 1e6 * row["wall"] / row["n"]          # noqa: E731
    kb = lambda row: row["held_bytes"] / row["n"] / 1024   # noqa: E731
    # the time per MN at the speed the machine had when the baseline ran
    steady = lambda row: us(row) * row["floor"] / base["floor"]   # noqa: E731
    results = []
    target_us = f"<= {TARGET_MS_PER_MN * 1000:,.0f} us/MN at N={LARGE}"
    target_kb = f"<= {TARGET_KB_PER_MN:g} KB/MN at N={LARGE}"
    for row in rows:
        results.append(Result(f"N={row['n']}: time per registration", us(row), "us/MN",
                              "the IKE floor", 1e6 / row["floor"], target=target_us))
    for row in rows:
        results.append(Result(f"N={row['n']}: the same without the IKE floor",
                              us(row) - 1e6 / row["floor"], "us/MN", target=target_us))
    for row in rows[1:]:
        results.append(Result(f"N={row['n']}: the same at N={base['n']}'s speed",
                              steady(row), "us/MN", f"N={base['n']}", us(base)))
    for row in rows[1:]:
        results.append(Result(f"N={row['n']}: memory held per MN", kb(row), "KB/MN",
                              f"N={base['n']}", kb(base), target=target_kb))
    return results


# -- profiling -------------------------------------------------------------------------


def profile(args: argparse.Namespace) -> None:
    """cProfile at the smallest size and at ``--profile N``; functions ranked by how much
    their own time per MN grew (the super-linear ones come first)."""
    options = _options(args)
    small = min(DEFAULT_SIZES[0], args.profile)
    stats, profilers = {}, {}
    for n in (small, args.profile):
        profiler = cProfile.Profile()
        profiler.enable()
        reg = RegistrationLab(n, options)
        reg.run()
        profiler.disable()
        assert reg.registered() == n, (reg.registered(), n)
        stats[n], profilers[n] = pstats.Stats(profiler), profiler
        if args.dump:
            stats[n].dump_stats(f"{args.dump}-{n}.prof")
    big, little = stats[args.profile].stats, stats[small].stats
    total_big = sum(v[2] for v in big.values())
    rows = []
    for key, (cc, nc, tt, ct, _) in big.items():
        tt0, nc0 = (little[key][2], little[key][1]) if key in little else (0.0, 0)
        rows.append((tt / args.profile - tt0 / small, key, nc, nc0, tt, tt0, ct))
    rows.sort(reverse=True)
    print(f"cProfile, N={small} and N={args.profile}: own time (tottime) per MN; "
          f"total {total_big:.1f} s at N={args.profile}")
    print(f"{'grew ms/MN':>10} {'ms/MN@' + str(small):>10} {'ms/MN@' + str(args.profile):>10} "
          f"{'calls/MN':>15} {'%tot':>5}  function")
    for growth, key, nc, nc0, tt, tt0, ct in rows[:args.top]:
        filename, line, name = key
        where = filename.split("/main/")[-1] if "/main/" in filename else filename
        print(f"{growth * 1000:>10.3f} {tt0 / small * 1000:>10.3f} "
              f"{tt / args.profile * 1000:>10.3f} "
              f"{nc0 / small:>7.1f}>{nc / args.profile:<7.1f} {100 * tt / total_big:>5.1f}  "
              f"{where}:{line}({name})")
    print()
    print(f"N={args.profile}, by cumulative time:")
    text = io.StringIO()
    pstats.Stats(profilers[args.profile], stream=text).sort_stats("cumulative") \
        .print_stats(args.top)
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))


# -- command line ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--large", action="store_true", help=f"add N={LARGE}")
    p.add_argument("--sizes", help="comma-separated N (the first is the baseline)")
    p.add_argument("--per-link", type=int, default=Options.per_link)
    p.add_argument("--links-per-router", type=int, default=Options.links_per_router)
    p.add_argument("--stagger", type=float, default=Options.stagger)
    p.add_argument("--trace-level", choices=LEVELS, default=Options.trace_level,
                   help="what the lab's trace keeps (default: %(default)s)")
    p.add_argument("--no-gc-freeze", action="store_true",
                   help="let the cyclic GC run as it does by default (on, no gc.freeze per slice)")
    p.add_argument("--no-payload-sa", action="store_true",
                   help="no CREATE_CHILD_SA for the payload (protect_payload=False)")
    p.add_argument("--tracemalloc", action="store_true",
                   help="also count memory with tracemalloc (one more, slow, run per N)")
    p.add_argument("--profile", type=int, metavar="N", help="cProfile at 100 and N")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--dump", help="with --profile: write PREFIX-N.prof files")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv[1:])
    if args.child is not None:
        return _child(args)
    if args.profile:
        profile(args)
        return 0
    print(f"== mobility: {__doc__.strip().splitlines()[0]}")
    for result in run(argv[1:]):
        print("   " + result.line())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
