"""The LMDB log's codecs (:mod:`lattice.lmdb_layout`): raw, zstd with dictionary v1 (codec 1, written
before format 3), zstd with dictionary v2 (codec 2, written now). A store holding objects of every
codec reads, counts, collects and compacts them all."""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest
import zstandard

from lattice import lmdb_layout
from lattice.codec import encode
from lattice.digest import digest
from lattice.errors import CorruptObject
from lattice.gc import collect
from lattice.lmdb import LmdbStore
from lattice.lmdb_layout import CODEC, MAX_DBS, RAW, ZSTD, ZSTD_V2, Layout, object_size, pack, seq_key, unpack
from lattice.store import RefUpdate
from tests.lattice.helpers import truncate_logged

#: blake3 of each dictionary: stores compressed with it need exactly these bytes back
DICTS = {
    "v1.zdict": "3ba5ea4cf488e629940831254a9f0f69105f7904df46ec344f0897ece4275307",
    "v2.zdict": "1bf603e38d08175423f45bbbd1bd70c80180e58a4ed15b5d7156d7b3d2a44abe",
}

#: a record shaped like the agent records the dictionaries were trained on
RECORD = encode({"created": 1_796_677_847_320, "error": None, "inbox": [], "pending": {}, "status": "SLEEPING",
                 "state": {"config": {"model": {"provider": "echo"}}}, "tasks": {}, "triggers": [],
                 "updated": 1_796_677_847_421})


@pytest.mark.parametrize("name", sorted(DICTS))
def test_the_dictionaries_are_pinned(name):
    """A dictionary is part of the stored format: never rebuilt in place."""
    data = (Path(lmdb_layout.__file__).parent / "dictionaries" / name).read_bytes()
    assert digest(data).hex() == DICTS[name], f"{name} changed: stores written with it would not read back"


def packed_v1(data: bytes) -> bytes:
    """``data`` as the version before format 3 stored it: codec 1, dictionary v1."""
    d = zstandard.ZstdCompressionDict((Path(lmdb_layout.__file__).parent / "dictionaries" / "v1.zdict").read_bytes())
    params = zstandard.ZstdCompressionParameters.from_level(
        3, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_checksum=False, write_dict_id=False,
        write_content_size=True)
    return bytes((ZSTD,)) + zstandard.ZstdCompressor(dict_data=d, compression_params=params).compress(data)


def test_pack_writes_codec_2_and_unpack_reads_every_codec():
    assert CODEC == ZSTD_V2
    v2, v1, raw = pack(RECORD), packed_v1(RECORD), bytes((RAW,)) + RECORD
    assert v2[0] == ZSTD_V2 and len(v2) < len(RECORD) // 2
    assert v1 != v2  # another dictionary: another frame
    for value in (v1, v2, raw):
        assert unpack(value) == RECORD and object_size(value) == len(RECORD)
    with pytest.raises(ValueError, match="unknown codec byte 3"):
        unpack(bytes((3,)) + v2[1:])
    with pytest.raises(ValueError, match="damaged zstd frame"):
        unpack(v1[:-3])
    with pytest.raises(ValueError, match="damaged zstd frame"):  # a codec 2 frame is not a codec 1 one
        unpack(bytes((ZSTD,)) + v2[1:])


def put_as_codec_1(path, data: bytes) -> bytes:
    """Store ``data`` in the closed store at ``path`` as the version before format 3 did (codec 1)."""
    d = digest(data)
    env = lmdb.open(str(path), max_dbs=MAX_DBS)
    try:
        layout = Layout(env, False)
        with env.begin(write=True) as txn:
            layout.begin(txn)
            seq = layout.next_seq
            layout.put(txn, d, data)
            txn.put(seq_key(seq), packed_v1(data), db=layout.log)
    finally:
        env.close()
    return d


def log_codecs(path) -> list[int]:
    env = lmdb.open(str(path), max_dbs=MAX_DBS, readonly=True)
    try:
        with env.begin(db=env.open_db(b"log", create=False)) as txn:
            return [bytes(v)[0] for _, v in txn.cursor()]
    finally:
        env.close()


def test_a_store_with_codec_1_objects_reads_collects_and_compacts_them(tmp_path):
    path = tmp_path / "db"
    old_kept = RECORD.replace(b"SLEEPING", b"RUNNING!")
    old_dropped = RECORD.replace(b"SLEEPING", b"SUSPENDD")
    with LmdbStore(path, durable=False):
        pass
    kept, dropped = put_as_codec_1(path, old_kept), put_as_codec_1(path, old_dropped)
    new = RECORD.replace(b"SLEEPING", b"FINISHED")
    with LmdbStore(path, durable=False) as s:
        assert s.commit({digest(new): new}, [RefUpdate("r/old", None, kept), RefUpdate("r/new", None, digest(new))])
    assert log_codecs(path) == [ZSTD, ZSTD, ZSTD_V2]
    with LmdbStore(path, durable=False) as s:
        assert s.get(kept) == old_kept and s.get(dropped) == old_dropped and s.get(digest(new)) == new
        assert sorted(n for _, n in s.objects()) == [len(RECORD)] * 3  # sizes uncompressed, either codec
        report = collect(s)
        assert report.freed == 1 and report.freed_bytes == len(RECORD)  # the unreachable codec 1 object
        s.compact()
        assert s.get(kept) == old_kept and s.get(digest(new)) == new and not s.has(dropped)
    assert sorted(log_codecs(path)) == [ZSTD, ZSTD_V2]  # compaction copies values as they are


def test_a_damaged_codec_1_value_is_corrupt(tmp_path):
    path = tmp_path / "db"
    with LmdbStore(path, durable=False):
        pass
    d = put_as_codec_1(path, RECORD)
    assert truncate_logged(path)[0] == ZSTD
    with LmdbStore(path, durable=False) as s:
        assert s.has(d)
        with pytest.raises(CorruptObject):
            s.get(d)
