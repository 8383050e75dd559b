"""Feeding data to a fit (floor 3): minibatches, streaming from disk, devices and hosts.

Three ways to fit on data too large for a full-data gradient at every step:

* **In-memory minibatches** (``jv.Minibatch(X, y, batch_size=B)``): the full arrays live on
  the device; each step draws the row indices inside the compiled loop from the step's PRNG key
  and gathers the rows (``CompiledModel.batching``), so no host work happens per step.
* **Streaming from disk** (``jv.Minibatch(np.load(path, mmap_mode="r"), batch_size=B)`` or
  ``jv.data.NpyDataset(*paths)``): a background thread reads the rows of the next chunk of
  steps -- contiguous blocks of the files in an order shuffled every epoch, then the rows shuffled
  within the chunk -- stacks them into ``[steps, B, ...]`` arrays and puts them on the device while
  the compiled loop works on the current chunk, which indexes step ``i``'s batch in the block.
  Pages read from a memory-map are released after every read, so the process's memory stays at
  a few chunks whatever the size of the files.  The order is reproducible from ``random_seed``.
* **Many devices / hosts** (``jv.fit(..., devices=jax.devices())`` or ``mesh=``): the data are
  split along their rows over a ``"data"`` mesh axis, parameters are replicated, and XLA sums
  the likelihood (hence the gradients) over devices.  Each device draws its share of a minibatch
  from its own rows.  Under ``jax.distributed`` each process passes its own rows to
  ``jv.Minibatch`` and they are assembled with ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import mmap
import atexit
import queue
import threading
import weakref

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxvi.vi.objectives import Objective

__all__ = ["NpyDataset", "Feeding", "StreamFeed", "make_mesh"]


BLOCK_ROWS = 8192  # rows read contiguously (the unit shuffled per epoch)
BLOCK_BYTES = 4 << 20  # a streamed chunk holds about this many bytes of batches
PREFETCH = 2  # chunks read ahead


# -- sources on disk --------------------------------------------------------------------------------
class NpyDataset:
    """The rows of one or more ``.npy`` files (same trailing shape and dtype), read on demand.

    ``jv.Minibatch(jv.data.NpyDataset("part0.npy", "part1.npy"), batch_size=500)`` streams
    them in a fit; ``np.asarray(dataset)`` loads them all.
    """

    def __init__(self, *paths):
        if not paths:
            raise TypeError("NpyDataset needs at least one .npy path")
        self.paths = [str(p) for p in paths]
        self.parts = [np.load(p, mmap_mode="r") for p in self.paths]
        first = self.parts[0]
        for p, a in zip(self.paths, self.parts):
            if a.ndim == 0:
                raise ValueError(f"NpyDataset: {p} holds a scalar, not rows")
            if a.shape[1:] != first.shape[1:] or a.dtype != first.dtype:
                raise ValueError(f"NpyDataset: {p} has rows of shape {a.shape[1:]} and dtype {a.dtype}, "
                                 f"but {self.paths[0]} has {first.shape[1:]} and {first.dtype}")
        self.starts = np.cumsum([0] + [a.shape[0] for a in self.parts])
        self.shape = (int(self.starts[-1]), *first.shape[1:])
        self.dtype = first.dtype
        self.ndim = len(self.shape)

    def __len__(self):
        return self.shape[0]

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a new in-memory array."""
        out = []
        for k, part in enumerate(self.parts):
            a, b = max(start, self.starts[k]), min(stop, self.starts[k + 1])
            if a < b:
                out.append(_read(part, a - self.starts[k], b - self.starts[k]))
        return out[0] if len(out) == 1 else np.concatenate(out)

    def __array__(self, dtype=None, copy=None):
        arr = self.read_rows(0, self.shape[0])
        return arr if dtype is None else arr.astype(dtype)

    def __repr__(self):
        return f"NpyDataset({len(self.paths)} file(s), shape={self.shape}, dtype={self.dtype})"


def _read(arr, start: int, stop: int) -> np.ndarray:
    """Copy rows out of an array; for a memory-map, drop its pages from this process afterwards."""
    out = np.array(arr[start:stop])
    base = arr
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None:
        try:
            base.madvise(mmap.MADV_DONTNEED)  # the page cache keeps them; our RSS does not
        except (AttributeError, OSError, ValueError):  # pragma: no cover - platform without madvise
            pass
    return out


def _reader(source):
    if hasattr(source, "read_rows"):
        return source.read_rows
    return lambda start, stop: _read(source, start, stop)


class _RowOrder:
    """Stream positions -> file rows: epochs of contiguous blocks in a per-epoch shuffled order."""

    def __init__(self, n_rows: int, seed, block_rows: int = BLOCK_ROWS):
        self.n, self.block, self.seed = n_rows, max(1, min(block_rows, n_rows)), seed
        self.n_blocks = -(-n_rows // self.block)
        self._epoch = (None, None, None)

    def _order(self, epoch: int):
        if self._epoch[0] != epoch:
            perm = np.random.default_rng([*self.seed, 1, epoch]).permutation(self.n_blocks)
            lengths = np.minimum(self.block, self.n - perm * self.block)
            self._epoch = (epoch, perm, np.cumsum(lengths))
        return self._epoch[1], self._epoch[2]

    def ranges(self, p0: int, p1: int) -> list[tuple[int, int]]:
        out = []
        while p0 < p1:
            epoch, q = divmod(p0, self.n)
            perm, ends = self._order(epoch)
            j = int(np.searchsorted(ends, q, side="right"))
            begin = int(ends[j - 1]) if j else 0
            first = int(perm[j]) * self.block + (q - begin)
            take = min(int(ends[j]) - q, p1 - p0)
            out.append((first, first + take))
            p0 += take
        return out


# -- the prefetching feed ---------------------------------------------------------------------------
class StreamFeed:
    """Blocks of ``steps`` stacked batches, made by a background thread ``PREFETCH`` chunks ahead.

    ``take(m) -> ({"block": {key: [steps, B, ...]}, "offset": o}, m')`` and ``commit(k)`` are what
    ``engine.run`` calls around each compiled chunk.
    """

    def __init__(self, make_block, steps: int, put, depth: int = PREFETCH, start: int = 0):
        self.steps = int(steps)
        first, self._offset = divmod(int(start), self.steps)
        self.blocks_used = first
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_produce, args=(make_block, put, self._queue, self._stop, first),
                                        daemon=True, name="jaxvi-prefetch")
        self._thread.start()
        _LIVE.add(self)
        weakref.finalize(self, self._stop.set)
        self._block = None

    @property
    def position(self) -> int:
        """Steps of the stream served so far (counted from the stream's start, not this feed's)."""
        return self.blocks_used * self.steps + self._offset

    def take(self, m: int):
        if self._block is None:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            self._block = item
        m = min(int(m), self.steps - self._offset)
        return {"block": self._block, "offset": np.int32(self._offset)}, m

    def commit(self, k: int):
        self._offset += int(k)
        if self._offset >= self.steps:
            self._block, self._offset = None, 0
            self.blocks_used += 1

    def close(self):
        """Stop the prefetch thread and wait for it (no thread may run into interpreter shutdown)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        _LIVE.discard(self)


_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_live_feeds():
    for feed in list(_LIVE):
        feed.close()


def _produce(make_block, put, q: queue.Queue, stop: threading.Event, j: int = 0):
    while not stop.is_set():
        try:
            item = put(make_block(j))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            item = exc
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        if isinstance(item, BaseException):
            return
        j += 1


def _stream_blocks(groups, seed, steps: int):
    """``make_block(j)``: the batches of steps ``[j*steps, (j+1)*steps)`` of every streamed group.

    Each group reads the same rows of all its arrays (so they stay aligned); a process of a
    multi-host run reads its own rows and makes its share of every batch.
    """
    plans = []
    for gi, g in enumerate(groups):
        local_rows = g.nodes[0].source.shape[0]
        local_batch = g.batch_size // jax.process_count() if g.nodes[0].process_local else g.batch_size
        order = _RowOrder(local_rows, [*seed, gi])
        readers = [(n.key, _reader(n.source), jax.dtypes.canonicalize_dtype(n.source.dtype)) for n in g.nodes]
        plans.append((gi, local_batch, order, readers))

    def make_block(j: int) -> dict:
        out = {}
        for gi, b, order, readers in plans:
            rows = steps * b
            ranges = order.ranges(j * rows, (j + 1) * rows)
            shuffle = np.random.default_rng([*seed, gi, 2, j]).permutation(rows)
            for key, read, dtype in readers:
                x = np.concatenate([read(a, c) for a, c in ranges]) if len(ranges) > 1 else read(*ranges[0])
                out[key] = x.astype(dtype, copy=False)[shuffle].reshape((steps, b) + x.shape[1:])
        return out

    return make_block


# -- devices ----------------------------------------------------------------------------------------
def make_mesh(devices=None, mesh: Mesh | None = None) -> Mesh | None:
    """The data-parallel mesh of a fit (``None``: one device, no sharding)."""
    if mesh is not None:
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh= must be a jax.sharding.Mesh, got {type(mesh).__name__}")
        if "data" not in mesh.axis_names or len(mesh.axis_names) != 1:
            raise ValueError(f"mesh= must have exactly one axis, named 'data'; got axes {mesh.axis_names}")
        return mesh
    if devices is None:
        return None
    devices = list(devices)
    if not devices:
        raise ValueError("devices= is empty")
    if len(devices) == 1 and jax.process_count() == 1:
        return None
    return Mesh(np.array(devices), ("data",))


def _put(x, sharding):
    """A global array from a value every process holds in full."""
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):  # pragma: no cover
        return jax.random.wrap_key_data(_put(jax.random.key_data(x), sharding))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def _local(x):
    """A replicated global array back as an ordinary single-device array."""
    if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
        return jnp.asarray(np.asarray(x.addressable_data(0)))
    return x


class Feeding:
    """How a fit of ``cm`` gets its data: the pieces ``Inference`` wires into the engine."""

    def __init__(self, cm, mesh: Mesh | None = None):
        self.cm, self.mesh = cm, mesh
        self.shards = int(mesh.shape["data"]) if mesh is not None else 1
        self.sampled = any(not g.streamed for g in cm.minibatch_groups)
        self.streamed = [g for g in cm.minibatch_groups if g.streamed]
        for g in cm.minibatch_groups:
            if g.nodes[0].process_local and (g.batch_size % jax.process_count() or self.mesh is None):
                raise ValueError(f"{g}: in a multi-process run fit with devices=jax.devices() (or mesh=), "
                                 "with a batch_size divisible by the number of processes")
        self.config = (self.shards, self.sampled, bool(self.streamed), id(mesh) if mesh is not None else None)

    # -- what goes into the compiled step ------------------------------------------------------------
    def objective(self, objective: Objective) -> Objective:
        """``objective`` with this step's minibatch rows drawn first (the row indices join its noise)."""
        if not self.sampled:
            return objective
        cm, shards = self.cm, self.shards

        def draw(params, key):
            data_key, key = jax.random.split(key)
            return objective.draw(params, key), cm.batching.indices(data_key, shards)

        def given(params, rand, batch):
            noise, indices = rand
            return objective.given(params, noise, cm.batching.gather(batch, indices, shards))

        return Objective(draw, given, objective.predrawn)

    @property
    def per_step(self):
        return self.cm.batching.stream if self.streamed else None

    # -- what the host passes in ------------------------------------------------------------------------
    def batch(self) -> dict:
        data = self.cm.fit_data()
        if self.mesh is None:
            return data
        cache = self.cm.cached(("placed_data",), dict)  # (name, mesh) -> (host value, placed value, mesh)
        nodes = {n.key: n for g in self.cm.minibatch_groups for n in g.nodes}
        out = {}
        for k, v in data.items():
            tag = (k, id(self.mesh))
            if tag in cache and cache[tag][0] is v:
                out[k] = cache[tag][1]
                continue
            out[k] = self._place(v, nodes.get(k))
            cache[tag] = (v, out[k], self.mesh)  # holds v and the mesh so their ids stay unique
        return out

    def _place(self, v, node):
        rows = NamedSharding(self.mesh, PartitionSpec("data"))
        if node is not None and node.process_local:
            local = np.asarray(node.source).astype(node.dtype, copy=False)
            return jax.make_array_from_process_local_data(rows, local, (node.n_rows, *local.shape[1:]))
        if np.ndim(v) >= 1 and v.shape[0] % self.shards == 0 and v.shape[0] >= 2 * self.shards:
            return _put(v, rows)  # rows spread over the devices
        return _put(v, NamedSharding(self.mesh, PartitionSpec()))

    def replicate(self, tree):
        if self.mesh is None:
            return tree
        everywhere = NamedSharding(self.mesh, PartitionSpec())
        return jax.tree_util.tree_map(lambda x: _put(x, everywhere), tree)

    def local(self, tree):
        return tree if self.mesh is None else jax.tree_util.tree_map(_local, tree)

    def feed(self, key, start: int = 0) -> StreamFeed | None:
        """The prefetching feed of the streamed minibatches, seeded from the fit's key, from step ``start``
        of the stream (a resumed fit continues where the checkpoint left it)."""
        if not self.streamed:
            return None
        seed = [int(x) for x in np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(
            getattr(key, "dtype", np.uint32), jax.dtypes.prng_key) else key).ravel()]
        step_bytes = sum(g.batch_size * int(np.prod(n.shape[1:], dtype=np.int64)) * n.dtype.itemsize
                         for g in self.streamed for n in g.nodes)
        steps = int(max(1, min(1000, BLOCK_BYTES // max(step_bytes, 1))))
        make_block = _stream_blocks(self.streamed, seed, steps)
        if self.mesh is None:
            put = jax.device_put
        else:
            spec = NamedSharding(self.mesh, PartitionSpec(None, "data"))
            local = self.streamed[0].nodes[0].process_local

            def put(block):
                if local:
                    return {k: jax.make_array_from_process_local_data(
                        spec, v, (v.shape[0], v.shape[1] * jax.process_count(), *v.shape[2:]))
                        for k, v in block.items()}
                return {k: _put(v, spec) for k, v in block.items()}
        return StreamFeed(make_block, steps, put, start=start)
