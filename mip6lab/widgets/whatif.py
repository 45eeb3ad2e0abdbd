"""What-if: a scenario's options as controls; "rebuild" makes the scenario again with them.

The options and the values they may take come from the scenario class itself
(:attr:`~mip6lab.scenarios.base.Scenario.options` and ``choices``), so a new option
appears here without a change to this file. A refused combination leaves the running
scenario as it was and says why in the message line.
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as w

from .session import Session


def _control(name: str, default: Any, value: Any, choices: tuple | None) -> w.Widget:
    style = {"description_width": "130px"}
    layout = w.Layout(width="300px")
    if choices:
        control = w.Dropdown(options=list(choices), value=value, description=name,
                             style=style, layout=layout)
    elif isinstance(default, bool):
        control = w.Checkbox(value=bool(value), description=name, style=style)
    elif isinstance(default, int):
        control = w.IntText(value=value, description=name, style=style, layout=layout)
    elif isinstance(default, float):
        control = w.FloatText(value=value, description=name, style=style, layout=layout)
    else:
        control = w.Text(value=str(value), description=name, style=style, layout=layout)
    control.add_class(f"mip6lab-option-{name}")
    return control


def _close(widget: w.Widget) -> None:
    """Close a widget and everything inside it (its comm goes, the browser drops it)."""
    for child in getattr(widget, "children", ()):
        _close(child)
    for part in ("layout", "style"):         # each control's own Layout and Style widgets
        inner = getattr(widget, part, None)
        if isinstance(inner, w.Widget):
            inner.close()
    widget.close()


class WhatIf(w.VBox):
    """The scenario's options; rebuild with the ones changed."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.apply = w.Button(description="rebuild with these options", icon="refresh",
                              layout=w.Layout(width="auto"))
        self.apply.add_class("mip6lab-rebuild")
        self.apply.on_click(lambda _b: self.rebuild())
        self.message = w.HTML()
        self.message.add_class("mip6lab-whatif-message")
        self.controls: dict[str, w.Widget] = {}
        super().__init__()
        session.observe(self._changed)
        self._build()

    def _build(self) -> None:
        for old in self.children:          # the previous scenario's controls go away
            if old is not self.apply and old is not self.message:
                _close(old)
        scenario = self.session.scenario
        if scenario is None:
            self.controls = {}
            self.children = [w.HTML("A bare lab has no options: build it as a scenario "
                                    "(<code>Dashboard('handover', k_bit=0)</code>) to try "
                                    "what-ifs.")]
            return
        self.controls = {"seed": _control("seed", 0, self.session.lab.seed, None)}
        for name, default in scenario.options.items():
            self.controls[name] = _control(name, default, scenario.settings[name],
                                           scenario.choices.get(name))
        grid = w.GridBox(list(self.controls.values()),
                         layout=w.Layout(grid_template_columns="repeat(2, 310px)"))
        title = w.HTML(f"<b>{escape(scenario.name)}</b>: {escape(scenario.description)}")
        self.children = [title, grid, self.apply, self.message]

    def values(self) -> dict[str, Any]:
        return {name: control.value for name, control in self.controls.items()}

    def rebuild(self, **changes: Any) -> bool:
        """Rebuild with the controls' values (and ``changes``, which set the controls
        first: what a test or a notebook cell does instead of clicking). A refusal is a
        message in both message lines, and the controls go back to the running values."""
        scenario = self.session.scenario
        problem = None
        for name, value in changes.items():
            choices = scenario.choices.get(name) if scenario is not None else None
            if name not in self.controls:
                problem = f"{self.session.name} has no option {name}"
            elif choices and value not in choices:
                problem = (f"option {name}: {value!r} is not one of "
                           f"{', '.join(map(repr, choices))}")
            if problem:
                break
        if problem is None:
            try:
                for name, value in changes.items():
                    self.controls[name].value = value
            except Exception as exc:       # a value the control refuses (a traitlet error)
                problem = f"option {name}: {value!r} is refused: {exc}"
        if problem is not None:
            self._reset_controls()
            self.session.message = f"not rebuilt: {problem}"
            self.session.notify("message")
            self._show(False)
            return False
        values = self.values()
        seed = values.pop("seed", None)
        changed = {k: v for k, v in values.items() if scenario and scenario.settings.get(k) != v}
        ok = self.session.rebuild(seed=seed, **changed)
        if not ok:
            self._reset_controls()
        self._show(ok)
        return ok

    def _reset_controls(self) -> None:
        scenario = self.session.scenario
        if scenario is None:
            return
        for name, control in self.controls.items():
            control.value = self.session.lab.seed if name == "seed" else scenario.settings[name]

    def _show(self, ok: bool) -> None:
        colour = "#1b5e20" if ok else "#b71c1c"
        self.message.value = f'<span style="color:{colour}">{escape(self.session.message)}</span>'

    def _changed(self, what: str) -> None:
        if what == "rebuilt":
            self._build()

    def text(self) -> str:
        scenario = self.session.scenario
        if scenario is None:
            return "What-if: a bare lab has no options."
        options = ", ".join(f"{k}={v}" for k, v in scenario.settings.items())
        return f"What-if: {scenario.name} seed {self.session.lab.seed}: {options}"
