"""A checkpoint as a lattice root, and back.

The root of a checkpoint commit is a map::

    {
      "v": 4, "id": "<checkpoint id>", "ts": "<ISO 8601>",
      "channel_values":   {<channel>: <value>},          # see ops.langgraph.values
      "channel_versions": {<channel>: <version>},
      "versions_seen":    {<node>: {<channel>: <version>}},
      "updated_channels": [<channel>...] | null,
      ...                                                 # any other key of the checkpoint, as is
      "metadata":         {"source", "step", "parents", "run_id"?, <custom>...},
      "parent_checkpoint_id": "<id>",                     # absent for a first checkpoint
      "pending_writes":   [{"task_id", "channel", "value", "task_path", "idx"}...]   # absent when none
    }

so ``.../channel_values/messages/3/content`` is the text of the fourth message.
A channel whose version did not move since the parent checkpoint keeps the
parent's stored value (the same digest: nothing is encoded again).
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP, writes_sort_key

from lattice.codec import Link
from lattice.nodes import NODE, VEC, Tx

from .values import ListMemo, ValueCodec, entries, items, store_list

__all__ = ["SPECIAL_KEYS", "Records"]

#: Root keys that are not keys of the checkpoint itself.
SPECIAL_KEYS = frozenset({"metadata", "parent_checkpoint_id", "pending_writes"})


class Records:
    """Builds checkpoint roots and reads them back.

    Args:
        codec: encodes channel values, metadata and writes.
        memo: remembers stored list channels, so the next checkpoint appends to them.
    """

    def __init__(self, codec: ValueCodec, memo: ListMemo) -> None:
        self.codec, self.memo = codec, memo

    # -- writing -------------------------------------------------------------
    def build(self, tx: Tx, checkpoint: dict, metadata: dict, new_versions: dict, parent_root: dict | None,
              parent_id: str | None, writes: Any = None) -> tuple[Link, list]:
        """Buffer the root of a checkpoint; return ``(root link, [(vector link, its items)...])``.

        Args:
            parent_root: the stored root of the parent checkpoint (its values are
                reused for channels whose version did not move), or None.
            writes: stored pending writes to keep (parked before the checkpoint arrived).
        """
        enc = self.codec.enc
        c = dict(checkpoint)
        values = c.pop("channel_values", None) or {}
        versions = c.get("channel_versions") or {}
        p_values: dict = {}
        p_versions: dict = {}
        if parent_root is not None:
            p_values = entries(tx, parent_root.get("channel_values", {}))
            p_versions = self.codec.dec(tx, parent_root.get("channel_versions", {})) or {}
        stored: dict[str, Any] = {}
        remember: list = []
        for k, ver in versions.items():
            if k not in new_versions and k in p_values and p_versions.get(k) == ver:
                stored[k] = p_values[k]
            elif k in values:
                v = values[k]
                if type(v) is list:
                    s, held = store_list(self.codec, self.memo, tx, v, p_values.get(k))
                    if held is not None and type(s) is Link:
                        remember.append((s, held))
                    stored[k] = s
                else:
                    stored[k] = tx.put_value(enc(v))
        root: dict[str, Any] = {k: enc(v) for k, v in c.items() if k not in SPECIAL_KEYS}
        root["channel_values"] = stored
        root["metadata"] = enc(metadata)
        if parent_id is not None:
            root["parent_checkpoint_id"] = parent_id
        if writes:
            root["pending_writes"] = writes
        return tx.put_root(root), remember

    def merge_writes(self, tx: Tx, old: Any, writes: Any, task_id: str, task_path: str) -> list | None:
        """Stored pending writes with ``writes`` of task ``task_id`` added, or None if unchanged.

        As LangGraph's savers do: a regular write is keyed by ``(task_id, index)``
        and kept if already stored (a retried task writes the same); a special
        write (error, interrupt, resume...) replaces the stored one.
        """
        out = [entries(tx, e) for e in items(tx, old)] if old is not None else []
        where = {(e["task_id"], e["idx"]): i for i, e in enumerate(out)}
        changed = False
        for i, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, i)
            key = (task_id, idx)
            if idx >= 0 and key in where:
                continue
            e = {"task_id": task_id, "channel": channel, "value": tx.put_value(self.codec.enc(value)),
                 "task_path": task_path, "idx": idx}
            if key in where:
                out[where[key]] = e
            else:
                where[key] = len(out)
                out.append(e)
            changed = True
        if not changed:
            return None
        out.sort(key=lambda e: writes_sort_key(e["task_path"], e["task_id"], e["idx"]))
        return out

    def join_writes(self, tx: Tx, kept: Any, extra: Any) -> Any:
        """Stored pending writes ``kept`` with those of ``extra`` (another stored list, e.g. parked
        writes) added where their ``(task_id, idx)`` is not in ``kept``; ``kept`` when nothing is added."""
        if extra is None:
            return kept
        out = [entries(tx, e) for e in items(tx, kept)] if kept is not None else []
        where = {(e["task_id"], e["idx"]) for e in out}
        added = [e for e in (entries(tx, x) for x in items(tx, extra)) if (e["task_id"], e["idx"]) not in where]
        if not added:
            return kept
        out += added
        out.sort(key=lambda e: writes_sort_key(e["task_path"], e["task_id"], e["idx"]))
        return out

    # -- reading -------------------------------------------------------------
    def root(self, tx: Tx, link: Link) -> dict:
        """The stored root map of a checkpoint commit."""
        return entries(tx, link)

    def metadata(self, tx: Tx, root: dict) -> dict:
        """The checkpoint's metadata."""
        return self.codec.dec(tx, root.get("metadata", {})) or {}

    def checkpoint(self, tx: Tx, root: dict) -> dict:
        """The checkpoint (with its channel values)."""
        dec = self.codec.dec
        out = {k: dec(tx, v) for k, v in root.items() if k not in SPECIAL_KEYS and k != "channel_values"}
        values = {}
        for k, v in entries(tx, root.get("channel_values", {})).items():
            if type(v) is Link and v.code == VEC:
                values[k] = x = self.codec.dec_vector(tx, v)
                self.memo.put(bytes(v.data), list(x))
            elif type(v) is Link and v.code == NODE and type(raw := tx.load(v)) is list:
                values[k] = x = [dec(tx, i) for i in raw]
                self.memo.put(bytes(v.data), (list(x), list(raw)))
            else:
                values[k] = dec(tx, v)
        out["channel_values"] = values
        return out

    def pending_writes(self, tx: Tx, root: dict) -> list[tuple[str, str, Any]]:
        """``[(task_id, channel, value)...]`` in ``writes_sort_key`` order."""
        w = root.get("pending_writes")
        if w is None:
            return []
        out = []
        for e in items(tx, w):
            e = entries(tx, e)
            out.append((e["task_id"], e["channel"], self.codec.dec(tx, e["value"])))
        return out
