"""The inspector: the current event's frame layer by layer, its bytes, and what it hides.

The layer tree is scapy's (field names as scapy gives them, which for the headers of
this course are Wireshark's too: ``nh``, ``plen``, ``spi``, ``mhtype`` ...); a layer
chosen in the drop-down has its bytes marked in the hexdump. Because the lab holds every
key, an ESP payload or an IKE SK payload is shown decrypted beside the ciphertext, in
its own box labelled as decrypted: on the wire it is not readable. A non-packet event
shows its fields (a seam message: its sender, receivers and message).
"""

from __future__ import annotations

from html import escape

import ipywidgets as w

from ..inspection import Dissection, EventView, hexdump_rows, hexdump_text
from .part import Part
from .session import Session

_STYLE = """<style>
.mip6lab-inspector table { border-collapse: collapse; font-size: 11px; }
.mip6lab-inspector td { padding: 0 6px; vertical-align: top; font-family: monospace; }
.mip6lab-inspector details.mip6lab-layer { margin-left: 12px; }
.mip6lab-inspector summary { font-family: monospace; font-weight: bold; }
.mip6lab-hexdump { font-size: 11px; line-height: 1.25; margin: 4px 0; }
.mip6lab-hexdump mark { background: #ffe082; }
.mip6lab-decrypted { border: 2px dashed #2e7d32; background: #f1f8e9; padding: 4px;
  margin-top: 6px; }
.mip6lab-decrypted-label { color: #1b5e20; font-weight: bold; }
.mip6lab-summary { font-weight: bold; }
</style>"""


def _layers_html(dissection: Dissection) -> str:
    out = []
    for layer in dissection.layers:
        rows = "".join(f"<tr><td>{escape(name)}</td><td>{escape(value)}</td></tr>"
                       for name, value in layer.fields)
        span = f" [{layer.start}:{layer.end}]" if layer.end > layer.start else ""
        out.append(f'<details class="mip6lab-layer" open style="margin-left:'
                   f'{layer.depth * 12}px"><summary>{escape(layer.name)}{span}</summary>'
                   f"<table>{rows}</table></details>")
    if dissection.error:
        out.append(f'<div class="mip6lab-warning">⚠ {escape(dissection.error)}</div>')
    return "".join(out)


def _hexdump_html(data: bytes, mark: tuple[int, int] | None) -> str:
    lines = []
    for offset, chunk in hexdump_rows(data):
        cells = []
        for i, byte in enumerate(chunk):
            cell = f"{byte:02x}"
            if mark and mark[0] <= offset + i < mark[1]:
                cell = f"<mark>{cell}</mark>"
            cells.append(cell)
        text = escape("".join(chr(b) if 32 <= b < 127 else "." for b in chunk))
        lines.append(f"{offset:04x}  {' '.join(cells)}  {text}")
    return f'<pre class="mip6lab-hexdump">{chr(10).join(lines)}</pre>'


class Inspector(Part):
    """The current event in detail."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.layer = w.Dropdown(description="mark bytes of", options=[],
                                layout=w.Layout(width="340px"))
        self.layer.add_class("mip6lab-layer-choice")
        self.layer.observe(self._layer_chosen, "value")
        self.html = w.HTML()
        self.html.add_class("mip6lab-inspector")
        self._view: EventView | None = None
        self._error: str | None = None
        super().__init__(session, [self.layer, self.html])

    def refresh(self) -> None:
        event = self.session.timeline.event
        self._error = None
        if event is None:
            self._view = None
        else:
            try:
                self._view = self.session.reader.view(event)
            except Exception as exc:     # a frame that breaks the reader: say so, go on
                self._view, self._error = EventView(event), f"cannot read this frame: {exc}"
        options = []
        if self._view is not None and self._view.dissection is not None:
            options = [(f"{l.name} [{l.start}:{l.end}]", i)
                       for i, l in enumerate(self._view.dissection.layers)]
        # only our own handler is set aside: ipywidgets' own value/index link stays
        self.layer.unobserve(self._layer_chosen, "value")
        self.layer.options = options
        if options:     # the innermost header: usually the one the step is about
            self.layer.index = len(options) - 1
        self.layer.observe(self._layer_chosen, "value")
        self._draw()

    def _layer_chosen(self, _change) -> None:
        self._draw()

    def _draw(self) -> None:
        view = self._view
        if view is None:
            self.html.value = _STYLE + ('<div class="mip6lab-summary">Before the first '
                                        "event: the lab as built. Step to begin.</div>")
            return
        e = view.event
        head = (f'<div class="mip6lab-summary">#{e.index} {escape(e.summary)}</div>'
                f"<div>{e.time:.6f} s · node {escape(e.node)} · module "
                f"{escape(e.module)} · {escape(e.kind)}"
                + (f" · link {escape(e.link)}" if e.link else "")
                + (f" · from {escape(e.peer)}" if e.peer else "") + "</div>")
        if e.reason:
            head += f"<div>reason: {escape(e.reason)}</div>"
        if self._error:
            head += f'<div class="mip6lab-warning">⚠ {escape(self._error)}</div>'
        body = []
        if view.details:
            rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>"
                           for k, v in view.details.items())
            body.append(f"<table>{rows}</table>")
        if view.dissection is not None:
            layers = view.dissection.layers
            chosen = self.layer.value
            mark = (layers[chosen].start, layers[chosen].end) \
                if chosen is not None and chosen < len(layers) else None
            body.append(_layers_html(view.dissection))
            body.append(_hexdump_html(view.dissection.data, mark))
        if view.decrypted is not None:
            d = view.decrypted
            inner = f"<div>cannot open: {escape(d.error)}</div>" if d.error else ""
            if d.dissection is not None and not d.error:
                inner = _layers_html(d.dissection)
                if d.what == "ESP payload":
                    inner += _hexdump_html(d.dissection.data, None)
            body.append(f'<div class="mip6lab-decrypted"><div class="mip6lab-decrypted-label">'
                        f"Decrypted {escape(d.what)} — opened with {escape(d.key)}, which the "
                        f"lab knows; on the wire these bytes are ciphertext</div>{inner}</div>")
        self.html.value = _STYLE + head + "".join(body)

    def text(self) -> str:
        if self._view is None:
            return "Inspector: before the first event (the lab as built)."
        text = self._view.text()
        if self._view.dissection is not None and self.layer.value is not None:
            layer = self._view.dissection.layers[self.layer.value]
            text += f"\nHexdump ({layer.name} marked):\n" + \
                hexdump_text(self._view.dissection.data, (layer.start, layer.end))
        return text
