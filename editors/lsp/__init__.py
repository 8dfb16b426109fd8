"""The Language Server bridge (``inkstone lsp``): any LSP editor gets Inkstone's feedback.

It owns the editor side of the product: a pygls server on stdio that mirrors each
open document, turns LSP incremental changes into protocol ``edit``s on one socket
per document (code points on the wire, the editor's negotiated encoding towards the
editor), resumes after a dropped socket without losing an edit, and turns ``hints``
into Diagnostics exact for the editor's current text, with server-side quick fixes,
dismissals, hover, progress and an ``inkstone/scores`` notification. Markdown and
LaTeX are masked without moving offsets. Analysis and debounce stay in the server;
the bridge imports nothing of the model stack, so it starts in a fraction of a
second. Modules: ``text`` (positions, diffs), ``mask``, ``sentences`` (hints on the
current text), ``diagnostics``, ``settings``, ``session`` (the socket),
``document`` (one open file), ``server`` and ``features`` (pygls).
"""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="talk LSP on stdio (the default)")
    parser.add_argument(
        "--server", default=None, help="socket URL unless the editor sets one (default: local)"
    )
    parser.add_argument("--token", default=None, help="token unless the editor sets one")
    parser.add_argument("--log-file", default=None, help="write the bridge's log here")


def main(args: argparse.Namespace | None = None) -> int:
    """Run the bridge on stdio until the editor says ``exit``."""
    if args is None:
        parser = argparse.ArgumentParser(prog="inkstone lsp", description=__doc__)
        add_arguments(parser)
        args = parser.parse_args()
    target = {"filename": args.log_file} if args.log_file else {"stream": sys.stderr}
    logging.basicConfig(
        level=logging.WARNING,  # pygls logs every message (tokens included) at INFO
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
        **target,
    )
    logging.getLogger("inkstone.lsp").setLevel(logging.INFO)
    from editors.lsp.server import create_server

    server = create_server()
    defaults = {"server": args.server, "token": args.token}
    server.settings = server.settings.merged({k: v for k, v in defaults.items() if v})
    server.start_io()
    return 0
