// Inkstone for VS Code: starts `inkstone lsp`, keeps the token in SecretStorage, shows the
// live score in the status bar. All analysis and code actions live in the language server.
import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";

import {
  InkstoneConfig,
  ScoreBoard,
  ScoresNotification,
  initializationOptions,
  serverCommand,
  statusText,
  traitLines,
} from "./logic";

const TOKEN_KEY = "inkstone.token";
let client: LanguageClient | undefined;

function readConfig(): InkstoneConfig {
  const c = vscode.workspace.getConfiguration("inkstone");
  return {
    path: c.get<string>("path"),
    server: c.get<string>("server"),
    tokenCommand: c.get<string>("tokenCommand"),
    lang: c.get<string>("lang"),
    severity: c.get<Record<string, string>>("severity"),
    mask: c.get<string>("mask"),
    caretDelayMs: c.get<number>("caretDelayMs"),
  };
}

async function startClient(
  context: vscode.ExtensionContext,
  board: ScoreBoard,
  status: vscode.StatusBarItem,
): Promise<void> {
  const config = readConfig();
  const token = await context.secrets.get(TOKEN_KEY);
  const { command, args } = serverCommand(config);
  const serverOptions: ServerOptions = { command, args, transport: TransportKind.stdio };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", language: "plaintext" },
      { scheme: "file", language: "markdown" },
      { scheme: "file", language: "latex" },
      { scheme: "untitled", language: "plaintext" },
    ],
    initializationOptions: initializationOptions(config, token),
    synchronize: { configurationSection: "inkstone" },
  };
  client = new LanguageClient("inkstone", "Inkstone", serverOptions, clientOptions);
  client.onNotification("inkstone/scores", (scores: ScoresNotification) => {
    if (board.update(scores)) refresh(board, status);
  });
  await client.start();
}

function refresh(board: ScoreBoard, status: vscode.StatusBarItem): void {
  const uri = vscode.window.activeTextEditor?.document.uri.toString();
  status.text = statusText(board.get(uri));
  status.tooltip = traitLines(board.get(uri)).join("\n");
  status.show();
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const board = new ScoreBoard();
  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  status.command = "inkstone.showTraits";
  context.subscriptions.push(status);

  const launch = async () => {
    try {
      await startClient(context, board, status);
    } catch (err) {
      const { command } = serverCommand(readConfig());
      void vscode.window.showErrorMessage(
        `Inkstone: could not start \`${command} lsp\` (${String(err)}). Set "inkstone.path".`,
      );
    }
  };
  const restart = async () => {
    if (client) await client.stop().catch(() => undefined); // it may never have started
    client = undefined;
    await launch();
  };
  context.subscriptions.push(
    vscode.commands.registerCommand("inkstone.restart", restart),
    vscode.commands.registerCommand("inkstone.setToken", async () => {
      const token = await vscode.window.showInputBox({
        prompt: "Inkstone access token (from your teacher, or `inkstone token`)",
        password: true,
        ignoreFocusOut: true,
      });
      if (token) {
        await context.secrets.store(TOKEN_KEY, token.trim());
        await restart();
      }
    }),
    vscode.commands.registerCommand("inkstone.clearToken", async () => {
      await context.secrets.delete(TOKEN_KEY);
      await restart();
    }),
    vscode.commands.registerCommand("inkstone.showTraits", async () => {
      const uri = vscode.window.activeTextEditor?.document.uri.toString();
      await vscode.window.showQuickPick(traitLines(board.get(uri)), { title: "Inkstone" });
    }),
    vscode.window.onDidChangeActiveTextEditor(() => refresh(board, status)),
    vscode.workspace.onDidCloseTextDocument((doc) => board.forget(doc.uri.toString())),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("inkstone.path")) await restart();
    }),
  );
  await launch();
  refresh(board, status);
}

export async function deactivate(): Promise<void> {
  if (client) await client.stop();
}
