"""Mobile IPv6 (RFC 6275) and DSMIP6 (RFC 5555) rules, sans-I/O.

:mod:`.binding_cache` is the home agent's Binding Cache and its processing of a Binding
Update (§9, §10.3, RFC 4877 §4.2); :mod:`.binding_update_list` is the mobile node's side
(§11.1, §11.7, §11.8); :mod:`.constants` holds what both share (status codes, timers,
modulo-2**16 sequence numbers). No packets, sockets or clock: times are integer
microseconds passed in.
"""

from .binding_cache import (BindingCache, BindingCacheEntry, BindingUpdateRequest,
                            HomeAgentConfiguration)
from .binding_update_list import BindingUpdateList, BindingUpdateListEntry
from .constants import BindingAckStatus, next_sequence_number, sequence_number_greater

__all__ = ["BindingAckStatus", "BindingCache", "BindingCacheEntry", "BindingUpdateList",
           "BindingUpdateListEntry", "BindingUpdateRequest", "HomeAgentConfiguration",
           "next_sequence_number", "sequence_number_greater"]
