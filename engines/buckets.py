"""Shape buckets shared by the scheduler, the GPU backends and the TensorRT engine builder.

The scheduler batches sentences of similar length together (``LENGTH_BUCKETS``); a GPU
backend pads each batch up to its bucket so a fixed set of shapes — one CUDA graph or one
TensorRT optimization profile each — covers every request. Defined here, in the bottom
layer, because ``engines.trt_build`` must build the same profiles without importing server/.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["LENGTH_BUCKETS", "SENTENCE_BUCKETS", "bucket_up"]

LENGTH_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256)  # tokens per sentence
SENTENCE_BUCKETS = (8, 16, 32, 64, 96, 128)  # sentences per essay (the essay model)


def bucket_up(n: int, buckets: Sequence[int] | None = None) -> int:
    """The smallest bucket holding ``n``; without ``buckets`` the next power of two.

    Past the largest bucket, ``n`` itself (an exact shape, built on first use).
    """
    if buckets is None:
        return 1 << max(0, (n - 1).bit_length())
    for limit in buckets:
        if n <= limit:
            return limit
    return n
