"""The ladder: the trace as a sequence diagram, windowed around the current event.

Nodes are columns, one event a row: a frame sent is an arrow from its sender to the
nodes that received it, a seam crossing a diamond, a state change a dot, a drop a
cross. Only a window of rows around the current event is drawn (``window`` before and
after), so a run of thousands of events costs the same as a short one. Events after
the cursor that were already recorded (after "back") are drawn faded: a click on one
travels there.
"""

from __future__ import annotations

from bisect import bisect_left
from html import escape

import ipywidgets as w

from ..trace import Event
from .session import Session
from .svgview import SvgView

ROW, TOP, GUTTER, COLUMN = 22, 6, 150, 112
#: arrow colours by protocol (the first that applies), chosen to stay apart for
#: colour-blind readers and labelled in the legend
COLOURS = {"IKE": "#7b1fa2", "MH": "#e65100", "ESP": "#2e7d32", "ND/RA": "#757575",
           "data": "#1565c0", "other": "#9e9e9e"}
MARKS = {"seam": "#c2185b", "state": "#455a64", "drop": "#d50000", "error": "#d50000"}


def _colour(protocols: frozenset[str]) -> str:
    for name in ("IKE", "MH", "ESP", "ND/RA", "data"):
        if name in protocols:
            return COLOURS[name]
    return COLOURS["other"]


def window(session: Session, size: int) -> tuple[list[int], int | None]:
    """The indices of the rows to draw and the row of the current event (None when the
    filters hide it)."""
    shown = session.filtered()
    cursor = session.timeline.cursor
    at = bisect_left(shown, cursor)        # the first row at or after the cursor
    current = at if at < len(shown) and shown[at] == cursor else None
    start = max(at - size, 0)
    rows = shown[start:at + size + 1]
    return rows, (current - start) if current is not None else None


def describe_row(session: Session, event: Event) -> str:
    """One line of the text ladder."""
    where = event.node
    if event.kind == "tx":
        to = ", ".join(dict.fromkeys(session.receivers(event.index))) or f"link {event.link}"
        where = f"{event.node} → {to}"
    elif event.kind == "rx":
        where = f"{event.peer or '?'} → {event.node}"
    return f"#{event.index} {event.time:.6f}s {event.kind:<5} {where}: {event.summary}"


def ladder_text(session: Session, size: int = 20) -> str:
    """The text alternative of the ladder: the same rows, one line each."""
    rows, current = window(session, size)
    if not session.timeline.recorded:
        return "Ladder: the trace is empty (nothing has happened yet: step to begin)."
    events = session.timeline.events
    lines = [f"Ladder of {session.name}: {len(session.filtered())} of "
             f"{session.timeline.recorded} recorded events shown by the filters; "
             f"current event #{session.timeline.cursor}"]
    if current is None and session.timeline.cursor >= 0:
        lines.append(f"(the current event #{session.timeline.cursor} is hidden by the filters)")
    for row, index in enumerate(rows):
        mark = "▶ " if row == current else "  "
        lines.append(mark + describe_row(session, events[index]))
    return "\n".join(lines)


def ladder_svg(session: Session, size: int = 20) -> str:
    """The ladder as SVG: columns for the nodes, a row per event of the window."""
    columns = session.columns
    x = {node: GUTTER + COLUMN // 2 + i * COLUMN for i, node in enumerate(columns)}
    rows, current = window(session, size)
    width = GUTTER + COLUMN * max(len(columns), 1) + 10
    height = TOP + ROW * max(len(rows), 1) + 10
    cursor = session.timeline.cursor
    events = session.timeline.events
    text = ladder_text(session, size)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" aria-label="sequence diagram, {len(rows)} events" '
           f'font-family="monospace" font-size="11">',
           f"<title>Ladder of {escape(session.name)}</title><desc>{escape(text)}</desc>",
           '<defs><marker id="mip6lab-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
           'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
           '<path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>']
    for node in columns:
        out.append(f'<line x1="{x[node]}" y1="0" x2="{x[node]}" y2="{height}" '
                   'stroke="#cfd8dc" stroke-width="2"/>')
    if not rows:
        message = "the trace is empty: step to begin" if not session.timeline.recorded \
            else "no event passes the filters"
        out.append(f'<text x="{GUTTER}" y="{TOP + 12}">{escape(message)}</text>')
    for row, index in enumerate(rows):
        event = events[index]
        y = TOP + row * ROW + ROW // 2
        classes = ["row"]
        if row == current:
            classes.append("current")
        if index > cursor:
            classes.append("future")
        opacity = ' opacity="0.4"' if index > cursor else ""
        label = escape(describe_row(session, event))
        out.append(f'<g class="{" ".join(classes)}" data-event="{index}" tabindex="0" '
                   f'role="button" aria-label="{label}"{opacity}>')
        fill = "#fff59d" if row == current else "transparent"
        out.append(f'<rect x="0" y="{y - ROW // 2}" width="{width}" height="{ROW}" '
                   f'fill="{fill}"/>')
        out.append(f'<text x="4" y="{y + 4}" fill="#37474f">#{index} {event.time:.4f}s</text>')
        out.extend(_row(session, event, x, y))
        out.append("</g>")
    if current is None and cursor >= 0 and rows:
        out.append(f'<text x="{GUTTER}" y="{height - 2}" fill="#b71c1c">current event '
                   f'#{cursor} hidden by the filters</text>')
    out.append("</svg>")
    # the node names stay in view while the rows scroll under them
    names = "".join(f'<text x="{x[node]}" y="14" text-anchor="middle" font-weight="bold">'
                    f"{escape(node)}</text>" for node in columns)
    header = (f'<div style="position:sticky;top:0;background:#fff;z-index:1">'
              f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" '
              f'aria-hidden="true" font-family="monospace" font-size="11">{names}</svg></div>')
    return header + "".join(out)


def _row(session: Session, event: Event, x: dict[str, int], y: int) -> list[str]:
    here = x.get(event.node)
    if here is None:
        return []
    summary = escape(event.summary[:60])
    if event.kind in ("tx", "rx"):
        colour = _colour(session.reader.protocols(event))
        if event.kind == "tx":
            targets = [x[n] for n in dict.fromkeys(session.receivers(event.index)) if n in x]
        else:
            targets = []
        parts = []
        if not targets:              # nobody received it (yet): a stub towards the link
            sign = 1 if event.kind == "tx" else -1
            start, end = (here, here + sign * 40) if event.kind == "tx" else (here - 40, here)
            parts.append(f'<line x1="{start}" y1="{y}" x2="{end}" y2="{y}" stroke="{colour}" '
                         'stroke-width="2" stroke-dasharray="3,2" '
                         'marker-end="url(#mip6lab-arrow)"/>')
            anchor = min(start, end)
        else:
            for target in targets:
                parts.append(f'<line x1="{here}" y1="{y}" x2="{target}" y2="{y}" '
                             f'stroke="{colour}" stroke-width="2" '
                             'marker-end="url(#mip6lab-arrow)"/>')
            anchor = min([here, *targets])
        parts.append(f'<text x="{anchor + 6}" y="{y - 3}" fill="{colour}">{summary}</text>')
        return parts
    colour = MARKS.get(event.kind, "#455a64")
    if event.kind == "seam":
        shape = (f'<path d="M{here},{y - 6} L{here + 6},{y} L{here},{y + 6} '
                 f'L{here - 6},{y} z" fill="{colour}"/>')
    elif event.kind in ("drop", "error"):
        shape = (f'<path d="M{here - 5},{y - 5} L{here + 5},{y + 5} M{here + 5},{y - 5} '
                 f'L{here - 5},{y + 5}" stroke="{colour}" stroke-width="2.5"/>')
    else:
        shape = f'<circle cx="{here}" cy="{y}" r="4.5" fill="{colour}"/>'
    return [shape, f'<text x="{here + 10}" y="{y + 4}" fill="{colour}">{summary}</text>']


class Ladder(w.VBox):
    """The sequence diagram with its filters; a click on a row selects that event."""

    def __init__(self, session: Session, size: int = 20) -> None:
        from ..inspection import PROTOCOLS
        from .session import KINDS

        self.session, self.size = session, size
        self.view = SvgView()
        self.view.add_class("mip6lab-ladder")
        self.view.on_select(self.session.select)
        self.kinds = w.SelectMultiple(options=list(KINDS), value=sorted(session.kinds),
                                      description="kinds", rows=5,
                                      layout=w.Layout(width="190px"))
        self.protocols = w.SelectMultiple(options=list(PROTOCOLS), value=list(PROTOCOLS),
                                          description="protocols", rows=6,
                                          layout=w.Layout(width="210px"))
        self.nodes = w.SelectMultiple(options=session.columns, value=session.columns,
                                      description="nodes", rows=6,
                                      layout=w.Layout(width="190px"))
        for control in (self.kinds, self.protocols, self.nodes):
            control.add_class("mip6lab-filter")
            control.observe(self._filter_changed, "value")
        legend = " ".join(f'<span style="color:{c}">■ {escape(n)}</span>'
                          for n, c in COLOURS.items())
        legend += (' <span style="color:#c2185b">◆ seam</span> '
                   '<span style="color:#455a64">● state</span> '
                   '<span style="color:#d50000">✕ drop</span>')
        self.legend = w.HTML(f'<div style="font-size:11px">{legend}</div>')
        filters = w.Accordion(children=[w.HBox([self.kinds, self.protocols, self.nodes])],
                              titles=("Filters: kind, protocol, node",))
        filters.selected_index = None
        super().__init__([filters, self.legend, self.view])
        session.observe(self._changed)
        self.refresh()

    def _filter_changed(self, _change) -> None:
        from ..inspection import PROTOCOLS

        protocols = self.protocols.value
        nodes = self.nodes.value
        self.session.set_filters(
            kinds=self.kinds.value,
            nodes=None if set(nodes) == set(self.session.columns) else nodes,
            protocols=None if set(protocols) == set(PROTOCOLS) else protocols)

    def _changed(self, what: str) -> None:
        if what == "rebuilt":
            for control in (self.kinds, self.protocols, self.nodes):
                control.unobserve(self._filter_changed, "value")
            self.nodes.options = self.session.columns
            self.nodes.value = self.session.columns
            for control in (self.kinds, self.protocols, self.nodes):
                control.observe(self._filter_changed, "value")
            self._filter_changed(None)       # the new lab, filtered as before
            return
        if what in ("moved", "filters"):
            self.refresh()

    def refresh(self) -> None:
        self.view.svg = ladder_svg(self.session, self.size)

    def text(self) -> str:
        return ladder_text(self.session, self.size)
