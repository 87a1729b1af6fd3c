"""The store: values, canonical codec, blake3 digests, Merkle collections, the store
port and its backends, commits, paths, history and fsck. Import the modules
(:mod:`lattice.nodes`, :mod:`lattice.store`, ...); the package itself exports nothing.
:mod:`lattice.testing` is test support (it imports pytest)."""

__all__: list[str] = []
