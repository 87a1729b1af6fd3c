"""The shell: the unit of work, change notification, the scheduler of run loops, the job
index, limits, config resolution, the run loop and the operation handlers, wired by the
:class:`~ops.engine.runtime.Runtime` facade."""

__all__ = []  # type: list[str]
