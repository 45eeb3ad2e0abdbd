"""The controls: step, back, next of a kind, jump, run to a breakpoint, reset, play.

Every button calls one :class:`~mip6lab.widgets.session.Session` method; the position
line (event index, events recorded, simulated time) and the message line are redrawn
after each. Play is ipywidgets' ``Play``: the browser ticks at the chosen interval and
each tick steps ``per tick`` events, so the kernel is never blocked by a loop.
"""

from __future__ import annotations

from html import escape

import ipywidgets as w

from ..timeline import EVENT_CLASSES
from .session import Session


def _button(label: str, css: str, tip: str, icon: str = "") -> w.Button:
    button = w.Button(description=label, tooltip=tip, icon=icon,
                      layout=w.Layout(width="auto"))
    button.add_class(css)
    return button


class Controls(w.VBox):
    """The buttons, the position and the message."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.reset = _button("reset", "mip6lab-reset", "back to the lab as built", "fast-backward")
        self.back = _button("back", "mip6lab-back", "one event back (nothing is re-run)",
                            "step-backward")
        self.step = _button("step", "mip6lab-step", "one event forward", "step-forward")
        self.next = _button("next", "mip6lab-next", "forward to the next event of this kind",
                            "forward")
        self.kind = w.Dropdown(options=[(label, key) for key, (label, _) in EVENT_CLASSES.items()],
                               value="packet", layout=w.Layout(width="150px"))
        self.kind.add_class("mip6lab-next-kind")
        self.node = w.Dropdown(options=[("any node", "")] + [(n, n) for n in session.columns],
                               value="", layout=w.Layout(width="110px"))
        self.node.add_class("mip6lab-next-node")
        self.index = w.BoundedIntText(value=0, min=-1, max=10**9, description="event",
                                      layout=w.Layout(width="150px"))
        self.jump = _button("jump", "mip6lab-jump", "make this event the current one")
        self.time = w.BoundedFloatText(value=0.0, min=0.0, max=10**6, step=0.1,
                                       description="t (s)", layout=w.Layout(width="150px"))
        self.run_to = _button("run to t", "mip6lab-run-to", "run to the last event at or "
                              "before this simulated time")
        self.end = _button("run to the end", "mip6lab-end", "record the whole run and go to "
                           "its last event; shows the verdict")
        self.play = w.Play(value=0, min=0, max=10**9, step=1, interval=300,
                           description="play", show_repeat=False)
        self.play.add_class("mip6lab-play")
        self.per_tick = w.IntSlider(value=1, min=1, max=50, description="events/tick",
                                    layout=w.Layout(width="260px"))
        self.speed = w.IntSlider(value=300, min=30, max=2000, step=10, description="ms/tick",
                                 layout=w.Layout(width="260px"))
        w.jslink((self.speed, "value"), (self.play, "interval"))
        self.position = w.HTML()
        self.position.add_class("mip6lab-position")
        self.message = w.HTML()
        self.message.add_class("mip6lab-message")
        self.reset.on_click(lambda _b: session.reset())
        self.back.on_click(lambda _b: session.back())
        self.step.on_click(lambda _b: session.step())
        self.next.on_click(lambda _b: session.next(self.kind.value, self.node.value or None))
        self.jump.on_click(lambda _b: session.jump(self.index.value))
        self.run_to.on_click(lambda _b: session.run_to(time=self.time.value))
        self.end.on_click(lambda _b: session.run_all())
        self.play.observe(self._tick, "value")
        rows = [w.HBox([self.reset, self.back, self.step, self.next, self.kind, self.node]),
                w.HBox([self.index, self.jump, self.time, self.run_to, self.end]),
                w.HBox([self.play, self.per_tick, self.speed]),
                self.position, self.message]
        super().__init__(rows)
        session.observe(self._changed)
        self.refresh()

    def _tick(self, change) -> None:
        if change["new"] == 0:
            return
        before = self.session.timeline.cursor
        self.session.step(self.per_tick.value)
        if self.session.timeline.cursor == before:   # the end: stop ticking
            self.play.playing = False

    def _changed(self, what: str) -> None:
        if what == "rebuilt":
            self.node.options = [("any node", "")] + [(n, n) for n in self.session.columns]
            self.node.value = ""
        self.refresh()

    def position_text(self) -> str:
        t = self.session.timeline
        total = t.recorded
        more = "" if t.exhausted else " so far"
        return (f"event {t.cursor} / {total} · t = {t.time_us / 1e6:.6f} s"
                f" · {self.session.name} · {total} events recorded{more}")

    def refresh(self) -> None:
        t = self.session.timeline
        self.position.value = f"<b>{escape(self.position_text())}</b>"
        note = self.session.message
        verdict = self.session.verdict()
        parts = []
        if note:
            parts.append(f'<span style="color:#b71c1c">{escape(note)}</span>')
        if verdict:
            colour = "#1b5e20" if verdict.endswith("ok") else "#b71c1c"
            parts.append(f'<span style="color:{colour}"><b>{escape(verdict)}</b></span>')
        self.message.value = " · ".join(parts)
        self.index.value = max(t.cursor, -1)

    def text(self) -> str:
        lines = [self.position_text()]
        if self.session.message:
            lines.append(f"message: {self.session.message}")
        verdict = self.session.verdict()
        if verdict:
            lines.append(verdict)
        return "\n".join(lines)
