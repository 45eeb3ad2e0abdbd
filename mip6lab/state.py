"""The lab's tables at one moment, as plain rows: what a student reads beside the trace.

:func:`lab_state` reads every node's databases through their own ``table()`` methods --
the SPD, SAD and PAD of an IPsec node (RFC 4301 §4.4), the IKE SAs and child SAs of an
IKE daemon (RFC 7296), the home agent's binding cache (RFC 6275 §9.1), the mobile
node's binding update list (§11.1) and addresses, the mobility SAs of the
``auth-option`` mode (RFC 4285 §5.1: the home agent's store, the mobile node's own), a
NAT's mappings (RFC 4787) -- and
where each node's interfaces are attached. A :class:`LabState` is immutable and cheap to compare, so a recorder
(:mod:`mip6lab.timeline`) can keep one per event and share the tables that did not
change. :func:`state_diff` says which rows one event added, removed or changed.

Nothing here changes the lab; the state is read, never written.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .net.lab import Lab
    from .net.node import Node

#: the tables, in the order a dashboard shows them, with a title and the column that
#: identifies a row (so a diff can say "changed" rather than "removed + added")
TABLES: dict[str, tuple[str, str]] = {
    "addresses": ("Mobile node: addresses", "what"),
    "binding_update_list": ("Binding update list (RFC 6275 §11.1)", "home_address"),
    "binding_cache": ("Binding cache (RFC 6275 §9.1)", "hoa"),
    "mobility_sas": ("Mobility security associations (RFC 4285 §5.1)", "spi"),
    "ike_sas": ("IKE SAs (RFC 7296)", "spi_i"),
    "child_sas": ("Child SAs negotiated by IKE", "spi_in"),
    "spd": ("SPD (RFC 4301 §4.4.1)", "name"),
    "sad": ("SAD (RFC 4301 §4.4.2)", "spi"),
    "pad": ("PAD (RFC 4301 §4.4.3)", "id"),
    "nat_mappings": ("NAT mappings (RFC 4787 §4)", "inside"),
    "interfaces": ("Interfaces", "interface"),
}

Rows = tuple[dict[str, Any], ...]


def role_of(node: Node) -> str:
    """What a node is in the lab: "HA", "MN", "NAT", "router" or "host"."""
    from .mobility.home_agent import HomeAgent
    from .mobility.mobile_node import MobileNode

    mobility = getattr(node, "mobility", None)
    if isinstance(mobility, HomeAgent):
        return "HA"
    if isinstance(mobility, MobileNode):
        return "MN"
    return {"nat": "NAT", "router": "router"}.get(node.kind, "host")


#: node → (what its interfaces were, their rows): formatting addresses is the dearest
#: part of a state, and interfaces rarely change, so rows are made again only on change
_INTERFACE_ROWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _interfaces(node: Node) -> list[dict[str, Any]]:
    key = tuple((iface.name, iface.link.name if iface.link else "-",
                 tuple(iface.ipv6("all")), tuple(iface.ipv4()))
                for iface in node.interfaces.values())
    cached = _INTERFACE_ROWS.get(node)
    if cached is not None and cached[0] == key:
        return cached[1]
    rows = [{"interface": name, "link": link,
             "addresses": " ".join(str(a) for a in (*v6, *v4)) or "-"}
            for name, link, v6, v4 in key]
    _INTERFACE_ROWS[node] = (key, rows)
    return rows


def _addresses(mobile) -> list[dict[str, Any]]:
    def text(value: Any) -> str:
        return str(value) if value is not None else "-"

    return [{"what": "home address (HoA)", "value": text(mobile.home_address)},
            {"what": "IPv4 home address", "value": text(mobile.ipv4_home_address)},
            {"what": "care-of address (newest)", "value": text(mobile.care_of_address)},
            {"what": "care-of address registered", "value": text(mobile.registered)},
            {"what": "attached to", "value": text(mobile.link_name)},
            {"what": "at home", "value": "yes" if mobile.at_home else "no"},
            {"what": "NAT detected", "value": "yes" if mobile.nat_detected else "no"},
            {"what": "UDP encapsulation (RFC 5555)",
             "value": "yes" if mobile.udp_encapsulation else "no"}]


def _nat_mappings(nat) -> list[dict[str, Any]]:
    """A NAPT's translations (RFC 4787 §4): which inside endpoint goes out as which public
    address and port. Only what changes with a ``nat`` state event (a mapping made,
    rebound or expired) is a column, so a recorded state is never stale between two;
    the packet counters stay in :meth:`~mip6lab.net.nat.Nat44.table`."""
    try:
        public = str(nat.public_address)
    except ValueError:                   # its outside interface has no address (yet)
        public = "-"
    return [{"protocol": m.protocol, "inside": f"{m.inside[0]}:{m.inside[1]}",
             "outside": f"{public}:{m.outside_port}",
             "since_s": round(m.created_us / 1_000_000, 6)}
            for m in nat.mappings.values()]


def node_tables(node: Node) -> dict[str, list[dict[str, Any]]]:
    """Every table ``node`` has, by the names of :data:`TABLES` (absent ones left out)."""
    from .mobility.auth_option import _AuthOption
    from .mobility.home_agent import HomeAgent
    from .mobility.mobile_node import MobileNode

    tables: dict[str, list[dict[str, Any]]] = {}
    mobility = getattr(node, "mobility", None)
    if isinstance(mobility, MobileNode):
        tables["addresses"] = _addresses(mobility)
        tables["binding_update_list"] = mobility.table()
    elif isinstance(mobility, HomeAgent):
        tables["binding_cache"] = mobility.table()
    if mobility is not None and isinstance(mobility.coupling, _AuthOption):
        tables["mobility_sas"] = mobility.coupling.table()
    if node.ike is not None:
        tables.update(node.ike.tables())
    if node.ipsec is not None:
        tables.update(node.ipsec.tables())
    if getattr(node, "nat", None) is not None:
        tables["nat_mappings"] = _nat_mappings(node.nat)
    tables["interfaces"] = _interfaces(node)
    return tables


@dataclass(frozen=True)
class LabState:
    """Every node's tables at one moment: ``tables[node][table]`` is a tuple of rows."""

    time_us: int
    tables: dict[str, dict[str, Rows]]

    def __getitem__(self, node: str) -> dict[str, Rows]:
        return self.tables[node]

    def table(self, node: str, name: str) -> Rows:
        """The rows of one table (empty if the node has no such table)."""
        return self.tables.get(node, {}).get(name, ())

    def nodes_with(self, name: str) -> list[str]:
        return [node for node, tables in self.tables.items() if name in tables]

    def text(self, nodes: list[str] | None = None) -> str:
        """Every table as text (the text alternative of the state panels)."""
        out = []
        for node, tables in self.tables.items():
            if nodes is not None and node not in nodes:
                continue
            for name, rows in tables.items():
                out.append(f"{node} — {TABLES[name][0]}: {len(rows)} row(s)")
                out.extend("  " + "; ".join(f"{k}={cell_text(v)}" for k, v in row.items())
                           for row in rows)
        return "\n".join(out)


def cell_text(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {cell_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(cell_text(v) for v in value) + "]"
    return str(value)


def lab_state(lab: Lab, previous: LabState | None = None) -> LabState:
    """The state of every node of ``lab`` now.

    With ``previous``, every table equal to the one in ``previous`` is that very tuple,
    so a recorder holding thousands of states keeps each distinct table once."""
    tables: dict[str, dict[str, Rows]] = {}
    for name, node in lab.nodes.items():
        old = previous.tables.get(name, {}) if previous is not None else {}
        mine: dict[str, Rows] = {}
        for table, rows in node_tables(node).items():
            rows = tuple(rows)
            kept = old.get(table)
            mine[table] = kept if kept == rows else rows
        tables[name] = mine
    return LabState(lab.sim.now_us, tables)


def change_marker(lab: Lab) -> tuple:
    """A cheap value that changes whenever a packet's processing may have changed a
    table: the key engines' crossings and the IPsec, IKE and mobility counters of every
    node, and the second (lifetimes are shown in seconds). Events of other kinds than
    packets (seam, state, error) always count as a change for the recorder."""
    marks: list[Any] = [lab.sim.now_us // 1_000_000]
    for node in lab.nodes.values():
        if node.ipsec is not None:
            marks.append(node.ipsec.engine.crossings)
            marks.append(sum(node.ipsec.stats.values()))
        if node.ike is not None:
            marks.append(node.ike.changes)
        mobility = getattr(node, "mobility", None)
        if mobility is not None:
            marks.append((sum(mobility.stats.values()), mobility.table()))  # lifetimes, BUL states
    return tuple(marks)


@dataclass(frozen=True)
class RowChange:
    """One row of one table that an event added, removed or changed."""

    node: str
    table: str
    change: str            # "added", "removed" or "changed"
    key: str
    row: dict[str, Any]
    before: dict[str, Any] | None = None

    def describe(self) -> str:
        what = f"{self.node} {self.table}: {self.change} {self.key}"
        if self.change == "changed" and self.before is not None:
            fields = [f"{k} {cell_text(self.before.get(k))} → {cell_text(v)}"
                      for k, v in self.row.items() if self.before.get(k) != v]
            what += " (" + ", ".join(fields) + ")"
        return what


def _keyed(name: str, rows: Rows) -> dict[str, dict[str, Any]]:
    column = TABLES[name][1]
    out: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        key = str(row.get(column, i))
        while key in out:            # two rows with one key: keep both, apart
            key += "'"
        out[key] = row
    return out


def state_diff(before: LabState, after: LabState) -> list[RowChange]:
    """The rows that differ between two states, table by table."""
    changes: list[RowChange] = []
    for node, tables in after.tables.items():
        old_tables = before.tables.get(node, {})
        for name, rows in tables.items():
            old = old_tables.get(name, ())
            if old is rows or old == rows:
                continue
            old_rows, new_rows = _keyed(name, old), _keyed(name, rows)
            for key, row in new_rows.items():
                if key not in old_rows:
                    changes.append(RowChange(node, name, "added", key, row))
                elif old_rows[key] != row:
                    changes.append(RowChange(node, name, "changed", key, row, old_rows[key]))
            changes.extend(RowChange(node, name, "removed", key, row)
                           for key, row in old_rows.items() if key not in new_rows)
    return changes


def iter_tables(state: LabState) -> Iterator[tuple[str, str, Rows]]:
    """(node, table, rows) for every table, in the order of :data:`TABLES`."""
    order = list(TABLES)
    for node, tables in state.tables.items():
        for name in sorted(tables, key=order.index):
            yield node, name, tables[name]
