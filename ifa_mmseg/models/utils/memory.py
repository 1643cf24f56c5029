"""Memory decisions shared by the backbone and the head: CPU chunk sizes and the channels-last layout."""
import threading
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

MMAP_THRESHOLD = 32 * 2 ** 20  # glibc's largest dynamic M_MMAP_THRESHOLD (64-bit)

_layout = threading.local()  # per thread, as torch's own modes: the loop engine adapts in worker threads


def cpu_chunk_size(item_bytes: int) -> int:
    """Items per chunk for CPU work whose tensors take ``item_bytes`` per item.

    glibc serves allocations above :data:`MMAP_THRESHOLD` with a fresh mmap, so such
    tensors page-fault on every use; smaller ones are reused from the heap. Chunks
    of the returned size (at least 1) stay below it.
    """
    return max(1, MMAP_THRESHOLD // item_bytes)


@contextmanager
def keep_memory_format() -> Iterator[None]:
    """Within it (in this thread), :func:`channels_last` leaves tensors as they come.

    ``torch.func.vmap`` cannot convert a batched tensor to channels-last, so whoever
    runs a model under vmap (the ``'vmap'`` adaptation engine) opens this around it.
    """
    previous = getattr(_layout, 'keep', False)
    _layout.keep = True
    try:
        yield
    finally:
        _layout.keep = previous


def channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last (NHWC) memory format, unless within :func:`keep_memory_format`."""
    return x if getattr(_layout, 'keep', False) else x.contiguous(memory_format=torch.channels_last)
