"""What a scenario is: a named topology with a script, options and a verdict.

A :class:`Scenario` builds its lab (topology, applications, timed actions) in
:meth:`Scenario.build`, runs for :attr:`Scenario.duration` simulated seconds, and then
judges its own outcome in :meth:`Scenario.result` and :meth:`Scenario.ok`. The CLI and
the notebooks drive the same object: a notebook may step its ``lab`` instead of running
it to the end.

Options are declared with their defaults in :attr:`Scenario.options`; a value given as
text (``--set loss=0.2``) is converted to the default's type.

Backends: every scenario runs on the in-process network (``backend="inproc"``, the
default: simulated clock, no root). A scenario that lists ``"netns"`` in
:attr:`Scenario.backends` can also run on real Linux network namespaces (root): its
``build`` then makes them, :meth:`Scenario.run` drives the lab against the wall clock
(``time_scale`` simulated seconds per real one), calls :meth:`Scenario.finish` and then
:meth:`Scenario.close`, which releases everything outside the process, whatever happens.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..net.lab import Lab

#: simulated seconds per real second on a real-time backend (BU lifetimes, keepalives
#: and retransmissions are timers of the simulated clock, so they scale with it)
DEFAULT_TIME_SCALE = 4.0


class ScenarioError(ValueError):
    """An unknown scenario or option, or an option value of the wrong type."""


def _convert(name: str, text: Any, default: Any) -> Any:
    if not isinstance(text, str) or isinstance(default, str):
        return text
    try:
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        return type(default)(text)
    except ValueError:
        raise ScenarioError(f"option {name}: {text!r} is not a {type(default).__name__}")


class Scenario:
    """Base class of the named scenarios."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    duration: ClassVar[float] = 10.0
    options: ClassVar[dict[str, Any]] = {}
    #: the values an option may take, where they are few (a what-if control offers
    #: these); an option not listed takes any value of its default's type
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    #: options that must be above zero (an interval of 0 would schedule forever at t=0)
    positive: ClassVar[tuple[str, ...]] = ()
    #: where the scenario can run: "inproc" always; "netns" when it can build on namespaces
    backends: ClassVar[tuple[str, ...]] = ("inproc",)
    #: frames the real backend's capture recorded (``capture``), set by :meth:`finish`
    captured: int | None = None

    def __init__(self, seed: int = 0, *, backend: str = "inproc",
                 time_scale: float = DEFAULT_TIME_SCALE, capture: str | None = None,
                 trace_level: str = "full", **options: Any) -> None:
        if backend not in self.backends:
            raise ScenarioError(f"{self.name} runs on the {' or '.join(self.backends)} "
                                f"backend, not {backend!r}")
        if not isinstance(time_scale, (int, float)) or not time_scale > 0:
            raise ScenarioError(f"time_scale must be a positive number, not {time_scale!r}")
        #: "inproc" or "netns"; ``time_scale`` and ``capture`` (a pcapng path the real
        #: backend records into while it runs) matter on a real-time backend only
        self.backend, self.time_scale, self.capture = backend, float(time_scale), capture
        unknown = set(options) - set(self.options)
        if unknown:
            raise ScenarioError(f"{self.name} has no option {', '.join(sorted(unknown))}; "
                                f"it knows {', '.join(sorted(self.options)) or 'none'}")
        self.settings = {key: _convert(key, options.get(key, default), default)
                         for key, default in self.options.items()}
        for key, allowed in self.choices.items():
            if key in self.settings and self.settings[key] not in allowed:
                raise ScenarioError(f"option {key}: {self.settings[key]!r} is not one of "
                                    f"{', '.join(map(repr, allowed))}")
        for key in self.positive:
            if key in self.settings and not self.settings[key] > 0:
                raise ScenarioError(f"option {key}: must be above 0, not {self.settings[key]!r}")
        try:
            # trace_level: what the lab's trace keeps (mip6lab.trace; "full" for courses)
            self.lab = Lab(seed=seed, build=self.build, trace_level=trace_level)
        except ScenarioError:
            raise
        except ValueError as exc:  # an option value the topology refuses (loss=2 ...)
            raise ScenarioError(f"{self.name}: bad option value: {exc}") from exc

    def build(self, lab: Lab) -> None:
        raise NotImplementedError

    def run(self) -> dict[str, Any]:
        """Run to the end and return the JSON-ready report.

        On a real-time backend: against the wall clock, then :meth:`finish`, the report,
        and :meth:`close` in every case (an exception or Ctrl-C included)."""
        if self.backend == "inproc":
            self.lab.run(until=self.duration)
            return self.report()
        from ..net.realtime import RealTimeRunner

        try:
            self.runner = RealTimeRunner(self.lab, self.time_scale)
            self.runner.run(until=self.duration)
            self.finish()
            return self.report()
        finally:
            self.close()

    def finish(self) -> None:
        """After a real-time run, before the report: stop recording, read what the
        real network knows (a subclass's business; nothing here)."""

    def close(self) -> None:
        """Release what the scenario holds outside this process (sockets, namespaces,
        processes). Idempotent."""
        self.lab.close()

    def __enter__(self) -> Scenario:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def result(self) -> dict[str, Any]:
        raise NotImplementedError

    def ok(self) -> bool:
        raise NotImplementedError

    def security_associations(self) -> list:
        """Every SA of every node that has IPsec (for ``--keys``): those in the SADs now
        and those of earlier in the run -- deleted, or with the endpoints they had before
        a MIGRATE -- so that a capture of the whole run decrypts."""
        return [sa for node in self.lab.nodes.values() if node.ipsec is not None
                for sa in [*node.ipsec.engine.history, *node.ipsec.sad]]

    def write_keys(self, directory: str) -> dict[str, str]:
        """Write Wireshark's key tables for this run into ``directory``."""
        from ..ikev2.wireshark import write_ikev2_decryption_table
        from ..ipsec.wireshark import write_esp_sa

        ike_sas = [sa for node in self.lab.nodes.values() if node.ike is not None
                   for sa in node.ike.sas.values()]
        return {"esp_sa": write_esp_sa(directory, self.security_associations()),
                "ikev2_decryption_table": write_ikev2_decryption_table(directory, ike_sas)}

    def report(self) -> dict[str, Any]:
        """The contract every scenario's ``--json`` output keeps."""
        events = self.lab.events
        report = {
            "scenario": self.name,
            "seed": self.lab.seed,
            "backend": self.lab.backend,
            "options": self.settings,
            "time": self.lab.now,
            "events": len(events),
            "packets": len(events.frames()),
            "drops": len(events.filter(kind="drop")),
            "errors": len(events.filter(kind="error")),
            "result": self.result(),
            "ok": self.ok(),
        }
        runner = getattr(self, "runner", None)
        if runner is not None:
            report["realtime"] = {"time_scale": runner.time_scale,
                                  "max_lateness": round(runner.max_lateness, 6),
                                  "frames_read": runner.frames}
        return report
