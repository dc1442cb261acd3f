"""Shuffled mini-batches streamed from one or more HDF5 sets without loading them whole.

Order: the chunks of every set are shuffled together (seeded by seed and epoch), read a few at a time into a
buffer, and shuffled again inside the buffer. Memory is bounded by ``buffer_chunks`` chunks, and the same
(seed, epoch) always gives the same batches, which is what makes ``--resume`` exact."""
from __future__ import annotations

import numpy as np


def count_samples(readers, limit=None) -> int:
    return sum(min(len(r), limit) if limit else len(r) for r in readers)


def per_set_sample(sizes: list[int], per_epoch: int | None) -> list[int]:
    """How many samples of each set an epoch of ``per_epoch`` samples draws: in proportion to the sets' sizes
    (largest remainders), so every set is represented; all of them when ``per_epoch`` is None or covers them."""
    total = sum(sizes)
    if per_epoch is None or per_epoch >= total:
        return list(sizes)
    shares = [per_epoch * size / total for size in sizes]
    counts = [int(share) for share in shares]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[:per_epoch - sum(counts)]:
        counts[i] += 1
    return counts


def epoch_size(readers, limit=None, per_epoch=None) -> int:
    """Samples one epoch yields."""
    return sum(per_set_sample([min(len(r), limit) if limit else len(r) for r in readers], per_epoch))


def shuffled_batches(readers, batch_size: int, *, seed: int, epoch: int, names, buffer_chunks: int = 16,
                     limit: int | None = None, per_epoch: int | None = None):
    """Yield dicts of numpy arrays keyed by ``names``, every batch ``batch_size`` long except possibly the last.
    ``per_epoch``: draw that many samples per epoch (whole chunks, chosen afresh each epoch; per_set_sample says
    how many from each set) instead of all of them."""
    rng = np.random.default_rng([seed, epoch])
    sizes = [min(len(r), limit) if limit else len(r) for r in readers]
    blocks = []
    for index, (reader, total, wanted) in enumerate(zip(readers, sizes, per_set_sample(sizes, per_epoch))):
        step = reader.chunk_len
        starts = list(range(0, total, step))
        if wanted < total:  # a random choice of chunks, the last one cut to the exact count
            starts = [starts[i] for i in rng.permutation(len(starts))]
        for start in starts:
            stop = min(start + step, total, start + wanted)
            if stop > start:
                blocks.append((index, start, stop))
                wanted -= stop - start
            if wanted <= 0:
                break
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

