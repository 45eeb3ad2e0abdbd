"""The topology: the lab's networkx graph as it is at the current event.

Links are drawn as boxes with their names, nodes as circles by role (HA, MN, NAT,
router, host). Where each node is attached comes from the recorded ``interfaces``
table of the current state, not from the live lab, so after "back" the mobile node
stands on the network it was on then. The link the current frame is on is marked,
with an arrow for its direction (sent: node → link, received: link → node). Overlays
drawn while they exist: the MN–HA tunnel (a registered binding), UDP encapsulation
(RFC 5555 §4.1, port 4191, and ESP in UDP 4500, RFC 3948) and IKE over NAT-T.

The layout is networkx's spring layout with a fixed seed, computed once per lab, so
the picture stays still while the student steps.
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as w
import networkx as nx

from ..state import LabState, role_of
from .part import Part
from .session import Session
from .svgview import SvgView

WIDTH, HEIGHT, MARGIN = 620, 400, 50
ROLE_COLOURS = {"HA": "#c62828", "MN": "#1565c0", "NAT": "#6a1b9a", "router": "#546e7a",
                "host": "#2e7d32"}


def layout(session: Session) -> dict[str, tuple[float, float]]:
    """Positions of links and fixed nodes (the mobile node is placed by its link)."""
    graph = session.lab.graph
    fixed = nx.Graph()
    for name, data in graph.nodes(data=True):
        if data.get("kind") == "link" or (name in session.lab.nodes
                                          and role_of(session.lab.nodes[name]) != "MN"):
            fixed.add_node(name)
    for a, b in graph.edges():
        if a in fixed and b in fixed:
            fixed.add_edge(a, b)
    if not fixed:
        return {}
    raw = nx.spring_layout(fixed, seed=7, iterations=300) if len(fixed) > 1 \
        else {n: (0.0, 0.0) for n in fixed}
    xs = [p[0] for p in raw.values()]
    ys = [p[1] for p in raw.values()]
    def scale(v, lo, hi, size):
        return MARGIN + (v - lo) / ((hi - lo) or 1) * (size - 2 * MARGIN)
    return {n: (scale(p[0], min(xs), max(xs), WIDTH), scale(p[1], min(ys), max(ys), HEIGHT))
            for n, p in raw.items()}


def attachments(state: LabState) -> dict[str, list[tuple[str, str]]]:
    """node → [(interface, link)] at this state, tunnels and detached interfaces left out."""
    out: dict[str, list[tuple[str, str]]] = {}
    for node, tables in state.tables.items():
        for row in tables.get("interfaces", ()):
            if row["link"] != "-":
                out.setdefault(node, []).append((row["interface"], row["link"]))
    return out


def overlays(session: Session, state: LabState) -> list[tuple[str, str, str]]:
    """(from node, to node, label) of the tunnels and encapsulations that exist now."""
    out = []
    for mn in state.nodes_with("addresses"):
        values = {row["what"]: row["value"] for row in state.table(mn, "addresses")}
        has = [ha for ha in state.nodes_with("binding_cache") if state.table(ha, "binding_cache")]
        if values.get("care-of address registered", "-") != "-" and has:
            hoa = values.get("home address (HoA)", "-")
            # protected only if the MN holds a tunnel-mode SA whose inner end is its HoA
            protected = any(row.get("mode") == "tunnel" for row in state.table(mn, "child_sas")
                            if hoa in str(row.get("local_ts", "")))
            how = "ESP tunnel mode" if protected else "IPv6-in-IP, not encrypted"
            for ha in has:
                out.append((mn, ha, f"MN–HA tunnel (RFC 6275 §11.3.1), {how}"))
        if values.get("UDP encapsulation (RFC 5555)") == "yes" and has:
            for ha in has:
                out.append((mn, ha, "UDP 4191 encapsulation (RFC 5555 §4.1)"))
    for node in state.nodes_with("ike_sas"):
        for row in state.table(node, "ike_sas"):
            if row["nat"] == "yes" and row["state"] == "ESTABLISHED" and \
                    row["role"] == "initiator":
                peer = next((n for n in state.nodes_with("ike_sas") if n != node), None)
                if peer:
                    out.append((node, peer, "IKE and ESP in UDP 4500 (NAT-T, RFC 3948)"))
    return out


def _positions(session: Session, state: LabState, base: dict[str, tuple[float, float]]):
    pos = dict(base)
    links = attachments(state)
    for node in session.lab.nodes:
        if node in pos:
            continue
        attached = [link for _, link in links.get(node, []) if link in base]
        if attached:
            lx, ly = base[attached[0]]
            pos[node] = (lx + 38, ly + 34)
        else:
            pos[node] = (WIDTH - MARGIN, HEIGHT - 14)
    return pos, links


def topology_text(session: Session, state: LabState | None = None) -> str:
    """The text alternative: every node, its role and links, overlays, the current frame."""
    state = state or session.timeline.state
    links = attachments(state)
    lines = [f"Topology of {session.name} at event #{session.timeline.cursor}:"]
    for node in session.lab.nodes:
        role = role_of(session.lab.nodes[node])
        where = ", ".join(f"{link} ({iface})" for iface, link in links.get(node, [])) \
            or "not attached"
        lines.append(f"- {node} ({role}) on {where}")
    for a, b, label in overlays(session, state):
        lines.append(f"- overlay {a} ↔ {b}: {label}")
    event = session.timeline.event
    if event is not None and event.link:
        direction = f"{event.node} → {event.link}" if event.kind == "tx" \
            else f"{event.link} → {event.node}"
        lines.append(f"- current frame on link {event.link}: {direction}")
    return "\n".join(lines)


def topology_svg(session: Session, base: dict[str, tuple[float, float]]) -> str:
    state = session.timeline.state
    pos, links = _positions(session, state, base)
    event = session.timeline.event
    text = topology_text(session, state)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           'role="img" aria-label="topology" font-family="sans-serif" font-size="11">',
           f"<title>Topology of {escape(session.name)}</title><desc>{escape(text)}</desc>",
           '<defs><marker id="mip6lab-topo-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
           'markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
           'fill="#d50000"/></marker></defs>']
    active = event.link if event is not None and event.link else None
    for node, attached in links.items():
        for _iface, link in attached:
            if node in pos and link in pos:
                (x1, y1), (x2, y2) = pos[node], pos[link]
                hot = link == active and node == event.node
                colour, width = ("#d50000", 3) if hot else ("#90a4ae", 1.5)
                marker = ""
                if hot:
                    if event.kind == "rx":
                        x1, y1, x2, y2 = x2, y2, x1, y1
                    marker = ' marker-end="url(#mip6lab-topo-arrow)"'
                out.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                           f'stroke="{colour}" stroke-width="{width}"{marker}/>')
    for a, b, label in overlays(session, state):
        if a in pos and b in pos:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            colour = "#ef6c00" if "UDP" in label else "#1565c0"
            dash = "6,3" if "UDP" in label else "2,3"
            out.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                       f'stroke="{colour}" stroke-width="3" stroke-dasharray="{dash}" '
                       f'opacity="0.8"><title>{escape(label)}</title></line>')
    for name, data in session.lab.graph.nodes(data=True):
        if data.get("kind") != "link" or name not in pos:
            continue
        x, y = pos[name]
        colour = "#d50000" if name == active else "#37474f"
        out.append(f'<rect x="{x - 30:.0f}" y="{y - 9:.0f}" width="60" height="18" rx="4" '
                   f'fill="#eceff1" stroke="{colour}" stroke-width="{2 if name == active else 1}"/>'
                   f'<text x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle">{escape(name)}</text>')
    for node in session.lab.nodes:
        if node not in pos:
            continue
        x, y = pos[node]
        role = role_of(session.lab.nodes[node])
        ring = ' stroke="#ffd600" stroke-width="4"' if event is not None and \
            event.node == node else ' stroke="#fff" stroke-width="1"'
        out.append(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="15" fill="{ROLE_COLOURS[role]}"{ring}>'
                   f'<title>{escape(node)} ({role})</title></circle>'
                   f'<text x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle" fill="#fff" '
                   f'font-weight="bold">{escape(node)}</text>')
    legend = "  ".join(f"{role}" for role in ROLE_COLOURS)
    out.append(f'<text x="6" y="{HEIGHT - 6}" fill="#607d8b">circles: nodes by role '
               f'({escape(legend)}); boxes: links; dashed: tunnels</text>')
    out.append("</svg>")
    return "".join(out)


class Topology(Part):
    """The lab's graph at the current event."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.view = SvgView()
        self.view.add_class("mip6lab-topology")
        self._base: dict[str, Any] = layout(session)
        super().__init__(session, [self.view])

    def _changed(self, what: str) -> None:
        if what == "rebuilt":
            self._base = layout(self.session)
        super()._changed(what)

    def refresh(self) -> None:
        self.view.svg = topology_svg(self.session, self._base)

    def text(self) -> str:
        return topology_text(self.session)
