"""Minibatch row sampling (floor 1): which rows of the minibatched data a step of a fit sees.

Minibatch nodes with the same number of rows and batch size form a :class:`MinibatchGroup` and share
one index stream, so ``jv.Minibatch(X)`` and ``jv.Minibatch(y)`` made in separate calls stay aligned.
:class:`Batching` holds a model's groups and the pure functions that draw and gather the rows inside
the compiled loop (and pick a streamed block's step).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from jaxvi.model.nodes import ancestors
from jaxvi.model.variables import MinibatchNode

__all__ = ["Batching", "MinibatchGroup", "minibatch_groups"]


class MinibatchGroup:
    """Minibatch nodes drawn with one index stream: same number of rows and batch size."""

    def __init__(self, n_rows: int, batch_size: int, nodes: list):
        self.n_rows, self.batch_size, self.nodes = n_rows, batch_size, nodes
        self.streamed = any(n.streamed for n in nodes)  # then the host reads all of them

    def __repr__(self):
        return f"MinibatchGroup(rows={self.n_rows}, batch={self.batch_size}, arrays={len(self.nodes)})"



def minibatch_groups(roots) -> list[MinibatchGroup]:
    groups: dict[tuple, list] = {}
    for node in ancestors(roots):
        if isinstance(node, MinibatchNode):
            groups.setdefault((node.n_rows, node.batch_size), []).append(node)
    return [MinibatchGroup(n, b, nodes) for (n, b), nodes in sorted(groups.items())]


@dataclass(frozen=True)
class Batching:
    """The minibatch groups of a model and how a step draws its rows."""

    groups: tuple

    @classmethod
    def of(cls, roots) -> "Batching":
        return cls(tuple(minibatch_groups(roots)))

    def select(self, key, data, shards: int = 1) -> dict:
        """``data`` with every in-memory minibatch replaced by its rows for this step.

        One index stream (``batch_size`` draws with replacement, as PyMC) per group of minibatches
        sharing (rows, batch size), so all of them see the same rows.  With ``shards > 1`` (data
        split over devices along the rows) each shard draws its share of the batch from its own
        rows, so the gather stays on the device that holds the rows.
        """
        return self.gather(data, self.indices(key, shards), shards)

    def sampled(self, shards: int = 1):
        return [(g, shards if g.n_rows % shards == 0 and g.batch_size % shards == 0 else 1)
                for g in self.groups if not g.streamed]

    def indices(self, key, shards: int = 1) -> list:
        """This step's row indices, one ``[shards, batch_size // shards]`` array per minibatch group."""
        groups = self.sampled(shards)
        return [jax.random.randint(k, (s, g.batch_size // s), 0, g.n_rows // s)
                for (g, s), k in zip(groups, jax.random.split(key, max(len(groups), 1)))]

    def gather(self, data, indices: list, shards: int = 1) -> dict:
        """``data`` with each minibatch group's rows at ``indices`` (from :meth:`indices`)."""
        groups = self.sampled(shards)
        if not groups:
            return data
        out = dict(data)
        for (g, s), idx in zip(groups, indices):
            for node in g.nodes:
                x = data[node.key]
                if s == 1:
                    out[node.key] = jnp.take(x, idx[0], axis=0)
                else:
                    parts = x.reshape((s, g.n_rows // s) + x.shape[1:])
                    picked = jax.vmap(lambda rows, i: jnp.take(rows, i, axis=0))(parts, idx)
                    out[node.key] = picked.reshape((g.batch_size,) + x.shape[1:])
        return out

    @staticmethod
    def stream(batch, i) -> dict:
        """Step ``i`` of a streamed chunk ``(data, {"block": {key: [C, B, ...]}, "offset": o})``."""
        data, fed = batch
        at = fed["offset"] + i
        return {**data, **{k: jax.lax.dynamic_index_in_dim(v, at, keepdims=False) for k, v in fed["block"].items()}}
