"""Shuffled mini-batches streamed from one or more HDF5 sets without loading them whole.

Order: the chunks of every set are shuffled together (seeded by seed and epoch), read a few at a time into a
buffer, and shuffled again inside the buffer. Memory is bounded by ``buffer_chunks`` chunks, and the same
(seed, epoch) always gives the same batches, which is what makes ``--resume`` exact."""
from __future__ import annotations

import numpy as np


def count_samples(readers, limit=None) -> int:
    return sum(min(len(r), limit) if limit else len(r) for r in readers)


def shuffled_batches(readers, batch_size: int, *, seed: int, epoch: int, names, buffer_chunks: int = 16,
                     limit: int | None = None):
    """Yield dicts of numpy arrays keyed by ``names``, every batch ``batch_size`` long except possibly the last."""
    rng = np.random.default_rng([seed, epoch])
    blocks = []
    for index, reader in enumerate(readers):
        total = min(len(reader), limit) if limit else len(reader)
        step = reader.chunk_len
        blocks += [(index, start, min(start + step, total)) for start in range(0, total, step)]
    order = rng.permutation(len(blocks))
    carry = None
    for group_start in range(0, len(order), buffer_chunks):
        parts = [readers[blocks[i][0]].read(blocks[i][1], blocks[i][2], names)
                 for i in order[group_start:group_start + buffer_chunks]]
        buffer = {name: np.concatenate([p[name] for p in parts]) for name in names}
        perm = rng.permutation(len(buffer[names[0]]))
        buffer = {name: values[perm] for name, values in buffer.items()}
        if carry is not None:
            buffer = {name: np.concatenate([carry[name], buffer[name]]) for name in names}
        size = len(buffer[names[0]])
        full = size - size % batch_size
        for start in range(0, full, batch_size):
            yield {name: values[start:start + batch_size] for name, values in buffer.items()}
        carry = {name: values[full:] for name, values in buffer.items()} if full < size else None
    if carry is not None:
        yield carry

