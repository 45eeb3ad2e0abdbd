"""The lab dashboard: ipywidgets over a running lab, with time travel.

No protocol logic here: the parts read a :class:`~mip6lab.timeline.Timeline` (the
trace and the tables recorded at every event) and a
:class:`~mip6lab.inspection.TraceReader` (layers, bytes, decryption).

    from mip6lab.widgets import Dashboard
    dash = Dashboard("home-registration")
    dash
"""

from .controls import Controls
from .dashboard import Dashboard
from .inspector import Inspector
from .ladder import Ladder
from .panels import SeamPanel, StatePanels
from .session import Session
from .svgview import SvgView
from .topology import Topology
from .whatif import WhatIf

__all__ = ["Controls", "Dashboard", "Inspector", "Ladder", "SeamPanel", "Session",
           "StatePanels", "SvgView", "Topology", "WhatIf"]
