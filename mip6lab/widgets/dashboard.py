"""The dashboard: controls, ladder, topology, inspector, tables, seam and what-if together.

``Dashboard("handover", k_bit=0)`` (a scenario's name and options), ``Dashboard(scenario)``
or ``Dashboard(lab)``. Every part is also a widget of its own (``dash.ladder``,
``dash.inspector`` ...) over the same :class:`Session`, and every part has a text
alternative (``dash.text()``, or each part's ``text()``) for screen readers and tests.
The Python methods (``step``, ``back``, ``jump``, ``next``, ``run_to``, ``select``,
``rebuild``) do what the buttons do.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ..net.lab import Lab
from ..scenarios import Scenario, ScenarioError
from ..trace import Event
from .controls import Controls
from .inspector import Inspector
from .ladder import Ladder
from .panels import SeamPanel, StatePanels
from .session import Session
from .topology import Topology
from .whatif import WhatIf


def _box(title: str, child: w.Widget, css: str, width: str = "auto") -> w.VBox:
    box = w.VBox([w.HTML(f"<b>{title}</b>"), child],
                 layout=w.Layout(border="1px solid #cfd8dc", padding="4px", width=width,
                                 overflow="auto"))
    box.add_class(css)
    return box


class Dashboard(w.VBox):
    """The lab, steppable and inspectable, in one widget."""

    def __init__(self, source: str | Scenario | Lab | Session = "home-registration",
                 seed: int = 0, **options: Any) -> None:
        problem = ""
        if isinstance(source, Session):
            session = source
        else:
            try:
                session = Session(source, seed, **options)
            except ScenarioError as exc:       # a bad name or option: say so, show a lab
                problem = f"{exc}; showing home-registration instead"
                session = Session("home-registration", seed)
        self.session = session
        self.controls = Controls(session)
        self.ladder = Ladder(session)
        self.topology = Topology(session)
        self.inspector = Inspector(session)
        self.tables = StatePanels(session)
        self.seam = SeamPanel(session)
        self.whatif = WhatIf(session)
        self.text_view = w.Textarea(layout=w.Layout(width="100%", height="240px"),
                                    disabled=True)
        self.text_view.add_class("mip6lab-text")
        text_button = w.Button(description="show everything as text",
                               layout=w.Layout(width="auto"))
        text_button.add_class("mip6lab-show-text")
        text_button.on_click(lambda _b: setattr(self.text_view, "value", self.text()))
        top = w.HBox([_box("Ladder", self.ladder, "mip6lab-ladder-box", "58%"),
                      _box("Inspector", self.inspector, "mip6lab-inspector-box", "42%")])
        middle = w.HBox([_box("Topology", self.topology, "mip6lab-topology-box", "45%"),
                         _box("Tables at this event", self.tables, "mip6lab-tables-box", "55%")])
        bottom = w.HBox([_box("Mobility/security seam", self.seam, "mip6lab-seam-box", "55%"),
                         _box("What if ...", self.whatif, "mip6lab-whatif-box", "45%")])
        extra = w.Accordion(children=[w.VBox([text_button, self.text_view])],
                            titles=("Text alternative of the whole dashboard",))
        extra.selected_index = None
        super().__init__([self.controls, top, middle, bottom, extra])
        self.add_class("mip6lab-dashboard")
        if problem:
            session.message = problem
            session.notify("message")

    # -- what the buttons do ---------------------------------------------------------------

    @property
    def timeline(self):
        return self.session.timeline

    @property
    def lab(self) -> Lab:
        return self.session.lab

    @property
    def scenario(self) -> Scenario | None:
        return self.session.scenario

    def step(self, count: int = 1) -> Event | None:
        return self.session.step(count)

    def back(self, count: int = 1) -> Event | None:
        return self.session.back(count)

    def jump(self, index: int) -> Event | None:
        return self.session.jump(index)

    def select(self, index: int) -> Event | None:
        return self.session.select(index)

    def next(self, what: str = "event", node: str | None = None) -> Event | None:
        return self.session.next(what, node)

    def run_to(self, **breakpoint: Any) -> Event | None:
        return self.session.run_to(**breakpoint)

    def reset(self) -> None:
        self.session.reset()

    def rebuild(self, **changes: Any) -> bool:
        return self.whatif.rebuild(**changes)

    def text(self) -> str:
        """Every part as text: the dashboard's text alternative."""
        return "\n\n".join([self.controls.text(), self.ladder.text(), self.topology.text(),
                            self.inspector.text(), self.tables.text(), self.seam.text(),
                            self.whatif.text()])
