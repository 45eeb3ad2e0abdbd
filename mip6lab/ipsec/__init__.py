"""IPsec: SPD, SAD and PAD (RFC 4301), ESP (RFC 4303, RFC 3948), and the key engine.

The key engine (:mod:`mip6lab.ipsec.keyengine`) is the seam: the mobility module and
IKE reach the databases only through its PF_KEY-like messages.
"""

from .esp import EspError, decapsulate, encapsulate
from .keyengine import KeyEngine, KeyMessage, KeySocket, MigrateRequest
from .pad import PeerAuthorizationDatabase, PeerAuthorizationEntry
from .sad import Lifetime, SecurityAssociation, SecurityAssociationDatabase
from .spd import (BYPASS, DISCARD, PROTECT, IPsecTemplate, SecurityPolicy,
                  SecurityPolicyDatabase, Selectors)
from .stack import IPsecStack

__all__ = ["EspError", "decapsulate", "encapsulate", "KeyEngine", "KeyMessage",
           "KeySocket", "MigrateRequest", "PeerAuthorizationDatabase",
           "PeerAuthorizationEntry", "Lifetime", "SecurityAssociation",
           "SecurityAssociationDatabase", "BYPASS", "DISCARD", "PROTECT", "IPsecTemplate",
           "SecurityPolicy", "SecurityPolicyDatabase", "Selectors", "IPsecStack"]
