"""State panels and the seam panel: the tables, and the crossings of the seam, at the
current event.

The tables are the recorded :class:`~mip6lab.state.LabState` of the current event: the
SPD, SAD and PAD of each IPsec node (RFC 4301 §4.4), each daemon's IKE SAs and child
SAs, the home agent's binding cache, the mobile node's binding update list and
addresses. A row the current event added or changed is marked; a row it removed is
shown struck through; "show the diff" lists the changes field by field.

The seam panel counts every crossing of the mobility/security seam so far -- key-engine
messages and the coupling's IKE requests and answers -- by message, by direction and
by registration (the first one, then each handover): the talk's "90 %" as numbers.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import Any

import ipywidgets as w

from ..state import TABLES, RowChange, cell_text, role_of
from .part import Part
from .session import Session

_STYLE = """<style>
.mip6lab-panels table { border-collapse: collapse; font-size: 11px; margin-bottom: 4px; }
.mip6lab-panels th { background: #eceff1; text-align: left; padding: 1px 5px; }
.mip6lab-panels td { border-top: 1px solid #eceff1; padding: 1px 5px; font-family: monospace;
  vertical-align: top; max-width: 360px; overflow-wrap: anywhere; }
.mip6lab-panels tr.changed td { background: #fff59d; }
.mip6lab-panels tr.added td { background: #c8e6c9; }
.mip6lab-panels tr.removed td { background: #ffcdd2; text-decoration: line-through; }
.mip6lab-panels h4 { margin: 6px 0 2px 0; }
.mip6lab-seam table { border-collapse: collapse; font-size: 11px; }
.mip6lab-seam td, .mip6lab-seam th { padding: 1px 6px; border-top: 1px solid #eceff1; }
</style>"""

#: the tables of a router or host that is not part of the mobility/security story are
#: left out of the panels (they are in the text alternative with ``every_node=True``)
_STORY = {"addresses", "binding_update_list", "binding_cache", "mobility_sas", "ike_sas",
          "child_sas", "spd", "sad", "pad"}


def _table_html(rows: tuple[dict[str, Any], ...], marks: dict[str, str],
                removed: list[dict[str, Any]], key: str) -> str:
    if not rows and not removed:
        return '<div class="mip6lab-empty">empty</div>'
    columns = list(dict.fromkeys(k for row in (*rows, *removed) for k in row))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        name = str(row.get(key, i))
        seen[name] = seen.get(name, 0) + 1
        name += "'" * (seen[name] - 1)
        mark = marks.get(name, "")
        cells = "".join(f"<td>{escape(cell_text(row.get(c, '')))}</td>" for c in columns)
        body.append(f'<tr class="{mark}">{cells}</tr>')
    for row in removed:
        cells = "".join(f"<td>{escape(cell_text(row.get(c, '')))}</td>" for c in columns)
        body.append(f'<tr class="removed">{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _css_name(text: str) -> str:
    """``text`` reduced to what a CSS class may hold (a node may be named anything)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


class StatePanels(Part):
    """Every node's tables at the current event, with what this event changed."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.show_diff = w.Checkbox(value=False, description="show the diff against the "
                                    "previous step", indent=False)
        self.show_diff.add_class("mip6lab-show-diff")
        self.show_diff.observe(lambda _c: self.refresh(), "value")
        self.html = w.HTML()
        self.html.add_class("mip6lab-panels")
        super().__init__(session, [self.show_diff, self.html])

    def changes(self) -> list[RowChange]:
        return self.session.timeline.changes_at(self.session.timeline.cursor)

    def refresh(self) -> None:
        state = self.session.timeline.state
        changes = self.changes()
        out = [_STYLE]
        nodes = [n for n in self.session.columns
                 if set(state.tables.get(n, {})) & _STORY]
        if not nodes:
            out.append("<div>This lab has no IPsec, IKE or mobility node: there are no "
                       "SPD, SAD, PAD, IKE SA or binding tables to show. The ladder, the "
                       "topology and the inspector still show every frame.</div>")
        if self.show_diff.value:
            lines = [escape(c.describe()) for c in changes] or ["(this event changed no table)"]
            if 0 <= self.session.timeline.cursor < self.session.timeline.prehistory:
                lines = ["(this event happened while the lab was built, before the recording "
                         "began: the tables shown are those of the lab as built)"]
            out.append(f'<div class="mip6lab-diff"><b>Changed by event '
                       f'#{self.session.timeline.cursor}:</b><br>{"<br>".join(lines)}</div>')
        for node in nodes:
            role = role_of(self.session.lab.nodes[node]) if node in self.session.lab.nodes \
                else ""
            out.append(f"<h4>{escape(node)} ({escape(role)})</h4>")
            for table, rows in state.tables[node].items():
                if table not in _STORY:
                    continue
                title, key = TABLES[table]
                mine = [c for c in changes if c.node == node and c.table == table]
                marks = {c.key: c.change for c in mine if c.change != "removed"}
                removed = [c.row for c in mine if c.change == "removed"]
                css = "mip6lab-panel-" + _css_name(f"{node}-{table}")
                out.append(f'<div class="mip6lab-panel {css}"><b>{escape(title)}</b> '
                           f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
                           f"{_table_html(rows, marks, removed, key)}</div>")
        self.html.value = "".join(out)

    def text(self, every_node: bool = False) -> str:
        state = self.session.timeline.state
        nodes = None if every_node else [n for n in state.tables
                                         if set(state.tables[n]) & _STORY]
        changes = self.changes()
        text = state.text(nodes)
        if not text:
            text = "State: this lab has no IPsec, IKE or mobility node."
        if changes:
            text += "\nChanged by this event:\n" + "\n".join("  " + c.describe() for c in changes)
        return f"State at event #{self.session.timeline.cursor}:\n{text}"


def seam_counts(session: Session) -> dict[str, Any]:
    """The crossings of the seam up to the current event: in all, by message, by
    direction (sender → receiver), by registration."""
    crossings = session.seam_events()
    phases = session.phases()
    by_phase: Counter[str] = Counter()
    for event in crossings:
        label = "before the first registration"
        for start, name in phases:
            if event.time_us >= start:
                label = name
        by_phase[label] += 1
    by_message = Counter(str(e.data.get("message", "?")) for e in crossings)
    by_direction = Counter(f"{e.data.get('sender', '?')} → "
                           f"{', '.join(e.data.get('receivers', []) or ['?'])}"
                           for e in crossings)
    by_module = Counter(e.module for e in crossings)
    return {"total": len(crossings), "by_message": dict(by_message.most_common()),
            "by_direction": dict(by_direction.most_common()),
            "by_registration": dict(by_phase), "by_module": dict(by_module),
            "recent": crossings[-12:]}


class SeamPanel(Part):
    """Every crossing of the mobility/security seam so far, counted."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.html = w.HTML()
        self.html.add_class("mip6lab-seam")
        super().__init__(session, [self.html])

    def refresh(self) -> None:
        counts = seam_counts(self.session)

        def table(title: str, values: dict[str, int]) -> str:
            rows = "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in values.items())
            return f"<table><tr><th>{escape(title)}</th><th>crossings</th></tr>{rows}</table>"

        recent = "".join(f"<li>#{e.index} {e.time:.4f}s {escape(e.node)}: "
                         f"{escape(e.summary[:110])}</li>" for e in counts["recent"])
        self.html.value = (
            _STYLE + f'<div class="mip6lab-seam-total"><b>{counts["total"]}</b> crossings of '
            "the mobility/security seam so far (key-engine messages between the mobility "
            "module, the IKE daemon and the kernel's SPD/SAD; the coupling's IKE requests "
            "and answers)</div>"
            f'<div style="display:flex;gap:12px;flex-wrap:wrap">'
            f'{table("by registration", counts["by_registration"])}'
            f'{table("by message", counts["by_message"])}'
            f'{table("by direction", counts["by_direction"])}</div>'
            f"<div>latest:</div><ul style='font-size:11px;font-family:monospace'>{recent}</ul>")

    def text(self) -> str:
        counts = seam_counts(self.session)
        lines = [f"Seam: {counts['total']} crossings so far"]
        for key in ("by_registration", "by_message", "by_direction"):
            lines.append(f"  {key.replace('_', ' ')}: " +
                         ", ".join(f"{k} {v}" for k, v in counts[key].items()))
        return "\n".join(lines)
