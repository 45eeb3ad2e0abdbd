"""One small browser-side view: an SVG drawing whose marked elements can be clicked.

Built on anywidget: the ES module below ships inside the Python package (no CDN, no
build step, nothing fetched at run time) and runs in JupyterLab 4, Notebook 7 and
Voilà alike. Python sends the drawing as a string; a click on an element carrying
``data-event`` comes back as a message. The drawing is re-sent whole each time:
a windowed ladder is a few kilobytes, cheaper than diffing.
"""

from __future__ import annotations

from collections.abc import Callable

import anywidget
import traitlets

_ESM = """
function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "mip6lab-svgbox";
  el.appendChild(box);
  const draw = () => {
    box.innerHTML = model.get("svg");
    const current = box.querySelector(".current");
    if (current && current.scrollIntoView) {
      current.scrollIntoView({ block: "center", inline: "nearest" });
    }
  };
  box.addEventListener("click", (event) => {
    const target = event.target.closest("[data-event]");
    if (target) {
      model.send({ select: parseInt(target.getAttribute("data-event"), 10) });
    }
  });
  box.addEventListener("keydown", (event) => {
    const target = event.target.closest("[data-event]");
    if (target && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      model.send({ select: parseInt(target.getAttribute("data-event"), 10) });
    }
  });
  model.on("change:svg", draw);
  draw();
}
export default { render };
"""

_CSS = """
.mip6lab-svgbox { overflow: auto; max-height: var(--mip6lab-height, 460px); }
.mip6lab-svgbox [data-event] { cursor: pointer; }
.mip6lab-svgbox [data-event]:hover { opacity: 0.7; }
.mip6lab-svgbox [data-event]:focus { outline: 2px solid #1565c0; }
"""


class SvgView(anywidget.AnyWidget):
    """An SVG drawing; ``on_select(callback)`` hears clicks on its ``data-event`` marks."""

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    _css = traitlets.Unicode(_CSS).tag(sync=True)
    svg = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._callbacks: list[Callable[[int], None]] = []
        self.on_msg(self._message)

    def on_select(self, callback: Callable[[int], None]) -> None:
        self._callbacks.append(callback)

    def _message(self, _widget, content, _buffers) -> None:
        index = content.get("select") if isinstance(content, dict) else None
        if isinstance(index, int):
            self.click(index)

    def click(self, index: int) -> None:
        """What a click on the mark of event ``index`` does (tests call it too)."""
        for callback in list(self._callbacks):
            callback(index)
