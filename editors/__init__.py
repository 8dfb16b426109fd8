"""Editor integrations: they speak only Inkstone's public protocol (and LSP to editors).

``editors.lsp`` is the Language Server bridge (``inkstone lsp``); ``editors/vscode`` is a
thin VS Code extension (TypeScript, not a Python package) that launches it.
"""
