'use strict';
// The extension's decisions that do not need the `vscode` module, so that node's own test
// runner can check them without an editor.

const fs = require('fs');
const os = require('os');
const path = require('path');

const isWindows = process.platform === 'win32';

/** Whether ninetyten serves documents of this language (`ninetyten.enable`). */
function languageEnabled(languageId, enable) {
  const table = enable && typeof enable === 'object' ? enable : {};
  if (Object.prototype.hasOwnProperty.call(table, languageId)) return table[languageId] !== false;
  if (Object.prototype.hasOwnProperty.call(table, '*')) return table['*'] !== false;
  return true;
}

function isExecutable(file) {
  try {
    fs.accessSync(file, isWindows ? fs.constants.F_OK : fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** `~` and `${workspaceFolder}` expanded; relative paths taken from the first folder. */
function expandPath(value, folders, home = os.homedir()) {
  let result = String(value).trim();
  const first = folders && folders.length ? folders[0] : undefined;
  if (first) result = result.split('${workspaceFolder}').join(first);
  if (result === '~' || result.startsWith('~/')) result = path.join(home, result.slice(1));
  if (!path.isAbsolute(result) && first) result = path.join(first, result);
  return result;
}

/**
 * Where the `ninetyten` executable is: the setting if given (and then only there), else the
 * workspace's virtual environment (trusted workspaces only: a checkout could ship anything
 * there), else PATH. Returns {command} or {error} with the places searched.
 */
function findServer({ configured = '', folders = [], trusted = true, envPath = process.env.PATH || '' } = {}) {
  const exe = isWindows ? 'ninetyten.exe' : 'ninetyten';
  if (configured && configured.trim()) {
    const file = expandPath(configured, folders);
    if (isExecutable(file)) return { command: file };
    return { error: `"ninetyten.server.path" is set to ${file}, which is not an executable file.`, searched: [file] };
  }
  const searched = [];
  if (trusted) {
    for (const folder of folders) {
      const file = path.join(folder, '.venv', isWindows ? 'Scripts' : 'bin', exe);
      searched.push(file);
      if (isExecutable(file)) return { command: file };
    }
  }
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, exe);
    searched.push(file);
    if (isExecutable(file)) return { command: file };
  }
  return {
    error: 'The ninetyten language server was not found' +
      (trusted ? ' in the workspace\'s .venv or on PATH.' : ' on PATH (the workspace\'s .venv is not used in an untrusted workspace).'),
    searched,
  };
}

/** What to tell a user whose server is missing, with what to do about it. */
function installHint(found) {
  return `ninetyten: ${found.error} Install it with \`pip install ninetyten\` (or \`make setup\` in a ninetyten ` +
    'checkout, which creates .venv/bin/ninetyten), or set "ninetyten.server.path" to the executable.';
}

/** `ninetyten serve` arguments from the settings. */
function serverArgs({ model = '', chatModel = '', policy = '', folders = [] } = {}) {
  const args = ['serve'];
  for (const [flag, setting] of [['--model', model], ['--chat-model', chatModel]]) {
    if (!setting || !setting.trim()) continue;
    const value = setting.trim();
    // A catalog id or REPO:FILE stays as it is; a path is resolved like the executable.
    const isPath = (/[\\/]/.test(value) && !/^[\w.-]+\/[\w.-]+:[^/]+\.gguf$/.test(value)) ||
      (value.endsWith('.gguf') && !value.includes(':')) || value.startsWith('~');
    args.push(flag, isPath ? expandPath(value, folders) : value);
  }
  if (policy && policy.trim()) args.push('--policy', expandPath(policy, folders));
  return args;
}

function formatUsd(value) {
  const amount = Number(value) || 0;
  if (Math.abs(amount) >= 100) return `$${amount.toFixed(0)}`;
  if (Math.abs(amount) >= 0.01 || amount === 0) return `$${amount.toFixed(2)}`;
  return `$${amount.toFixed(4)}`;
}

function formatLatency(ms) {
  const value = Number(ms);
  if (!Number.isFinite(value)) return '';
  return value >= 1000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

/** Status bar text and tooltip from a `ninetyten/served` notification (or a starting state). */
function statusFromServed(served) {
  if (!served) return { text: '$(sparkle) ninetyten', tooltip: 'ninetyten: waiting for the first request. Click for the cost report.' };
  const icon = served.offline ? '$(debug-disconnect)' : '$(sparkle)';
  const parts = [served.tier || '?'];
  const latency = formatLatency(served.latency_ms);
  if (latency) parts.push(latency);
  if (served.savings_today_usd !== undefined && served.savings_today_usd !== null) {
    parts.push(`${formatUsd(served.savings_today_usd)} saved today`);
  }
  const text = `${icon} ${parts.join(' · ')}${served.offline ? ' · offline' : ''}`;
  const lines = [
    `ninetyten — last request served by the ${served.tier || 'unknown'} tier` +
      (served.model ? ` (${served.model})` : ''),
  ];
  if (latency) lines.push(`latency ${latency}`);
  if (served.prompt_tokens !== undefined || served.completion_tokens !== undefined) {
    lines.push(`tokens: ${served.prompt_tokens ?? 0} in, ${served.completion_tokens ?? 0} out`);
  }
  if (served.savings_today_usd !== undefined && served.savings_today_usd !== null) {
    lines.push(`saved today vs. the frontier alone: ${formatUsd(served.savings_today_usd)}`);
  }
  if (served.offline) lines.push('offline: everything runs on the local model');
  lines.push('Click for the cost report.');
  return { text, tooltip: lines.join('\n') };
}

const TITLES = {
  explain: 'Explanation',
  ask: 'Answer',
  explainChange: 'Staged changes',
  refactor: 'Refactor',
};

/** A markdown document for an explain / ask / explain-change answer. */
function resultMarkdown(kind, result, { where = '', question = '' } = {}) {
  const title = TITLES[kind] || 'ninetyten';
  const out = [`# ${title}${where ? ` — ${where}` : ''}`, ''];
  if (question) out.push(`> ${question.replace(/\n/g, '\n> ')}`, '');
  const body = (result && (result.text ?? result.explanation)) || '';
  if (result && result.error) out.push(`**Error:** ${result.error}`, '');
  if (body) out.push(String(body).trim(), '');
  else if (!(result && result.error)) out.push('_The model returned nothing._', '');
  const meta = servedBy(result);
  if (meta) out.push('---', '', `_${meta}_`, '');
  return out.join('\n');
}

/** "tier local (model) · 812 ms · $0.0000" from the decision / usage an answer carries. */
function servedBy(result) {
  if (!result || typeof result !== 'object') return '';
  const decision = result.decision && typeof result.decision === 'object' ? result.decision : {};
  const tier = result.tier || decision.tier;
  const model = result.model || decision.model;
  const parts = [];
  if (tier) parts.push(`served by ${tier}${model ? ` (${model})` : ''}`);
  const usage = Array.isArray(result.usage) ? result.usage : (result.usage ? [result.usage] : []);
  let latency = 0;
  let cost = 0;
  let haveCost = false;
  for (const attempt of usage) {
    if (!attempt || typeof attempt !== 'object') continue;
    latency += Number(attempt.latency_ms ?? attempt.total_ms ?? 0) || 0;
    if (attempt.cost_usd !== undefined) {
      cost += Number(attempt.cost_usd) || 0;
      haveCost = true;
    }
  }
  if (latency) parts.push(formatLatency(latency));
  if (haveCost) parts.push(`cost ${formatUsd(cost)}`);
  if (result.low_confidence) parts.push('low confidence');
  return parts.join(' · ');
}

/** The report as markdown: the server's plain-text table in a code block. */
function reportMarkdown(result, since) {
  const out = [`# ninetyten cost report — ${since}`, ''];
  if (result && result.error) out.push(`**Error:** ${result.error}`, '');
  if (result && result.text) out.push('```text', String(result.text).replace(/\s+$/, ''), '```', '');
  return out.join('\n');
}

/** 1-based "file.py:3-7" for a title. */
function describeRange(fileName, range) {
  const base = fileName ? path.basename(fileName) : '';
  if (!range) return base;
  const start = range.start.line + 1;
  let end = range.end.line + 1;
  if (range.end.character === 0 && end > start) end -= 1;
  return `${base}:${start}${end !== start ? `-${end}` : ''}`;
}

// -- the repository policy's trust (ninetyten/policyTrust) ---------------------------------

function shorten(text, limit) {
  const value = String(text);
  return value.length <= limit ? value : `${value.slice(0, limit - 1)}…`;
}

function parsed(value) {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function sendsElsewhere(item) {
  const value = parsed(item.value);
  return /\.(base_url|api_key_env)$/.test(item.key) ||
    Boolean(value && typeof value === 'object' && (value.base_url || value.api_key_env));
}

/** "tiers.frontier → https://host (key $VAR)" for a tier; "key = value" for anything else. */
function summarizeSetting(item) {
  const value = parsed(item.value);
  if (value && typeof value === 'object' && !Array.isArray(value) && (value.base_url || value.api_key_env)) {
    return `${item.key} → ${value.base_url || 'the same host'}${value.api_key_env ? ` (key $${value.api_key_env})` : ''}`;
  }
  return `${item.key} = ${shorten(item.value, 60)}`;
}

/**
 * What to ask about a repository policy that wants more than the user's own policy allows,
 * or null when there is nothing to ask: {message, sha256} for the Trust / Keep local prompt.
 * The message says what trusting would allow; `trustDetails` has every key and reason.
 */
function trustPrompt(state) {
  if (!state || state.needsApproval !== true || !Array.isArray(state.ignored) || !state.ignored.length) return null;
  if (typeof state.sha256 !== 'string' || !state.sha256) return null;
  const items = state.ignored.filter((item) => item && typeof item.key === 'string');
  // Where code and keys would go first: that is what the user must see.
  const ranked = [...items.filter(sendsElsewhere), ...items.filter((item) => !sendsElsewhere(item))];
  const shown = ranked.slice(0, 3).map(summarizeSetting);
  const more = items.length > shown.length ? `, and ${items.length - shown.length} more` : '';
  const file = state.path ? path.basename(path.dirname(state.path)) + '/' + path.basename(state.path) : 'policy.toml';
  return {
    sha256: state.sha256,
    message: `ninetyten: this repository's ${file} wants ${items.length} setting(s) that could send code, ` +
      `keys or money elsewhere: ${shown.join('; ')}${more}. They are ignored until you trust this file; ` +
      'until then your own policy (or everything local) applies.',
  };
}

/** Every setting a repository policy wants, with why it needs trust, as markdown. */
function trustDetails(state) {
  const out = ['# Repository policy: what trusting it would allow', ''];
  if (!state) return out.join('\n');
  if (state.path) out.push(`File: \`${state.path}\``, '');
  if (state.sha256) out.push(`SHA-256: \`${state.sha256}\` (any change to the file needs a new approval)`, '');
  const under = state.base ? `your policy \`${state.base}\`` : 'the built-in default (everything local)';
  out.push(`It is laid over ${under}. Its stricter settings apply already; these wait for your approval:`, '');
  for (const item of Array.isArray(state.ignored) ? state.ignored : []) {
    out.push(`- \`${item.key}\` = \`${shorten(item.value, 300)}\`  `, `  ${item.reason}`);
  }
  out.push('', 'Trust it with **ninetyten: Trust the repository policy…**, or in a terminal: `ninetyten policy trust`.', '');
  return out.join('\n');
}

// -- local models (ninetyten/models, ninetyten/pullModel) -----------------------------------

/** "530 MB", "1.6 GB": a download size as the hub counts it (decimal units). */
function formatBytes(bytes) {
  const value = Number(bytes) || 0;
  if (value >= 1e9) return `${(value / 1e9).toFixed(1)} GB`;
  if (value >= 1e6) return `${Math.round(value / 1e6)} MB`;
  return `${Math.max(1, Math.round(value / 1e3))} KB`;
}

/**
 * What to offer when completions come from the small built-in model and this machine runs a
 * catalog model well (ninetyten/models state), or null: {message, pull, bytes, pullLabel, keepLabel}.
 */
function modelOffer(state) {
  if (!state || state.embedded !== true) return null;
  if (state.pinned && state.pinned.completion) return null; // --model / NINETYTEN_MODEL decide, not us
  const rec = state.recommendation;
  if (!rec || !Array.isArray(rec.pull) || !rec.pull.length) return null;
  const completion = rec.completion || {};
  const chat = rec.chat || {};
  const size = formatBytes(rec.download_bytes);
  const current = state.completion && state.completion.name ? ` (${state.completion.name})` : '';
  let picks = `${completion.model_id} for completions`;
  if (chat.pull_spec && chat.pull_spec !== completion.pull_spec) picks += ` and ${chat.model_id} for explain, refactor and ask`;
  return {
    pull: rec.pull,
    bytes: Number(rec.download_bytes) || 0,
    message: `ninetyten: completions come from the small built-in model${current}, which is there to try things ` +
      `out. For this machine (${rec.machine}) the recommendation is ${picks}: ${size} to download from Hugging Face.`,
    pullLabel: `Pull (${size})`,
    keepLabel: 'Keep the small built-in model',
  };
}

/** The model settings to save after a pull: {model, chatModel}, the first pulled file per task. */
function modelSettings(result) {
  const settings = {};
  for (const item of (result && Array.isArray(result.pulled)) ? result.pulled : []) {
    if (!item || typeof item.use !== 'string') continue;
    const key = item.task === 'chat' ? 'chatModel' : 'model';
    if (!(key in settings)) settings[key] = item.use;
  }
  return settings;
}

/** {message, increment} for a progress notification from a $/progress value (percent so far: `last`). */
function progressStep(value, last) {
  const percentage = value && typeof value.percentage === 'number' ? Math.max(0, Math.min(100, value.percentage)) : undefined;
  const step = { message: value && value.message ? String(value.message) : undefined };
  if (percentage !== undefined && percentage > last) step.increment = percentage - last;
  return { step, last: percentage !== undefined ? Math.max(last, percentage) : last };
}

/** Waits `ms` unless the token is cancelled first; resolves to whether to go on. */
function debounce(ms, token) {
  if (!ms || ms <= 0) return Promise.resolve(!(token && token.isCancellationRequested));
  return new Promise((resolve) => {
    let listener;
    const timer = setTimeout(() => {
      if (listener) listener.dispose();
      resolve(!(token && token.isCancellationRequested));
    }, ms);
    if (token && typeof token.onCancellationRequested === 'function') {
      listener = token.onCancellationRequested(() => {
        clearTimeout(timer);
        if (listener) listener.dispose();
        resolve(false);
      });
    }
  });
}

/**
 * Where to ask the editor's other language servers for definitions, on the cursor line before
 * the cursor: the function being called (the name before the innermost unclosed bracket) and
 * the last complete name before the one being typed. Returns up to two character offsets (each
 * at a name's first character), innermost call first; none inside a string or comment is told
 * apart (a cheap scan: a wrong guess costs one definition request that finds nothing).
 */
function definitionTargets(linePrefix) {
  const text = String(linePrefix || '');
  const names = [];
  const re = /[A-Za-z_$][A-Za-z0-9_$]*/g;
  let match;
  while ((match = re.exec(text)) !== null) names.push({ start: match.index, end: match.index + match[0].length });
  const targets = [];
  const stack = [];
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (ch === '(' || ch === '[' || ch === '{') stack.push(i);
    else if ((ch === ')' || ch === ']' || ch === '}') && stack.length) stack.pop();
  }
  for (let k = stack.length - 1; k >= 0 && targets.length < 1; k -= 1) {
    const open = stack[k];
    if (text[open] !== '(') continue;
    const callee = names.filter((n) => n.end <= open && !text.slice(n.end, open).trim()).pop();
    if (callee) targets.push(callee.start);
  }
  // The name right at the cursor is unfinished: asking where it is defined finds nothing.
  const complete = names.filter((n) => n.end < text.length);
  const last = complete[complete.length - 1];
  if (last && !targets.includes(last.start)) targets.push(last.start);
  return targets.slice(0, 2);
}

/** Definition results (Location or LocationLink) as `ninetyten/definitions` items. */
function definitionItems(results, limit = 8) {
  const out = [];
  const seen = new Set();
  for (const result of results || []) {
    for (const item of Array.isArray(result) ? result : result ? [result] : []) {
      const uri = item.targetUri || item.uri;
      const range = item.targetSelectionRange || item.targetRange || item.range;
      if (!uri || !range) continue;
      const entry = {
        uri: uri.toString(),
        range: { start: { line: range.start.line, character: range.start.character },
          end: { line: range.end.line, character: range.end.character } },
      };
      const key = `${entry.uri}:${entry.range.start.line}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(entry);
      if (out.length >= limit) return out;
    }
  }
  return out;
}

// -- partial accepts ---------------------------------------------------------------------------

/** Words in `text` (runs of letters, digits and underscores): what a partial accept counts. */
function countWords(text) {
  return (String(text || '').match(/[A-Za-z0-9_]+/g) || []).length;
}

/**
 * The suggestions an inline completion answer showed at a document offset, as partial accepts
 * need them: the text, the request and which alternative (from the item's accept command).
 */
function shownItems(uri, offset, result) {
  const items = Array.isArray(result) ? result : (result && result.items) || [];
  const out = [];
  for (const item of items) {
    const text = typeof item.insertText === 'string' ? item.insertText : item.insertText && item.insertText.value;
    const args = item.command && Array.isArray(item.command.arguments) ? item.command.arguments[0] : undefined;
    if (typeof text !== 'string' || !text || !args || typeof args.requestId !== 'string') continue;
    out.push({ text, requestId: args.requestId, index: Number(args.index) || 0 });
  }
  return out.length ? { uri, offset, items: out } : null;
}

/**
 * One partial accept (a word or a line of the ghost text went into the document at `at`).
 * It continues `session` when it follows on from it; otherwise it starts from the suggestions
 * `shown` at that offset. The suggestion is the first one that begins with all the text kept so
 * far (alternatives can share a start; the count kept is the same). Returns the new session
 * and the counts for the server (never the text), or null when it matches nothing shown.
 */
function partialAccept(session, shown, at, inserted) {
  let current = null;
  if (session && session.uri === at.uri && session.start + session.kept.length === at.offset) {
    current = session;
  } else if (shown && shown.uri === at.uri && shown.offset === at.offset) {
    current = { uri: at.uri, start: at.offset, kept: '', candidates: shown.items };
  }
  if (!current || !inserted) return null;
  const kept = current.kept + inserted;
  const candidates = current.candidates.filter((item) => item.text.startsWith(kept));
  if (!candidates.length) return null;
  const item = candidates[0];
  return {
    session: { ...current, kept, candidates },
    accepted: {
      requestId: item.requestId,
      index: item.index,
      keptChars: kept.length,
      shownChars: item.text.length,
      keptWords: countWords(kept),
      shownWords: countWords(item.text),
    },
  };
}

module.exports = {
  countWords,
  partialAccept,
  shownItems,
  debounce,
  definitionItems,
  definitionTargets,
  describeRange,
  expandPath,
  findServer,
  formatBytes,
  formatLatency,
  formatUsd,
  installHint,
  languageEnabled,
  modelOffer,
  modelSettings,
  progressStep,
  reportMarkdown,
  resultMarkdown,
  servedBy,
  serverArgs,
  statusFromServed,
  trustDetails,
  trustPrompt,
};
