"""Ref naming: where each entity's commit chain lives in the store.

Every ref is in its caller's namespace::

    g/<caller>/<agentId>   an agent record (see ops.domain.agent)
    j/<caller>/<jobId>     a job record (jobs that changed state), or, for a waiting task,
                           trigger or chat job, the agent commit that accepted it (folded
                           jobs; see ops.domain.jobs)
    w/<caller>             the caller's workspace (a map)

>>> agent_ref("alice", "Bob")
'g/alice/Bob'
>>> split_ref("j/alice/0x01")
('j', 'alice', '0x01')
"""

from __future__ import annotations

__all__ = ["agent_ref", "job_ref", "ws_ref", "agent_prefix", "split_ref"]


def agent_ref(caller: str, agent_id: str) -> str:
    """The ref of ``caller``'s agent ``agent_id``."""
    return f"g/{caller}/{agent_id}"


def job_ref(caller: str, job_id: str) -> str:
    """The ref of ``caller``'s job ``job_id`` (canonical ``0x`` + 32 lowercase hex)."""
    return f"j/{caller}/{job_id}"


def ws_ref(caller: str) -> str:
    """The ref of ``caller``'s workspace."""
    return f"w/{caller}"


def agent_prefix(caller: str) -> str:
    """The prefix of every agent ref of ``caller`` (for ``Store.refs``)."""
    return f"g/{caller}/"


def split_ref(name: str) -> tuple[str, str, str]:
    """``(namespace, caller, id)`` of a ref (``id`` is ``""`` for a workspace)."""
    ns, caller, ident = (name.split("/", 2) + ["", ""])[:3]
    return ns, caller, ident
