"""Inkstone models: tokenizer, sentence model, essay model, training, export and runtime.

The server imports only :mod:`engines.runtime` (numpy, sentencepiece, onnxruntime, jieba).
Training code (:mod:`engines.train`, :mod:`engines.model`) needs the ``[train]`` extra.
"""
