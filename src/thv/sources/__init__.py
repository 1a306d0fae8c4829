"""Watch sources: list+watch each kind into the Store and announce changed keys."""

from thv.sources.informer import EventType, Informer
from thv.sources.store import Store

__all__ = ["EventType", "Informer", "Store"]
