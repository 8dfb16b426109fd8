// The extension's logic that does not need VS Code: settings → server command and
// initialization options, and scores → status-bar text and trait breakdown.
// Tested with `node --test` (VS Code itself cannot be downloaded in the test environment).

export interface InkstoneConfig {
  path?: string;
  server?: string;
  tokenCommand?: string;
  lang?: string;
  severity?: Record<string, string>;
  mask?: string;
  caretDelayMs?: number;
}

export interface Score {
  score: number;
  max: number;
  grade?: string;
}

export interface Trait extends Score {
  basis?: string;
  label?: string;
}

export interface ScoresNotification {
  uri: string;
  version: number;
  overall?: Score;
  traits: Record<string, Trait>;
  stats: { chars: number; sentences: number; paragraphs: number; words?: number };
}

export function serverCommand(config: InkstoneConfig): { command: string; args: string[] } {
  const path = (config.path ?? "").trim() || "inkstone";
  return { command: path, args: ["lsp", "--stdio"] };
}

export function initializationOptions(
  config: InkstoneConfig,
  token: string | undefined,
): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  if (config.server) options.server = config.server;
  if (token) options.token = token;
  else if (config.tokenCommand) options.tokenCommand = config.tokenCommand;
  if (config.lang) options.lang = config.lang;
  if (config.severity && Object.keys(config.severity).length) options.severity = config.severity;
  if (config.mask) options.mask = config.mask;
  if (typeof config.caretDelayMs === "number") options.caretDelayMs = config.caretDelayMs;
  return options;
}

function fmt(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/** The status-bar text for the active document's latest scores. */
export function statusText(scores: ScoresNotification | undefined): string {
  if (!scores) return "$(edit) Inkstone";
  if (scores.overall) {
    return `$(edit) ${fmt(scores.overall.score)}/${fmt(scores.overall.max)}`;
  }
  return `$(edit) ${scores.stats.chars}字`;
}

/** One line per trait, for the click-through. */
export function traitLines(scores: ScoresNotification | undefined): string[] {
  if (!scores) return ["No scores yet: start writing."];
  const lines: string[] = [];
  if (scores.overall) {
    const grade = scores.overall.grade ? ` (${scores.overall.grade})` : "";
    lines.push(`总分 Overall: ${fmt(scores.overall.score)}/${fmt(scores.overall.max)}${grade}`);
  }
  for (const [name, trait] of Object.entries(scores.traits)) {
    const label = trait.label ? `${trait.label} ${name}` : name;
    const grade = trait.grade ? ` (${trait.grade})` : "";
    lines.push(`${label}: ${fmt(trait.score)}/${fmt(trait.max)}${grade}`);
  }
  const s = scores.stats;
  lines.push(`${s.chars}字 · ${s.sentences}句 · ${s.paragraphs}段`);
  return lines;
}

/** Latest scores per document; an older version never replaces a newer one. */
export class ScoreBoard {
  private readonly byUri = new Map<string, ScoresNotification>();

  update(scores: ScoresNotification): boolean {
    const known = this.byUri.get(scores.uri);
    if (known && known.version > scores.version) return false;
    this.byUri.set(scores.uri, scores);
    return true;
  }

  get(uri: string | undefined): ScoresNotification | undefined {
    return uri === undefined ? undefined : this.byUri.get(uri);
  }

  forget(uri: string): void {
    this.byUri.delete(uri);
  }
}
