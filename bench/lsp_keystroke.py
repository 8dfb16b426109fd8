"""The LSP bridge's own cost per keystroke on a long document (no socket, no editor).

A 48,000-character document (near the server's 50,000 limit) with 300 hints (the
server's per-document cap): each keystroke applies one LSP change, re-masks (Markdown)
or not (plain text), maps the hints and builds the diagnostics the editor is sent.

    python3 bench/lsp_keystroke.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from editors.lsp.document import OpenDocument
from protocol import Hint, Hints, SentenceHints

LINE = "今天天气很好，我们一起去公园玩。`code` 见 https://example.com/x 。\n"


def main() -> int:
    text = LINE * (48_000 // len(LINE))
    for kind, language in (("none", "plaintext"), ("markdown", "markdown")):
        doc = OpenDocument("file:///essay.md", language, 0, text, kind)  # type: ignore[arg-type]
        sentences, pos = [], 0
        for n in range(300):
            end = text.index("\n", pos)
            hint = Hint(f"h{n}", "grammar", "repeated_word", "warning", pos, pos + 2, "m", ("我",))
            sentences.append(SentenceHints(f"s{n}", pos, end, (hint,)))
            pos = end + 1
        doc.store.receive(Hints(1, tuple(sentences)), [doc.masked], full=True)
        runs, started = 100, time.perf_counter()
        for i in range(runs):
            line = 100 + i % 150
            doc.apply([((line, 3, line, 3), "好")], "utf-16", i + 1)
            shown, _ = doc.visible(0)
            doc.diagnostics(shown, "utf-16", lang="zh", severities={}, docs_url=None)
        per = (time.perf_counter() - started) / runs * 1000
        print(
            f"{kind:<9} {len(doc.text)} chars, {len(shown)} diagnostics: {per:.2f} ms per "
            f"keystroke (load {os.getloadavg()[0]:.1f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
