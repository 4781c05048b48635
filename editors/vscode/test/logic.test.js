'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');

const logic = require('../src/logic');

const temporary = [];
test.after(() => temporary.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ninetyten-vscode-'));
  temporary.push(dir);
  return dir;
}

function executable(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '#!/bin/sh\n');
  fs.chmodSync(file, 0o755);
  return file;
}

test('languages: explicit entries win over "*", unknown languages follow "*"', () => {
  const enable = { '*': true, markdown: false };
  assert.equal(logic.languageEnabled('python', enable), true);
  assert.equal(logic.languageEnabled('markdown', enable), false);
  assert.equal(logic.languageEnabled('go', { '*': false, python: true }), false);
  assert.equal(logic.languageEnabled('python', { '*': false, python: true }), true);
  assert.equal(logic.languageEnabled('python', undefined), true);
});

test('server lookup: the setting, then the workspace .venv, then PATH', () => {
  const root = tempDir();
  const folder = path.join(root, 'ws');
  const onPath = executable(path.join(root, 'bin', 'ninetyten'));
  const envPath = path.join(root, 'bin');

  assert.deepEqual(logic.findServer({ folders: [folder], envPath }), { command: onPath });
  const venv = executable(path.join(folder, '.venv', 'bin', 'ninetyten'));
  assert.deepEqual(logic.findServer({ folders: [folder], envPath }), { command: venv });
  // An untrusted workspace could ship anything in .venv.
  assert.deepEqual(logic.findServer({ folders: [folder], envPath, trusted: false }), { command: onPath });

  const custom = executable(path.join(folder, 'tools', 'nt'));
  assert.deepEqual(logic.findServer({ configured: 'tools/nt', folders: [folder], envPath }), { command: custom });
  assert.deepEqual(logic.findServer({ configured: '${workspaceFolder}/tools/nt', folders: [folder], envPath }),
    { command: custom });
});

test('server lookup: a wrong setting or a missing server says what was searched', () => {
  const root = tempDir();
  const wrong = logic.findServer({ configured: path.join(root, 'nope'), folders: [root], envPath: '' });
  assert.match(wrong.error, /ninetyten\.server\.path/);
  assert.match(wrong.error, /nope/);
  const missing = logic.findServer({ folders: [root], envPath: path.join(root, 'bin') });
  assert.ok(missing.error);
  assert.deepEqual(missing.searched, [path.join(root, '.venv', 'bin', 'ninetyten'), path.join(root, 'bin', 'ninetyten')]);
  const hint = logic.installHint(missing);
  assert.match(hint, /pip install ninetyten/);
  assert.match(hint, /ninetyten\.server\.path/);
});

test('server arguments: model ids stay ids, paths are resolved, policy is passed', () => {
  assert.deepEqual(logic.serverArgs({}), ['serve']);
  assert.deepEqual(logic.serverArgs({ model: 'qwen2.5-coder-1.5b' }), ['serve', '--model', 'qwen2.5-coder-1.5b']);
  assert.deepEqual(logic.serverArgs({ model: 'models/q.gguf', policy: 'p.toml', folders: ['/w'] }),
    ['serve', '--model', path.join('/w', 'models/q.gguf'), '--policy', path.join('/w', 'p.toml')]);
  assert.deepEqual(logic.serverArgs({ model: '~/m.gguf' }), ['serve', '--model', path.join(os.homedir(), 'm.gguf')]);
});

test('status bar: tier, latency and savings from ninetyten/served', () => {
  const idle = logic.statusFromServed(undefined);
  assert.match(idle.text, /ninetyten/);
  const view = logic.statusFromServed({ tier: 'local', model: 'q.gguf', latency_ms: 142.4, savings_today_usd: 0.3712,
    prompt_tokens: 10, completion_tokens: 3, offline: false });
  assert.equal(view.text, '$(sparkle) local · 142 ms · $0.37 saved today');
  assert.match(view.tooltip, /local tier \(q\.gguf\)/);
  assert.match(view.tooltip, /10 in, 3 out/);
  const offline = logic.statusFromServed({ tier: 'local', latency_ms: 1500, offline: true });
  assert.equal(offline.text, '$(debug-disconnect) local · 1.5 s · offline');
});

test('money and latency formatting', () => {
  assert.equal(logic.formatUsd(0), '$0.00');
  assert.equal(logic.formatUsd(0.004), '$0.0040');
  assert.equal(logic.formatUsd(12.345), '$12.35');
  assert.equal(logic.formatUsd(1234.5), '$1235');
  assert.equal(logic.formatLatency(999.6), '1000 ms');
  assert.equal(logic.formatLatency(2345), '2.3 s');
  assert.equal(logic.formatLatency(undefined), '');
});

test('result documents: title, question, answer and who served it', () => {
  const md = logic.resultMarkdown('ask', {
    text: 'No.', tier: 'frontier', model: 'claude', usage: { latency_ms: 812, cost_usd: 0.0012 },
  }, { where: 'calc.py:1-2', question: 'Can it overflow?' });
  assert.match(md, /^# Answer — calc\.py:1-2$/m);
  assert.match(md, /^> Can it overflow\?$/m);
  assert.match(md, /^No\.$/m);
  assert.match(md, /served by frontier \(claude\) · 812 ms · cost \$0\.0012/);
  const change = logic.resultMarkdown('explainChange', { explanation: 'Adds greet.', decision: { tier: 'local' } });
  assert.match(change, /Adds greet\./);
  assert.match(change, /served by local/);
  const failed = logic.resultMarkdown('explain', { text: null, error: 'blocked by policy' });
  assert.match(failed, /\*\*Error:\*\* blocked by policy/);
  assert.doesNotMatch(failed, /returned nothing/);
});

test('report document keeps the server table verbatim', () => {
  const md = logic.reportMarkdown({ text: 'Task  Req\ncompletion  3\n\n' }, 'today');
  assert.match(md, /```text\nTask {2}Req\ncompletion {2}3\n```/);
});

test('ranges are described 1-based, a selection ending at column 0 stops on the line before', () => {
  const range = (a, b, c, d) => ({ start: { line: a, character: b }, end: { line: c, character: d } });
  assert.equal(logic.describeRange('/w/calc.py', range(0, 0, 1, 12)), 'calc.py:1-2');
  assert.equal(logic.describeRange('/w/calc.py', range(0, 0, 2, 0)), 'calc.py:1-2');
  assert.equal(logic.describeRange('/w/calc.py', range(4, 2, 4, 9)), 'calc.py:5');
  assert.equal(logic.describeRange('/w/calc.py', undefined), 'calc.py');
});

test('debounce: waits, and gives up when the request is cancelled', async () => {
  const listeners = [];
  const token = {
    isCancellationRequested: false,
    onCancellationRequested(fn) { listeners.push(fn); return { dispose() {} }; },
  };
  const started = Date.now();
  assert.equal(await logic.debounce(30, token), true);
  assert.ok(Date.now() - started >= 25);
  const pending = logic.debounce(10_000, token);
  token.isCancellationRequested = true;
  listeners.forEach((fn) => fn());
  assert.equal(await pending, false);
  assert.equal(await logic.debounce(0, { isCancellationRequested: true }), false);
});


const UNTRUSTED = {
  source: 'workspace',
  path: '/work/repo/.ninetyten/policy.toml',
  trust: 'untrusted',
  sha256: 'ab'.repeat(32),
  base: null,
  needsApproval: true,
  ignored: [
    { key: 'tiers.frontier', value: '{"base_url": "http://203.0.113.7"}', reason: 'would send code to http://203.0.113.7' },
    { key: 'rules[0]', value: '{"route": "frontier"}', reason: 'routes completion to frontier' },
    { key: 'sensitivity.pii', value: 'false', reason: 'turns off detection' },
    { key: 'escalation.max_attempts', value: '5', reason: 'more attempts' },
  ],
};
// The server lists settings in file order; where code and keys would go is shown first.
UNTRUSTED.ignored.unshift(UNTRUSTED.ignored.splice(2, 1)[0]);

test('trust prompt: says what trusting would allow, and only when something waits for it', () => {
  const prompt = logic.trustPrompt(UNTRUSTED);
  assert.equal(prompt.sha256, UNTRUSTED.sha256);
  assert.match(prompt.message, /\.ninetyten\/policy\.toml wants 4 setting/);
  assert.match(prompt.message, /wants 4 setting\(s\) that could send code, keys or money elsewhere: tiers\.frontier → http:\/\/203\.0\.113\.7;/);
  assert.match(prompt.message, /and 1 more/);
  assert.equal(logic.trustPrompt({ ...UNTRUSTED, needsApproval: false }), null);
  assert.equal(logic.trustPrompt({ ...UNTRUSTED, trust: 'approved', needsApproval: false }), null);
  assert.equal(logic.trustPrompt({ ...UNTRUSTED, sha256: null }), null);
  assert.equal(logic.trustPrompt(undefined), null);
});

test('trust details: every key, its value and its reason', () => {
  const text = logic.trustDetails(UNTRUSTED);
  for (const item of UNTRUSTED.ignored) {
    assert.ok(text.includes(item.key) && text.includes(item.reason), item.key);
  }
  assert.match(text, /built-in default/);
  assert.ok(text.includes(UNTRUSTED.sha256));
});

// -- local models ------------------------------------------------------------------------------

const EMBEDDED_STATE = {
  embedded: true,
  completion: { name: 'gemma-3-270m' },
  pinned: { completion: null, chat: null },
  recommendation: {
    machine: '2 cores, 4.0 GiB RAM, no GPU offload',
    completion: { model_id: 'qwen2.5-coder-0.5b', pull_spec: 'qwen2.5-coder-0.5b:q4_k_m', download_bytes: 397807936 },
    chat: { model_id: 'qwen2.5-coder-0.5b-instruct', pull_spec: 'qwen2.5-coder-0.5b-instruct', download_bytes: 675710816 },
    pull: ['qwen2.5-coder-0.5b:q4_k_m', 'qwen2.5-coder-0.5b-instruct'],
    download_bytes: 1073518752,
  },
};

test('model offer: only on the built-in model, with both picks and the download size', () => {
  const offer = logic.modelOffer(EMBEDDED_STATE);
  assert.deepEqual(offer.pull, EMBEDDED_STATE.recommendation.pull);
  assert.equal(offer.pullLabel, 'Pull (1.1 GB)');
  assert.equal(offer.keepLabel, 'Keep the small built-in model');
  assert.match(offer.message, /qwen2\.5-coder-0\.5b for completions and qwen2\.5-coder-0\.5b-instruct for explain/);
  assert.match(offer.message, /1\.1 GB to download/);
  assert.equal(logic.modelOffer({ ...EMBEDDED_STATE, embedded: false }), null);
  assert.equal(logic.modelOffer({ ...EMBEDDED_STATE, pinned: { completion: '/m.gguf' } }), null);
  const nothing = { ...EMBEDDED_STATE, recommendation: { ...EMBEDDED_STATE.recommendation, pull: [] } };
  assert.equal(logic.modelOffer(nothing), null);
  const same = { ...EMBEDDED_STATE, recommendation: { ...EMBEDDED_STATE.recommendation,
    chat: EMBEDDED_STATE.recommendation.completion, pull: ['qwen2.5-coder-0.5b:q4_k_m'] } };
  assert.doesNotMatch(logic.modelOffer(same).message, /explain/);
  assert.equal(logic.modelOffer(undefined), null);
});

test('model settings after a pull: the first file per task', () => {
  const result = { pulled: [
    { task: 'completion', use: 'bartowski/Qwen2.5-Coder-0.5B-GGUF:Qwen2.5-Coder-0.5B-Q4_K_M.gguf' },
    { task: 'chat', use: 'qwen2.5-coder-0.5b-instruct' },
    { task: 'chat', use: 'later' },
    { task: 'chat' },
  ] };
  assert.deepEqual(logic.modelSettings(result), {
    model: 'bartowski/Qwen2.5-Coder-0.5B-GGUF:Qwen2.5-Coder-0.5B-Q4_K_M.gguf', chatModel: 'qwen2.5-coder-0.5b-instruct' });
  assert.deepEqual(logic.modelSettings({ error: 'x' }), {});
});

test('progress steps: increments only forward, messages passed on', () => {
  let state = logic.progressStep({ kind: 'report', message: 'a: 1 of 10 MB', percentage: 10 }, 0);
  assert.deepEqual(state, { step: { message: 'a: 1 of 10 MB', increment: 10 }, last: 10 });
  state = logic.progressStep({ kind: 'report', message: 'b', percentage: 5 }, state.last); // a second file
  assert.deepEqual(state, { step: { message: 'b' }, last: 10 });
  state = logic.progressStep({ kind: 'report', percentage: 250 }, state.last);
  assert.equal(state.step.increment, 90);
  assert.equal(logic.formatBytes(397807936), '398 MB');
  assert.equal(logic.formatBytes(1660000000), '1.7 GB');
});

test('server arguments: a chat model, and REPO:FILE is not a path', () => {
  const spec = 'bartowski/Qwen2.5-Coder-0.5B-GGUF:Qwen2.5-Coder-0.5B-Q4_K_M.gguf';
  assert.deepEqual(logic.serverArgs({ model: spec, chatModel: 'qwen2.5-coder-0.5b-instruct', folders: ['/w'] }),
    ['serve', '--model', spec, '--chat-model', 'qwen2.5-coder-0.5b-instruct']);
  assert.deepEqual(logic.serverArgs({ chatModel: 'models/chat.gguf', folders: ['/w'] }),
    ['serve', '--chat-model', path.join('/w', 'models/chat.gguf')]);
});

test('definition targets: the innermost call and the last complete name before the cursor', () => {
  assert.deepEqual(logic.definitionTargets('    digest = checksum_for_payload('), [13]);
  assert.deepEqual(logic.definitionTargets('x = outer(inner(a, '), [10, 16]);
  assert.deepEqual(logic.definitionTargets('x = outer(inner(a), '), [4, 16]);
  assert.deepEqual(logic.definitionTargets('value = compu'), [0]);
  assert.deepEqual(logic.definitionTargets('    '), []);
  assert.deepEqual(logic.definitionTargets(''), []);
});

test('definition items: locations and location links, de-duplicated and capped', () => {
  const range = (line) => ({ start: { line, character: 4 }, end: { line, character: 9 } });
  const items = logic.definitionItems([
    [{ uri: 'file:///a.py', range: range(3) }, { uri: 'file:///a.py', range: range(3) }],
    [{ targetUri: 'file:///b.py', targetRange: range(10), targetSelectionRange: range(11) }],
    undefined,
  ]);
  assert.deepEqual(items.map((i) => [i.uri, i.range.start.line]), [['file:///a.py', 3], ['file:///b.py', 11]]);
  const many = Array.from({ length: 20 }, (_, n) => ({ uri: `file:///${n}.py`, range: range(n) }));
  assert.equal(logic.definitionItems([many]).length, 8);
});

test('partial accepts: the suggestion the kept text belongs to, counted without its text', () => {
  const command = (index) => ({ command: 'x', arguments: [{ requestId: 'r1', index }] });
  const shown = logic.shownItems('file:///a.py', 10, { items: [
    { insertText: ' x x x', command: command(0) },
    { insertText: ' y x x', command: command(1) },
    { insertText: 'no command' },
  ] });
  assert.deepEqual(shown.items.map((i) => [i.text, i.index]), [[' x x x', 0], [' y x x', 1]]);
  // The space is the start of both: the first is counted (the same count either way).
  let step = logic.partialAccept(null, shown, { uri: 'file:///a.py', offset: 10 }, ' ');
  assert.deepEqual(step.accepted, { requestId: 'r1', index: 0, keptChars: 1, shownChars: 6, keptWords: 0, shownWords: 3 });
  // The next word says which: the alternative.
  step = logic.partialAccept(step.session, shown, { uri: 'file:///a.py', offset: 11 }, 'y');
  assert.deepEqual(step.accepted, { requestId: 'r1', index: 1, keptChars: 2, shownChars: 6, keptWords: 1, shownWords: 3 });
  // VS Code asked again after the accept: the session goes on from where it was.
  const rest = logic.shownItems('file:///a.py', 12, [{ insertText: ' x x', command: { arguments: [{ requestId: 'r2' }] } }]);
  step = logic.partialAccept(step.session, rest, { uri: 'file:///a.py', offset: 12 }, ' x x');
  assert.deepEqual([step.accepted.requestId, step.accepted.keptChars, step.accepted.keptWords], ['r1', 6, 3]);
  // Elsewhere, or text that was not suggested: nothing to record.
  assert.equal(logic.partialAccept(null, shown, { uri: 'file:///a.py', offset: 3 }, ' '), null);
  assert.equal(logic.partialAccept(null, shown, { uri: 'file:///a.py', offset: 10 }, ' z'), null);
  assert.equal(logic.shownItems('file:///a.py', 0, null), null);
  assert.equal(logic.countWords('foo(bar_1, 2)'), 3);
});
