"""Wire formats on top of scapy's own layers (DESIGN rule 2).

Each module here starts from what scapy already declares and only adds or fixes what
the course needs, as scapy ``Packet`` classes bound with ``bind_layers`` so that
``show()``, ``hexdump()``, ``wrpcap()`` and dissection keep working:

``mip6lab.wire.ikev2``
    IKEv2 messages (RFC 7296 §3) over ``scapy.contrib.ikev2``: configuration attributes
    decoded into fields (incl. MIP6_HOME_PREFIX, RFC 5026 §8.2), notify data by type,
    traffic selectors with the Mobility Header type in the port fields, transforms that
    always carry their Key Length attribute, and a strict length validator.
``mip6lab.wire.mip6``
    Mobile IPv6 and DSMIP6 (RFC 6275, RFC 5555): options, BU/BA builders, MH checksum.
``mip6lab.wire.auth``
    RFC 4285 / RFC 4283: the MN-ID, authentication and replay protection options and
    the MN-HA authenticator of RFC 4285 §5.1.
"""

from mip6lab.wire import mip6 as mip6  # noqa: E402,F401 - registers the DSMIP6 options and BU F flag
from mip6lab.wire import auth as auth  # noqa: E402,F401 - registers the RFC 4285 options
