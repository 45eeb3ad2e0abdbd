"""What every part of the dashboard does with its session: redraw when told."""

from __future__ import annotations

import ipywidgets as w

from .session import Session


class Part(w.VBox):
    """A part of the dashboard: children given by the subclass, :meth:`refresh` called
    at once and after each change of the session named in :attr:`redraw_on`."""

    redraw_on: tuple[str, ...] = ("moved", "rebuilt")

    def __init__(self, session: Session, children: list[w.Widget]) -> None:
        self.session = session
        super().__init__(children)
        session.observe(self._changed)
        self.refresh()

    def _changed(self, what: str) -> None:
        if what in self.redraw_on:
            self.refresh()

    def refresh(self) -> None:
        raise NotImplementedError
