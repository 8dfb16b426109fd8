"""``inkstone client``: stream a file into a document as if typed, printing hints and scores."""

from __future__ import annotations

import argparse
import asyncio

from protocol import Hints, Scores, ServerMessage
from server.auth import mint_token
from server.wsclient import StudentClient

__all__ = ["stream_file"]


def _print(message: ServerMessage) -> None:
    if isinstance(message, Hints):
        for sentence in message.sentences:
            for hint in sentence.hints:
                fix = f" → {'/'.join(hint.suggestions)}" if hint.suggestions else ""
                print(
                    f"v{message.version} [{hint.kind}/{hint.code}] {hint.start}-{hint.end} "
                    f"{hint.message}{fix}",
                    flush=True,
                )
    elif isinstance(message, Scores):
        traits = ", ".join(f"{name} {t.score:g}/{t.max:g}" for name, t in message.traits.items())
        overall = f"{message.overall.score:g}/{message.overall.max:g}" if message.overall else "-"
        print(
            f"v{message.version} scores: overall {overall}; {traits}; "
            f"{message.stats.chars} chars, {message.stats.sentences} sentences",
            flush=True,
        )


async def stream_file(args: argparse.Namespace) -> int:
    text = args.file.read_text(encoding="utf-8")
    token = args.token or mint_token(None, user=args.user, role="student", class_id=args.class_id)
    client = StudentClient(args.url, token, args.doc or args.file.name, lang=args.lang)
    welcome = await client.connect()
    print(
        f"connected: doc {welcome.doc} at version {welcome.version} (dev_mode={welcome.dev_mode})"
    )
    previous = client.session.on_message

    def on_message(message: ServerMessage) -> None:
        if previous is not None:
            previous(message)
        _print(message)

    client.session.on_message = on_message
    if client.state.text:
        await client.replace("")
    delay = 1.0 / args.cps if args.cps > 0 else 0.0
    for ch in text:
        await client.type_text(ch)
        await asyncio.sleep(delay)
    await client.wait_synced(30)
    await asyncio.sleep(2.0)
    await client.close()
    return 0
