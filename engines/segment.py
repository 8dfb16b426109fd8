"""Sentence segmentation for the essay model: the server's own segmenter, so the essay model
is trained on exactly the sentences it is served (``server.segmenter`` is pure Python)."""

from __future__ import annotations

from server.segmenter import Segment, segment

__all__ = ["SEGMENTER_NAME", "Segment", "segment"]

SEGMENTER_NAME = "server.segmenter.segment"
