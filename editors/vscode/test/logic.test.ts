// node --test: the extension's logic, without VS Code.
import { strict as assert } from "node:assert";
import { test } from "node:test";

import {
  ScoreBoard,
  ScoresNotification,
  initializationOptions,
  serverCommand,
  statusText,
  traitLines,
} from "../src/logic";

const scores = (version: number, overall?: number): ScoresNotification => ({
  uri: "file:///a.txt",
  version,
  overall: overall === undefined ? undefined : { score: overall, max: 10, grade: "Medium" },
  traits: {
    content: { score: 7.5, max: 10, grade: "Great", label: "内容" },
    coherence: { score: 3, max: 5 },
  },
  stats: { chars: 120, sentences: 6, paragraphs: 2 },
});

test("the server command defaults to `inkstone lsp --stdio` and honours inkstone.path", () => {
  assert.deepEqual(serverCommand({}), { command: "inkstone", args: ["lsp", "--stdio"] });
  assert.deepEqual(serverCommand({ path: " /opt/venv/bin/inkstone " }).command, "/opt/venv/bin/inkstone");
});

test("a stored token wins over the token command; empty settings are left out", () => {
  const config = { server: "ws://h:1/v1/ws", tokenCommand: "pass inkstone", severity: {}, caretDelayMs: 0 };
  assert.deepEqual(initializationOptions(config, "T"), { server: "ws://h:1/v1/ws", token: "T", caretDelayMs: 0 });
  assert.deepEqual(initializationOptions(config, undefined), {
    server: "ws://h:1/v1/ws",
    tokenCommand: "pass inkstone",
    caretDelayMs: 0,
  });
  assert.deepEqual(initializationOptions({ severity: { style: "off" } }, undefined), { severity: { style: "off" } });
});

test("status text shows the overall score, or the length while no essay model applies", () => {
  assert.equal(statusText(undefined), "$(edit) Inkstone");
  assert.equal(statusText(scores(3, 6.25)), "$(edit) 6.3/10");
  assert.equal(statusText(scores(3)), "$(edit) 120字");
});

test("the trait breakdown lists every trait with its label and grade", () => {
  assert.deepEqual(traitLines(scores(1, 5)), [
    "总分 Overall: 5/10 (Medium)",
    "内容 content: 7.5/10 (Great)",
    "coherence: 3/5",
    "120字 · 6句 · 2段",
  ]);
  assert.match(traitLines(undefined)[0], /No scores yet/);
});

test("an older scores notification never replaces a newer one", () => {
  const board = new ScoreBoard();
  assert.ok(board.update(scores(5, 8)));
  assert.equal(board.update(scores(4, 2)), false);
  assert.equal(board.get("file:///a.txt")?.overall?.score, 8);
  board.forget("file:///a.txt");
  assert.equal(board.get("file:///a.txt"), undefined);
});
