"""``mip6lab chaos``: the mobility scenarios under a bad radio, as a completion table.

Each row is a scenario in one security mode (``ipsec``: IKEv2 and ESP, RFC 4877;
``auth-option``: RFC 4285, for the scenarios that have no IPv4 care-of address); each
column an impairment of the MN's access links -- loss of 0-40 % of the frames, every
frame duplicated with a probability, frames held back so that later ones overtake them
(:class:`~mip6lab.net.link.LinkConditions`). A cell is run over ``seeds`` seeds (the
lab's random source draws each frame's fate, so a seed replays exactly) and says how
many runs completed (every registration and handover acknowledged, RFC 6275 §11.7.3:
the scenario's own :meth:`~mip6lab.scenarios.base.Scenario.ok`) and how many data
requests were lost in all of them.

What the table shows, and why a 5 s visit is too short for 30 % loss, is in
docs/reliability.md. Runs are independent processes' work: ``jobs`` spreads them over
the machine's cores; the result does not depend on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from .scenarios import SCENARIOS
from .scenarios.base import ScenarioError

DEFAULT_SCENARIOS = ("home-registration", "handover", "return-home", "dsmip6-nat")
DEFAULT_LOSSES = (0.0, 0.1, 0.2, 0.3, 0.4)
DEFAULT_DUPLICATE = 0.2
DEFAULT_REORDER = 0.2
SECURITY_MODES = ("ipsec", "auth-option")
#: the data stream's interval in chaos runs (the scenarios' own is 0.1 s): a request every
#: half second measures the loss as well and halves the run time; ``options`` overrides
DEFAULT_OPTIONS = {"data_interval": 0.5}


@dataclass(frozen=True)
class Impairment:
    """One column: what the access links do to frames."""

    label: str
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0

    def options(self) -> dict[str, float]:
        return {"loss": self.loss, "duplicate": self.duplicate, "reorder": self.reorder}


@dataclass(frozen=True)
class Row:
    """One row: a scenario in a security mode."""

    scenario: str
    security: str

    @property
    def label(self) -> str:
        return f"{self.scenario} ({self.security})"


@dataclass
class Cell:
    completed: int = 0
    runs: int = 0
    data_sent: int = 0
    data_lost: int = 0
    failed_seeds: list[int] = field(default_factory=list)

    def text(self) -> str:
        return f"{self.completed}/{self.runs} ({self.data_lost} lost)"


@dataclass
class ChaosTable:
    rows: list[Row]
    columns: list[Impairment]
    cells: dict[tuple[Row, Impairment], Cell]
    seeds: int
    visit: float

    def cell(self, scenario: str, security: str, label: str) -> Cell:
        column = next(c for c in self.columns if c.label == label)
        return self.cells[(Row(scenario, security), column)]

    def render(self) -> str:
        """The table as text: completed/seeds per cell, data requests lost beside."""
        head = ["scenario (security)"] + [c.label for c in self.columns]
        body = [[row.label] + [self.cells[(row, c)].text() for c in self.columns]
                for row in self.rows]
        widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
        lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip()
                 for line in [head, *body]]
        lines.insert(1, "  ".join("-" * width for width in widths))
        lines.append(f"\n{self.seeds} seeds per cell, {self.visit:g} s visits; a run "
                     "completes when every registration and handover is acknowledged; "
                     "'lost': data requests never answered, summed over the seeds")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"seeds": self.seeds, "visit": self.visit,
                "columns": [c.label for c in self.columns],
                "rows": [{"scenario": r.scenario, "security": r.security,
                          "cells": {c.label: {"completed": self.cells[(r, c)].completed,
                                              "runs": self.cells[(r, c)].runs,
                                              "data_sent": self.cells[(r, c)].data_sent,
                                              "data_lost": self.cells[(r, c)].data_lost,
                                              "failed_seeds": self.cells[(r, c)].failed_seeds}
                                    for c in self.columns}}
                         for r in self.rows]}


def columns_for(losses: Iterable[float], duplicate: float | None,
                reorder: float | None) -> list[Impairment]:
    columns = [Impairment(f"loss {round(loss * 100):g}%", loss=loss) for loss in losses]
    if duplicate:
        columns.append(Impairment(f"dup {round(duplicate * 100):g}%", duplicate=duplicate))
    if reorder:
        columns.append(Impairment(f"reorder {round(reorder * 100):g}%", reorder=reorder))
    return columns


def rows_for(scenarios: Sequence[str], securities: Sequence[str]) -> list[Row]:
    """Each scenario in each mode it accepts (RFC 4285 has no DSMIP6: the scenario's
    own refusal decides)."""
    rows = []
    for name in scenarios:
        if name not in SCENARIOS:
            raise ScenarioError(f"unknown scenario {name!r}")
        for security in securities:
            if security not in SECURITY_MODES:
                raise ScenarioError(f"security is one of {', '.join(SECURITY_MODES)}")
            try:
                SCENARIOS[name](0, security=security)
            except ScenarioError:
                continue
            rows.append(Row(name, security))
    return rows


def run_one(job: tuple[str, str, dict, int, float, dict]) -> tuple[bool, int, int]:
    """One run: (completed, data requests sent, data requests lost)."""
    name, security, impairment, seed, visit, extra = job
    scenario = SCENARIOS[name](seed, security=security, visit=visit, **impairment, **extra)
    report = scenario.run()
    data = report["result"]["data"]
    return bool(report["ok"]), data["sent"], data["lost"]


def run_chaos(scenarios: Sequence[str] = DEFAULT_SCENARIOS,
              securities: Sequence[str] = SECURITY_MODES,
              losses: Iterable[float] = DEFAULT_LOSSES,
              duplicate: float | None = DEFAULT_DUPLICATE,
              reorder: float | None = DEFAULT_REORDER, seeds: int = 20,
              visit: float = 5.0, jobs: int | None = None,
              options: dict | None = None) -> ChaosTable:
    """Run every (row, column, seed) and gather the table. ``options``: more scenario
    options for every run (over :data:`DEFAULT_OPTIONS`)."""
    if seeds < 1:
        raise ScenarioError("seeds must be at least 1")
    rows = rows_for(scenarios, securities)
    columns = columns_for(losses, duplicate, reorder)
    extra = {**DEFAULT_OPTIONS, **(options or {})}
    work = [(row, column, seed) for row in rows for column in columns
            for seed in range(seeds)]
    jobs_list = [(row.scenario, row.security, column.options(), seed, visit, extra)
                 for row, column, seed in work]
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            outcomes = list(pool.map(run_one, jobs_list, chunksize=4))
    else:
        outcomes = [run_one(job) for job in jobs_list]
    cells = {(row, column): Cell() for row in rows for column in columns}
    for (row, column, seed), (ok, sent, lost) in zip(work, outcomes):
        cell = cells[(row, column)]
        cell.runs += 1
        cell.completed += ok
        cell.data_sent += sent
        cell.data_lost += lost
        if not ok:
            cell.failed_seeds.append(seed)
    return ChaosTable(rows, columns, cells, seeds, visit)
