"""Inkstone server: sockets, sessions, debounce, segmentation, inference scheduling, storage."""
