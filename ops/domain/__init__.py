"""The pure core of the operations: contracts and the operation registry, typed events with
one ``apply``, commands, agent and job transitions, model references. No clock, no I/O,
no asyncio: times, ids and model replies are passed in.

Importing the package declares every operation (:mod:`ops.domain.operations`), so
:data:`ops.domain.contracts.REGISTRY` is complete whoever imports it first.
"""

from . import operations as operations  # noqa: F401  (declares every operation)
from . import session_ops as session_ops  # noqa: F401  (declares the session operations)
from . import bundle_ops as bundle_ops  # noqa: F401  (declares agent:export and agent:import)

__all__ = ["operations", "session_ops", "bundle_ops"]
