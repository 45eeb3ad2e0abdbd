"""Named scenarios: ``mip6lab scenario list`` shows them, ``scenario run`` runs one."""

from __future__ import annotations

from typing import Any

from .base import Scenario, ScenarioError
from .esp_manual import EspManual
from .mobility import MOBILITY_SCENARIOS
from .ping_nat import PingNat

SCENARIOS: dict[str, type[Scenario]] = {cls.name: cls for cls in (PingNat, EspManual,
                                                               *MOBILITY_SCENARIOS)}


def create(name: str, seed: int = 0, **options: Any) -> Scenario:
    """The scenario called ``name``, built with ``seed`` and ``options``."""
    try:
        cls = SCENARIOS[name]
    except KeyError:
        raise ScenarioError(f"no scenario {name!r}; try one of: "
                            f"{', '.join(sorted(SCENARIOS))}") from None
    return cls(seed=seed, **options)


__all__ = ["SCENARIOS", "Scenario", "ScenarioError", "create"]
