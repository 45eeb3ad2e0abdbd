"""mip6lab: a teachable Mobile IPv6 / DSMIP6 stack secured with IKEv2 and IPsec.

The foundation is the in-process network (:mod:`mip6lab.net`), stepped one event at a
time by a :class:`~mip6lab.net.lab.Lab`, and one event trace (:mod:`mip6lab.trace`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mip6lab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.1.0"
