'use strict';
// A thin client: the ninetyten language server does the work (completions, routing, edits);
// this file starts it, shows what it returns and keeps the status bar current.

const vscode = require('vscode');
const { LanguageClient, State, WorkDoneProgress } = require('vscode-languageclient/node');
const logic = require('./logic');
// The server's method and command ids, generated from the server's own list (lsp_server/lsp/ids.py).
const { METHODS, COMMANDS } = require('./ids');

// Commands the server implements (workspace/executeCommand). vscode-languageclient registers
// these ids itself, so the palette commands below use ids of their own.
const SERVER = {
  explain: COMMANDS.explainSelection,
  refactor: COMMANDS.refactorSelection,
  ask: COMMANDS.ask,
  explainChange: COMMANDS.explainChange,
  report: COMMANDS.report,
  toggleOffline: COMMANDS.toggleOffline,
  trustPolicy: COMMANDS.trustPolicy,
  untrustPolicy: COMMANDS.untrustPolicy,
};
const SERVED_NOTIFICATION = METHODS.served;
const DEFINITIONS_NOTIFICATION = METHODS.definitions;
const POLICY_TRUST = METHODS.policyTrust;
const MODELS = METHODS.models;
const PULL_MODEL = METHODS.pullModel;
// Sent when an editor gets the focus: the server reads the prompt at its cursor into the
// model's cache before the first keystroke.
const WARM_NOTIFICATION = METHODS.warm;
const MODEL_OFFERED = 'ninetyten.modelOffered'; // global state: the first-run offer was shown
const KEPT_LOCAL = 'ninetyten.keptLocal'; // workspace state: digests the user chose to keep local
const RESULT_SCHEME = 'ninetyten-result';
// Settings that change how the server is started or which documents it sees.
const RESTART_SETTINGS = ['ninetyten.server.path', 'ninetyten.model', 'ninetyten.chatModel', 'ninetyten.policy',
  'ninetyten.enable', 'ninetyten.serverSettings'];

let client;
let clientStarting;
let output;
let status;
let lastServed;
let resultCount = 0;
let extensionContext;
let policyTrust; // the last ninetyten/policyTrust state
const askedAbout = new Set(); // digests asked about in this window
const results = new Map();
const resultsChanged = new vscode.EventEmitter();

function settings(scope) {
  return vscode.workspace.getConfiguration('ninetyten', scope);
}

function folderPaths() {
  return (vscode.workspace.workspaceFolders || []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
}

function served(document) {
  // The server checks policy files as they are typed, whatever the language toggles say.
  if (/(^|[\\/])policy\.toml$/.test(document.uri.path)) return true;
  return logic.languageEnabled(document.languageId, settings().get('enable'));
}

function renderStatus() {
  if (!status) return;
  const state = client ? client.state : undefined;
  if (clientStarting || state === State.Starting) {
    status.text = '$(loading~spin) ninetyten';
    status.tooltip = 'ninetyten: starting the language server';
    status.command = 'ninetyten.client.showReport';
  } else if (!client || state === State.Stopped) {
    status.text = '$(error) ninetyten';
    status.tooltip = 'ninetyten: the language server is not running (see the "ninetyten" output). Click to start it again.';
    status.command = 'ninetyten.client.restartServer';
  } else {
    const view = logic.statusFromServed(lastServed);
    status.text = view.text;
    status.tooltip = view.tooltip;
    if (policyTrust && policyTrust.needsApproval) {
      status.text = `$(shield) ${status.text}`;
      status.tooltip += `\nThe repository policy is not trusted: ${policyTrust.ignored.length} of its settings are ignored.`;
    }
    status.command = 'ninetyten.client.showReport';
  }
  status.show();
}

async function createClient() {
  const cfg = settings();
  const folders = folderPaths();
  const found = logic.findServer({ configured: cfg.get('server.path', ''), folders, trusted: vscode.workspace.isTrusted });
  if (found.error) {
    output.error(`${found.error} Searched: ${found.searched.join(', ')}`);
    vscode.window.showErrorMessage(logic.installHint(found), 'Open Settings', 'Show Log').then((choice) => {
      if (choice === 'Open Settings') vscode.commands.executeCommand('workbench.action.openSettings', 'ninetyten.server.path');
      if (choice === 'Show Log') output.show();
    });
    return undefined;
  }
  const args = logic.serverArgs({ model: cfg.get('model', ''), chatModel: cfg.get('chatModel', ''),
    policy: cfg.get('policy', ''), folders });
  output.info(`starting ${found.command} ${args.join(' ')}`);
  const serverOptions = { command: found.command, args, options: { cwd: folders[0] } };
  const clientOptions = {
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    outputChannel: output,
    initializationOptions: () => ({ ninetyten: settings().get('serverSettings', {}) }),
    middleware: {
      // Documents of a disabled language never reach the server, not even as context.
      didOpen: (document, next) => (served(document) ? next(document) : Promise.resolve()),
      didChange: (event, next) => (served(event.document) ? next(event) : Promise.resolve()),
      didSave: (document, next) => (served(document) ? next(document) : Promise.resolve()),
      didClose: (document, next) => (served(document) ? next(document) : Promise.resolve()),
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        if (!served(document)) return null;
        if (context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic) {
          const wait = Number(settings(document).get('debounceMs', 75));
          if (!(await logic.debounce(wait, token))) return null;
        }
        await forwardDefinitions(document, position);
        const result = await next(document, position, context, token);
        const shown = logic.shownItems(document.uri.toString(), document.offsetAt(position), result);
        if (shown) shownInline = shown;
        return result;
      },
      provideCodeActions: (document, range, context, token, next) =>
        (served(document) ? next(document, range, context, token) : []),
      // The server's code actions run its commands through here: show their results too.
      // Trusting a policy goes through the prompt (and never happens in Restricted Mode),
      // whoever asks for it.
      executeCommand: (command, args, next) =>
        (Object.values(SERVER).includes(command) ? runServerCommand(command, args) : next(command, args)),
    },
  };
  const created = new LanguageClient('ninetyten', 'ninetyten', serverOptions, clientOptions);
  // In a trusted workspace this extension asks about the repository's policy itself (Trust /
  // Keep local); in Restricted Mode it never offers that, and the server's own notice shows.
  const promptsForTrust = vscode.workspace.isTrusted;
  created.registerFeature({
    fillClientCapabilities(capabilities) {
      capabilities.experimental = { ...(capabilities.experimental || {}), ninetyten: { policyTrustPrompt: promptsForTrust } };
    },
    initialize() {},
    getState() { return { kind: 'static' }; },
    clear() {}, // called when the connection closes (a restart)
    dispose() {},
  });
  created.onNotification(POLICY_TRUST, (state) => {
    policyTrust = state;
    renderStatus();
    if (promptsForTrust) askAboutPolicy(state, false);
  });
  created.onNotification(SERVED_NOTIFICATION, (params) => {
    lastServed = { ...(lastServed || {}), ...params };
    renderStatus();
  });
  created.onDidChangeState(() => renderStatus());
  return created;
}

// -- partial accepts ------------------------------------------------------------------------

let shownInline = null; // the suggestions shown last: { uri, offset, items }
let acceptSession = null; // a suggestion being accepted a part at a time

/**
 * Runs VS Code's own partial accept (`builtin`: the next word or the next line of the ghost
 * text) and tells the server how much of which suggestion has been kept so far: counts only,
 * never the text (the ledger's partial accepts). VS Code offers no stable API for this, so the
 * extension's keys for the two commands come through here.
 */
async function acceptPart(builtin) {
  const editor = vscode.window.activeTextEditor;
  if (!editor) return vscode.commands.executeCommand(builtin);
  const document = editor.document;
  const uri = document.uri.toString();
  const before = document.offsetAt(editor.selection.active);
  await vscode.commands.executeCommand(builtin);
  const after = document.offsetAt(editor.selection.active);
  if (after <= before) return undefined;
  const inserted = document.getText(new vscode.Range(document.positionAt(before), document.positionAt(after)));
  const step = logic.partialAccept(acceptSession, shownInline, { uri, offset: before }, inserted);
  if (!step) return undefined;
  acceptSession = step.session;
  const running = client;
  if (running) {
    running.sendRequest('workspace/executeCommand', { command: COMMANDS.completionAccepted, arguments: [step.accepted] })
      .catch((error) => output.warn(`recording a partial accept failed: ${error.message || error}`));
  }
  return undefined;
}

// -- definitions from the other language servers -------------------------------------------

let lastForwarded = ''; // what was sent last, so that typing on one line sends it once

/**
 * Tells the server where the editor's other language servers (Pylance, gopls, ...) say the
 * symbols at the cursor are defined: the function being called and the last name before the
 * cursor. An optional extra: the server works without it, and a slow provider is waited for
 * at most `ninetyten.forwardDefinitions.timeoutMs` (its answer still goes out when it comes).
 */
async function forwardDefinitions(document, position) {
  const cfg = settings(document);
  const running = client;
  if (!running || !cfg.get('forwardDefinitions.enabled', true)) return;
  const line = document.lineAt(position.line).text.slice(0, position.character);
  const targets = logic.definitionTargets(line);
  const key = `${document.uri.toString()}|${position.line}|${targets.map((t) => line.slice(t).match(/^[\w$]+/)).join(',')}`;
  if (!targets.length || key === lastForwarded) return;
  lastForwarded = key;
  const asked = Promise.all(targets.map((character) => Promise.resolve(vscode.commands.executeCommand(
    'vscode.executeDefinitionProvider', document.uri, new vscode.Position(position.line, character)))
    .catch(() => undefined)))
    .then((results) => {
      const definitions = logic.definitionItems(results)
        .filter((item) => item.uri !== document.uri.toString() || item.range.start.line !== position.line);
      if (definitions.length && client === running) {
        running.sendNotification(DEFINITIONS_NOTIFICATION, { textDocument: { uri: document.uri.toString() }, definitions });
      }
    });
  const wait = Number(cfg.get('forwardDefinitions.timeoutMs', 60));
  await Promise.race([asked, new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)))]);
}

async function startClient() {
  if (client) return client;
  if (clientStarting) return clientStarting;
  clientStarting = (async () => {
    const created = await createClient();
    if (!created) return undefined;
    try {
      await created.start();
    } catch (error) {
      output.error(`the ninetyten server failed to start: ${error && error.message ? error.message : error}`);
      vscode.window.showErrorMessage(`ninetyten: the language server failed to start (${error && error.message ? error.message : error}). See the "ninetyten" output.`);
      await created.dispose().catch(() => undefined);
      return undefined;
    }
    client = created;
    offerModels(created, false);
    return client;
  })();
  renderStatus();
  try {
    return await clientStarting;
  } finally {
    clientStarting = undefined;
    renderStatus();
  }
}

function warm(editor) {
  if (!client || !editor || editor.document.uri.scheme !== 'file' || !served(editor.document)) return;
  client.sendNotification(WARM_NOTIFICATION, {
    textDocument: { uri: client.code2ProtocolConverter.asUri(editor.document.uri) },
    position: client.code2ProtocolConverter.asPosition(editor.selection.active),
  }).catch(() => undefined);
}

async function stopClient() {
  if (clientStarting) await clientStarting.catch(() => undefined); // a start under way finishes first
  const running = client;
  client = undefined;
  if (running) {
    try {
      await running.stop();
    } catch (error) {
      output.warn(`stopping the server: ${error}`);
    }
  }
}

let restarting = Promise.resolve();

/** One restart at a time: two clients at once would register the same commands twice. */
function restartClient() {
  restarting = restarting.then(async () => {
    await stopClient();
    lastServed = undefined;
    policyTrust = undefined;
    await startClient();
  }).catch((error) => output.error(`restarting the server failed: ${error}`));
  return restarting;
}

// -- the repository policy's trust ----------------------------------------------------------

/**
 * Shows what the repository policy wants and offers Trust / Keep local. `asked`: the user
 * asked for it (the palette), so it shows even for a file they chose to keep local before.
 */
async function askAboutPolicy(state, asked) {
  if (!vscode.workspace.isTrusted) {
    if (asked) {
      vscode.window.showWarningMessage('ninetyten: this workspace is in Restricted Mode; trust the workspace first, ' +
        'then its policy can be trusted.');
    }
    return undefined;
  }
  const prompt = logic.trustPrompt(state);
  if (!prompt) {
    if (asked) {
      const what = state && state.trust === 'approved' ? 'is trusted already' : 'needs no approval';
      vscode.window.showInformationMessage(`ninetyten: the policy in force ${what}.`);
    }
    return undefined;
  }
  const keptLocal = extensionContext ? extensionContext.workspaceState.get(KEPT_LOCAL, []) : [];
  if (!asked && (askedAbout.has(prompt.sha256) || keptLocal.includes(prompt.sha256))) return undefined;
  askedAbout.add(prompt.sha256);
  for (;;) {
    const choice = await vscode.window.showWarningMessage(prompt.message, 'Trust', 'Keep local', 'Show details');
    if (choice === 'Show details') {
      await showResult('Repository policy', 'md', logic.trustDetails(state));
      continue;
    }
    if (choice === 'Keep local') {
      if (extensionContext) await extensionContext.workspaceState.update(KEPT_LOCAL, [...new Set([...keptLocal, prompt.sha256])]);
      return undefined;
    }
    if (choice !== 'Trust') return undefined;
    const running = client;
    if (!running) return undefined;
    // The digest the user was shown: the server refuses if the file changed since.
    const result = await running.sendRequest('workspace/executeCommand',
      { command: SERVER.trustPolicy, arguments: [{ sha256: prompt.sha256 }] });
    if (result && result.error) {
      vscode.window.showErrorMessage(`ninetyten: ${result.error}`);
    } else if (result) {
      policyTrust = result;
      renderStatus();
      vscode.window.setStatusBarMessage('$(shield) ninetyten: the repository policy is trusted', 8000);
    }
    return result;
  }
}

async function trustPolicyCommand() {
  const running = await startClient();
  if (!running) return undefined;
  const state = await running.sendRequest(POLICY_TRUST, {});
  policyTrust = state;
  renderStatus();
  return askAboutPolicy(state, true);
}

async function untrustPolicyCommand() {
  const running = await startClient();
  if (!running) return undefined;
  const result = await running.sendRequest('workspace/executeCommand', { command: SERVER.untrustPolicy, arguments: [] });
  if (result && result.error) vscode.window.showErrorMessage(`ninetyten: ${result.error}`);
  else vscode.window.showInformationMessage('ninetyten: the repository policy is no longer trusted.');
  return result;
}

// -- local models: the first-run offer and pulling -------------------------------------------

/**
 * When completions come from the small built-in model, offers once (per user) to pull what this
 * machine runs well. The answer is kept in the user's settings: "ninetyten.model" and
 * "ninetyten.chatModel" after a pull, "ninetyten.offerModels": false to keep the built-in model.
 * `asked`: from the palette, so it shows again and says so when there is nothing to offer.
 */
async function offerModels(running, asked) {
  const cfg = settings();
  if (!asked) {
    if (!cfg.get('offerModels', true) || cfg.get('model', '')) return undefined;
    if (extensionContext && extensionContext.globalState.get(MODEL_OFFERED, false)) return undefined;
  }
  let state;
  try {
    state = await running.sendRequest(MODELS, {});
  } catch (error) {
    output.warn(`asking the server about its models failed: ${error}`);
    return undefined;
  }
  const offer = logic.modelOffer(state);
  if (!offer) {
    if (asked) {
      const name = state && state.completion ? state.completion.name : 'the configured model';
      vscode.window.showInformationMessage(state && state.embedded
        ? 'ninetyten: no catalog model runs well enough on this machine; the built-in model stays.'
        : `ninetyten: completions already come from ${name}.`);
    }
    return undefined;
  }
  if (!asked && extensionContext) await extensionContext.globalState.update(MODEL_OFFERED, true);
  const choice = await vscode.window.showInformationMessage(offer.message, offer.pullLabel, offer.keepLabel);
  if (choice === offer.keepLabel) {
    await settings().update('offerModels', false, vscode.ConfigurationTarget.Global);
    return undefined;
  }
  if (choice !== offer.pullLabel) return undefined;
  return pullModels(running, offer);
}

/** Pulls with a progress notification (the server's work-done progress on our token), then
 * saves the models in the user's settings, which restarts the server on them. */
async function pullModels(running, offer) {
  const token = `ninetyten-pull-${Date.now()}`;
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `ninetyten: pulling ${offer.pull.join(', ')}`, cancellable: true },
    async (progress, cancel) => {
      let last = 0;
      const listener = running.onProgress(WorkDoneProgress.type, token, (value) => {
        const next = logic.progressStep(value, last);
        last = next.last;
        progress.report(next.step);
      });
      try {
        return await running.sendRequest(PULL_MODEL, { models: offer.pull, use: false, workDoneToken: token }, cancel);
      } catch (error) {
        return cancel.isCancellationRequested ? { cancelled: true } : { error: error && error.message ? error.message : String(error) };
      } finally {
        listener.dispose();
      }
    });
  if (!result || result.cancelled) {
    vscode.window.showInformationMessage('ninetyten: the pull was cancelled; the built-in model stays.');
    return result;
  }
  if (result.error) {
    vscode.window.showErrorMessage(`ninetyten: ${result.error}`);
    return result;
  }
  const chosen = logic.modelSettings(result);
  // Saved for every window, never in the workspace; changing them restarts the server on them.
  if (chosen.chatModel) await settings().update('chatModel', chosen.chatModel, vscode.ConfigurationTarget.Global);
  if (chosen.model) await settings().update('model', chosen.model, vscode.ConfigurationTarget.Global);
  vscode.window.showInformationMessage(`ninetyten: now using ${chosen.model || 'the same model'} for completions` +
    (chosen.chatModel ? ` and ${chosen.chatModel} for explain, refactor and ask.` : '.'));
  return result;
}

async function pullModelsCommand() {
  const running = await startClient();
  if (!running) return undefined;
  return offerModels(running, true);
}

// -- results ---------------------------------------------------------------------------

async function showResult(title, extension, content) {
  resultCount += 1;
  const safe = title.replace(/[\\/:*?"<>|#]+/g, ' ').trim() || 'ninetyten';
  const uri = vscode.Uri.from({ scheme: RESULT_SCHEME, path: `/${safe} (${resultCount}).${extension}` });
  results.set(uri.toString(), content);
  resultsChanged.fire(uri);
  const document = await vscode.workspace.openTextDocument(uri);
  await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.Beside, preview: false, preserveFocus: true });
  return uri;
}

function editorTarget(requireSelection) {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.uri.scheme === RESULT_SCHEME) {
    vscode.window.showWarningMessage('ninetyten: open a file (and select some code) first.');
    return undefined;
  }
  if (!served(editor.document)) {
    vscode.window.showWarningMessage(`ninetyten is disabled for ${editor.document.languageId} ("ninetyten.enable").`);
    return undefined;
  }
  const selection = editor.selection;
  if (requireSelection && selection.isEmpty) {
    vscode.window.showWarningMessage('ninetyten: select the code first.');
    return undefined;
  }
  const params = { textDocument: { uri: editor.document.uri.toString() } };
  if (!selection.isEmpty) {
    params.range = {
      start: { line: selection.start.line, character: selection.start.character },
      end: { line: selection.end.line, character: selection.end.character },
    };
  }
  return params;
}

function fileOf(params) {
  try {
    return params && params.textDocument ? vscode.Uri.parse(params.textDocument.uri).path : '';
  } catch {
    return '';
  }
}

async function request(title, command, params) {
  const running = await startClient();
  if (!running) return undefined;
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `ninetyten: ${title}`, cancellable: true },
    async (_progress, token) => {
      try {
        return await running.sendRequest('workspace/executeCommand', { command, arguments: params ? [params] : [] }, token);
      } catch (error) {
        if (token.isCancellationRequested) return undefined;
        return { error: error && error.message ? error.message : String(error) };
      }
    });
}

/** One server command from any entry point: fills in what is missing, runs it, shows the result. */
async function runServerCommand(command, args) {
  const given = Array.isArray(args) && args.length && args[0] && typeof args[0] === 'object' ? { ...args[0] } : undefined;
  switch (command) {
    case SERVER.explain: {
      const params = given || editorTarget(false);
      if (!params) return undefined;
      const result = await request('explaining…', command, params);
      if (!result) return undefined;
      await showResult('Explanation', 'md', logic.resultMarkdown('explain', result, { where: logic.describeRange(fileOf(params), params.range) }));
      return result;
    }
    case SERVER.ask: {
      const params = given || editorTarget(false);
      if (!params) return undefined;
      if (!params.question) {
        params.question = await vscode.window.showInputBox({
          title: 'ninetyten: Ask about selection', prompt: 'Your question about the selected code',
          placeHolder: 'What does this do? Is there a bug?', ignoreFocusOut: true,
        });
        if (!params.question) return undefined;
      }
      const result = await request('thinking…', command, params);
      if (!result) return undefined;
      await showResult('Answer', 'md', logic.resultMarkdown('ask', result, { where: logic.describeRange(fileOf(params), params.range), question: params.question }));
      return result;
    }
    case SERVER.refactor: {
      const params = given || editorTarget(true);
      if (!params) return undefined;
      if (!params.instruction) {
        params.instruction = await vscode.window.showInputBox({
          title: 'ninetyten: Refactor selection', prompt: 'How should the selected code change?',
          placeHolder: 'e.g. add type hints; use a list comprehension', ignoreFocusOut: true,
        });
        if (!params.instruction) return undefined;
      }
      params.apply = true;  // the server applies it with workspace/applyEdit: one undo step
      const result = await request('refactoring…', command, params);
      if (!result) return undefined;
      if (result.error) {
        vscode.window.showErrorMessage(`ninetyten: ${result.error}`);
      } else if (result.applied) {
        const by = logic.servedBy(result);
        vscode.window.setStatusBarMessage(`$(check) ninetyten: refactor applied${by ? ` (${by})` : ''}; undo reverts it`, 8000);
      } else {
        vscode.window.showWarningMessage('ninetyten: the editor did not apply the refactor (the file changed meanwhile?).');
      }
      return result;
    }
    case SERVER.explainChange: {
      const params = given || { staged: true };
      const result = await request(params.staged ? 'explaining the staged changes…' : 'explaining the change…', command, params);
      if (!result) return undefined;
      if (result.error && !result.explanation) {
        vscode.window.showInformationMessage(`ninetyten: ${result.error}`);
        return result;
      }
      const where = params.staged ? 'staged' : logic.describeRange(fileOf(params));
      await showResult(params.staged ? 'Staged changes' : 'Change', 'md', logic.resultMarkdown('explainChange', result, { where }));
      return result;
    }
    case SERVER.report: {
      const since = (given && given.since) || settings().get('report.since', 'today');
      const result = await request('building the cost report…', command, { since });
      if (!result) return undefined;
      if (result.error) {
        vscode.window.showErrorMessage(`ninetyten: ${result.error}`);
        return result;
      }
      await showResult(`Cost report ${since}`, 'txt', String(result.text || ''));
      return result;
    }
    case SERVER.toggleOffline: {
      const running = await startClient();
      if (!running) return undefined;
      const result = await running.sendRequest('workspace/executeCommand', { command, arguments: given ? [given] : [] });
      if (result && typeof result.offline === 'boolean') {
        lastServed = { ...(lastServed || {}), offline: result.offline };
        renderStatus();
      } else if (result && result.error) {
        vscode.window.showErrorMessage(`ninetyten: ${result.error}`);
      }
      return result;
    }
    case SERVER.trustPolicy:
      return trustPolicyCommand();
    case SERVER.untrustPolicy:
      return untrustPolicyCommand();
    default:
      return undefined;
  }
}

function activate(context) {
  extensionContext = context;
  output = vscode.window.createOutputChannel('ninetyten', { log: true });
  status = vscode.window.createStatusBarItem('ninetyten.status', vscode.StatusBarAlignment.Right, 100);
  status.name = 'ninetyten';
  context.subscriptions.push(output, status, resultsChanged);

  context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(RESULT_SCHEME, {
    onDidChange: resultsChanged.event,
    provideTextDocumentContent: (uri) => results.get(uri.toString()) || '',
  }));
  // Results of closed tabs are not needed again.
  context.subscriptions.push(vscode.workspace.onDidCloseTextDocument((document) => {
    if (document.uri.scheme === RESULT_SCHEME) results.delete(document.uri.toString());
  }));

  const palette = {
    'ninetyten.client.explainSelection': () => runServerCommand(SERVER.explain, []),
    'ninetyten.client.refactorSelection': () => runServerCommand(SERVER.refactor, []),
    'ninetyten.client.askSelection': () => runServerCommand(SERVER.ask, []),
    'ninetyten.client.explainStaged': () => runServerCommand(SERVER.explainChange, [{ staged: true }]),
    'ninetyten.client.showReport': () => runServerCommand(SERVER.report, []),
    'ninetyten.client.toggleOffline': () => runServerCommand(SERVER.toggleOffline, []),
    'ninetyten.client.restartServer': () => restartClient(),
    'ninetyten.client.trustPolicy': () => trustPolicyCommand(),
    'ninetyten.client.untrustPolicy': () => untrustPolicyCommand(),
    'ninetyten.client.pullModels': () => pullModelsCommand(),
    'ninetyten.client.acceptNextWord': () => acceptPart('editor.action.inlineSuggest.acceptNextWord'),
    'ninetyten.client.acceptNextLine': () => acceptPart('editor.action.inlineSuggest.acceptNextLine'),
  };
  for (const [id, handler] of Object.entries(palette)) {
    context.subscriptions.push(vscode.commands.registerCommand(id, handler));
  }

  // Several settings written at once (a pull saves two models) restart the server once.
  let restartTimer;
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((event) => {
    if (!RESTART_SETTINGS.some((key) => event.affectsConfiguration(key))) return;
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => restartClient(), 500);
  }));
  // Trust unlocks the workspace's .venv and its settings: start again with them.
  context.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(() => restartClient()));

  context.subscriptions.push(vscode.window.onDidChangeActiveTextEditor((editor) => warm(editor)));

  renderStatus();
  startClient().then(() => warm(vscode.window.activeTextEditor));
}

async function deactivate() {
  await stopClient();
}

module.exports = { activate, deactivate };
