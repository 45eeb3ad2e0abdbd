"""What the dashboard's parts share: the scenario, its lab, the timeline and the filters.

A :class:`Session` holds no widget. Each part (controls, ladder, topology, inspector,
tables, seam, what-if) reads it and asks it to move; the session tells every part
through :meth:`Session.observe` when the cursor, the filters or the whole scenario
changed. Errors a student can cause (an index out of range, an invalid option) become
:attr:`Session.message`, never an exception into the notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx

from ..net.lab import Lab
from ..scenarios import SCENARIOS, Scenario, ScenarioError, create
from ..state import role_of
from ..timeline import Timeline, TimelineError
from ..trace import Event

#: the kinds of event a filter can keep: "sent" (tx), "received" (rx), "seam", "state",
#: "drop" (drops and errors)
KINDS = {"sent": ("tx",), "received": ("rx",), "seam": ("seam",), "state": ("state",),
         "drop": ("drop", "error")}
DEFAULT_KINDS = frozenset({"sent", "seam", "state", "drop"})


class Session:
    """A scenario (or a bare lab) with a timeline over it, and the dashboard's filters."""

    def __init__(self, source: str | Scenario | Lab = "home-registration", seed: int = 0,
                 **options: Any) -> None:
        self._observers: list[Callable[[str], None]] = []
        self.message = ""
        self.kinds: frozenset[str] = DEFAULT_KINDS
        self.nodes_shown: frozenset[str] | None = None      # None: every node
        self.protocols_shown: frozenset[str] | None = None  # None: every protocol
        self.scenario: Scenario | None = None
        if isinstance(source, str):
            source = create(source, seed, **options)
        self._attach(source)

    # -- the lab ---------------------------------------------------------------------------

    def _attach(self, source: Scenario | Lab) -> None:
        if isinstance(source, Scenario):
            if source.lab.sim.executed:    # already run: its past was not recorded
                source = type(source)(seed=source.lab.seed, backend=source.backend,
                                      **source.settings)
                self.message = (f"{source.name} had already run; built again with the "
                                "same seed and options, so that every event can be shown")
            self.scenario, lab = source, source.lab
            until = source.duration
        elif isinstance(source, Lab):
            self.scenario, lab, until = None, source, None
        else:
            raise TypeError(f"a dashboard shows a scenario, a scenario's name or a Lab, "
                            f"not {type(source).__name__}")
        runner = None
        if lab.backend != "inproc":     # a real network: follow it in wall-clock slices
            from ..net.realtime import RealTimeRunner

            runner = RealTimeRunner(lab, getattr(source, "time_scale", 1.0))
        self.lab = lab
        self.timeline = Timeline(lab, until=until, runner=runner)
        self.reader = self.timeline.reader
        self._receivers: dict[int, list[str]] = {}
        self._last_tx: dict[tuple[str, str], int] = {}
        self._seam: list[int] = []
        self._indexed = 0
        self._filtered: list[int] = []
        self._filtered_key: tuple | None = None
        self.columns = self._column_order()

    def _column_order(self) -> list[str]:
        """The ladder's columns: the mobile node, the nodes on its path to the home agent,
        the home agent, then the others nearest first -- so most arrows are short."""
        graph = self.lab.graph
        nodes = list(self.lab.nodes)
        if not nodes:
            return []
        roles = {n: role_of(self.lab.nodes[n]) for n in nodes}
        start = next((n for n in nodes if roles[n] == "MN"), nodes[0])
        if start not in graph:
            return nodes
        order: list[str] = []
        home = next((n for n in nodes if roles[n] == "HA"), None)
        if home is not None and home in graph and nx.has_path(graph, start, home):
            order = [n for n in nx.shortest_path(graph, start, home) if n in self.lab.nodes]
        for n in nx.bfs_tree(graph, start):
            if n in self.lab.nodes and n not in order:
                order.append(n)
        return order + [n for n in nodes if n not in order]

    @property
    def name(self) -> str:
        return self.scenario.name if self.scenario is not None else "lab"

    def rebuild(self, seed: int | None = None, **options: Any) -> bool:
        """The same scenario with other options (a what-if); False and a message if
        they are refused, the current scenario kept."""
        if self.scenario is None:
            self.message = "a bare lab has no options to change: build a scenario instead"
            self.notify("message")
            return False
        settings = {**self.scenario.settings, **options}
        seed = self.lab.seed if seed is None else seed
        try:
            scenario = type(self.scenario)(seed=seed, backend=self.scenario.backend,
                                           **settings)
        except ScenarioError as exc:
            self.message = f"not rebuilt: {exc}"
            self.notify("message")
            return False
        except Exception as exc:          # the build itself failed: say so, keep the old
            self.message = f"not rebuilt: the scenario could not be built: {exc}"
            self.notify("message")
            return False
        self.timeline.close()
        self.scenario.close()
        self._attach(scenario)
        changed = {k: v for k, v in options.items()}
        self.message = f"rebuilt {scenario.name} with seed {seed}" + \
            (f", {', '.join(f'{k}={v}' for k, v in changed.items())}" if changed else "")
        self.notify("rebuilt")
        return True

    # -- moving ------------------------------------------------------------------------------

    def observe(self, callback: Callable[[str], None]) -> None:
        """``callback(what)`` after each change: "moved", "filters", "rebuilt", "message"."""
        self._observers.append(callback)

    def notify(self, what: str) -> None:
        for callback in list(self._observers):
            callback(what)

    def _move(self, action: Callable[[], Any], empty: str | None = None) -> Event | None:
        self.message = ""
        try:
            result = action()
        except TimelineError as exc:
            self.message = str(exc)
            result = None
        except Exception as exc:   # the lab or a breakpoint failed: say it, keep the cursor
            self.message = (f"stopped at t = {self.lab.now:g} s: {type(exc).__name__}: {exc}")
            result = None
        else:
            if result is None and empty:
                self.message = empty
        self.notify("moved")
        return result

    def step(self, count: int = 1) -> Event | None:
        def action():
            before = self.timeline.cursor
            event = self.timeline.step(count)
            if self.timeline.cursor == before:
                self.message = "the run is over: nothing more happens before " + \
                    f"t = {self.timeline.until_us / 1e6:g} s" if self.timeline.until_us \
                    else "the lab has nothing more to do"
            return event
        return self._move(action)

    def back(self, count: int = 1) -> Event | None:
        return self._move(lambda: self.timeline.back(count))

    def jump(self, index: int) -> Event | None:
        return self._move(lambda: self.timeline.jump(index))

    def select(self, index: int) -> Event | None:
        """Selecting an event makes it the current one: every panel shows that moment."""
        return self.jump(index)

    def next(self, what: str = "event", node: str | None = None) -> Event | None:
        where = f" of {node}" if node else ""
        return self._move(lambda: self.timeline.next(what, node),
                          f"no further {what} event{where} before the end of the run")

    def run_to(self, **breakpoint: Any) -> Event | None:
        return self._move(lambda: self.timeline.run_to(**breakpoint),
                          "the breakpoint was not reached before the end of the run")

    def reset(self) -> None:
        self._move(self.timeline.reset)

    def run_all(self) -> None:
        def action():
            self.timeline.run_all()
            return self.timeline.jump(self.timeline.recorded - 1) \
                if self.timeline.recorded else None
        self._move(action, "the lab did nothing")

    # -- filters -----------------------------------------------------------------------------

    def set_filters(self, kinds: Any = None, nodes: Any = ..., protocols: Any = ...) -> None:
        """Which events the ladder shows: kinds of :data:`KINDS` (None: unchanged), node
        names and protocol names of :data:`mip6lab.inspection.PROTOCOLS` (None: all;
        left out: unchanged). The protocol filter applies to frames only."""
        if kinds is not None:
            unknown = set(kinds) - set(KINDS)
            if unknown:
                self.message = f"no event kind {', '.join(sorted(unknown))}"
                self.notify("message")
                return
            self.kinds = frozenset(kinds)
        if nodes is not ...:
            self.nodes_shown = frozenset(nodes) if nodes is not None else None
        if protocols is not ...:
            self.protocols_shown = frozenset(protocols) if protocols is not None else None
        self.notify("filters")

    def shows(self, event: Event) -> bool:
        if self.nodes_shown is not None and event.node not in self.nodes_shown:
            return False
        if not any(event.kind in KINDS[k] for k in self.kinds):
            return False
        if self.protocols_shown is not None and event.packet is not None:
            return bool(self.reader.protocols(event) & self.protocols_shown)
        return True

    def filtered(self) -> list[int]:
        """The indices of the recorded events the filters keep."""
        key = (self.kinds, self.nodes_shown, self.protocols_shown)
        events = self.timeline.events
        if key != self._filtered_key:
            self._filtered_key, self._filtered, self._filter_done = key, [], 0
        for index in range(self._filter_done, self.timeline.recorded):
            if self.shows(events[index]):
                self._filtered.append(index)
        self._filter_done = self.timeline.recorded
        return self._filtered

    # -- indexes over the trace --------------------------------------------------------------

    def _index(self) -> None:
        events = self.timeline.events
        for index in range(self._indexed, self.timeline.recorded):
            event = events[index]
            if event.kind == "tx" and event.link:
                self._last_tx[(event.node, event.link)] = index
            elif event.kind == "rx" and event.peer and event.link:
                sent = self._last_tx.get((event.peer, event.link))
                if sent is not None:
                    self._receivers.setdefault(sent, []).append(event.node)
            elif event.kind == "seam":
                self._seam.append(index)
        self._indexed = self.timeline.recorded

    def receivers(self, index: int) -> list[str]:
        """The nodes that received the frame sent at event ``index`` (so far recorded)."""
        self._index()
        return self._receivers.get(index, [])

    def seam_events(self, up_to: int | None = None) -> list[Event]:
        """Every crossing of the mobility/security seam up to event ``up_to``."""
        self._index()
        last = self.timeline.cursor if up_to is None else up_to
        events = self.timeline.events
        out = []
        for index in self._seam:
            if index > last:
                break
            out.append(events[index])
        return out

    def phases(self) -> list[tuple[int, str]]:
        """(start in µs, label) of each registration of the mobile node, for counting
        seam crossings per handover."""
        mobile = getattr(self.scenario, "mobile", None) if self.scenario else None
        if mobile is None:
            return []
        out = []
        for number, handover in enumerate(mobile.handovers):
            label = "first registration" if number == 0 else f"handover {number}"
            out.append((handover.started_us, f"{label} → {handover.to}"))
        return out

    def verdict(self) -> str | None:
        """The scenario's verdict once the run is over (None before, or for a bare lab)."""
        if self.scenario is None or not self.timeline.exhausted:
            return None
        try:
            ok = self.scenario.ok()
        except Exception as exc:             # a verdict that cannot be judged says why
            return f"verdict: cannot be judged ({exc})"
        return "verdict: ok" if ok else "verdict: FAILED — the scenario did not reach " \
            "its goal; look for drops and errors in the ladder"

    @staticmethod
    def scenario_names() -> list[str]:
        return sorted(SCENARIOS)
