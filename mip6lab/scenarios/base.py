"""What a scenario is: a named topology with a script, options and a verdict.

A :class:`Scenario` builds its lab (topology, applications, timed actions) in
:meth:`Scenario.build`, runs for :attr:`Scenario.duration` simulated seconds, and then
judges its own outcome in :meth:`Scenario.result` and :meth:`Scenario.ok`. The CLI and
the notebooks drive the same object: a notebook may step its ``lab`` instead of running
it to the end.

Options are declared with their defaults in :attr:`Scenario.options`; a value given as
text (``--set loss=0.2``) is converted to the default's type.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..net.lab import Lab


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

    def __init__(self, seed: int = 0, **options: Any) -> None:
        unknown = set(options) - set(self.options)
        if unknown:
            raise ScenarioError(f"{self.name} has no option {', '.join(sorted(unknown))}; "
                                f"it knows {', '.join(sorted(self.options)) or 'none'}")
        self.settings = {key: _convert(key, options.get(key, default), default)
                         for key, default in self.options.items()}
        try:
            self.lab = Lab(seed=seed, build=self.build)
        except ScenarioError:
            raise
        except ValueError as exc:  # an option value the topology refuses (loss=2 ...)
            raise ScenarioError(f"{self.name}: bad option value: {exc}") from exc

    def build(self, lab: Lab) -> None:
        raise NotImplementedError

    def run(self) -> dict[str, Any]:
        """Run to the end and return the JSON-ready report."""
        self.lab.run(until=self.duration)
        return self.report()

    def result(self) -> dict[str, Any]:
        raise NotImplementedError

    def ok(self) -> bool:
        raise NotImplementedError

    def security_associations(self) -> list:
        """Every SA of every node that has IPsec (for ``--keys``)."""
        return [sa for node in self.lab.nodes.values() if node.ipsec is not None
                for sa in node.ipsec.sad]

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
        return {
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
