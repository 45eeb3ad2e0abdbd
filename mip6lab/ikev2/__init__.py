"""IKEv2 (RFC 7296): the sans-I/O IKE SA engine, its drivers, CP pools, selectors.

:class:`~mip6lab.ikev2.sa.IkeSa` is the engine; :class:`~mip6lab.ikev2.daemon.IkeDaemon`
runs it on a node of the in-process network and reaches the IPsec databases only
through the key engine.
"""

from .config import IkeConfig, identity
from .daemon import IkeDaemon
from .pools import AddressPool
from .sa import IkeSa
from .ts import TrafficSelector

__all__ = ["IkeConfig", "identity", "IkeDaemon", "AddressPool", "IkeSa", "TrafficSelector"]
