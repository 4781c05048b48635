"""A scripted editor session against the real server, over stdio.

Starts `ninetyten serve`, opens examples/sample.py, asks for an inline completion
where an editor would, and prints what the editor would show.

    python examples/demo.py [--model PATH|ID] [--file F --line N --col N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

HERE = Path(__file__).resolve().parent


def default_cursor(text: str) -> tuple[int, int]:
    """The end of the last non-blank line: where a developer would be typing."""
    lines = text.split("\n")
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip():
            return index, len(lines[index])
    return 0, 0


async def run(args: argparse.Namespace) -> int:
    path = Path(args.file).resolve()
    text = path.read_text(encoding="utf-8")
    line, col = (args.line - 1, args.col - 1) if args.line else default_cursor(text)

    client = LanguageClient("ninetyten-demo", "1")
    served: list[dict] = []
    logs: list[str] = []

    @client.feature("ninetyten/served")
    def on_served(params) -> None:
        # pygls hands custom notifications over as a namedtuple.
        served.append(params if isinstance(params, dict) else params._asdict())

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(params: types.LogMessageParams) -> None:
        logs.append(params.message)

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def on_message(params: types.ShowMessageParams) -> None:
        print(f"server says: {params.message}")

    command = [sys.executable, "-m", "lsp_server", "serve"]
    if args.model:
        command += ["--model", args.model]
    started = time.perf_counter()
    await client.start_io(*command)
    result = await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities()
                ),
                window=types.WindowClientCapabilities(work_done_progress=False),
            ),
            root_uri=path.parent.as_uri(),
        )
    )
    client.initialized(types.InitializedParams())
    init_ms = (time.perf_counter() - started) * 1000
    print(f"server: {result.server_info.name} {result.server_info.version}, initialize answered in {init_ms:.0f} ms")

    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    position = types.Position(line=line, character=col)
    request_started = time.perf_counter()
    completion = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    wall_ms = (time.perf_counter() - request_started) * 1000
    await asyncio.sleep(0.05)  # let the served notification arrive
    for message in logs:
        print(f"server log: {message}")

    current_line = text.split("\n")[line]
    print(f"\n{path.name}, line {line + 1}, column {col + 1}:")
    print(f"  {current_line[:col]}▌{current_line[col:]}")
    items = completion.items if completion is not None else []
    if not items:
        print("\nno completion offered")
    else:
        print("\nghost text the editor shows:")
        for row in items[0].insert_text.split("\n"):
            print(f"  │ {row}")
    if served:
        info = served[-1]
        print(
            f"\nserved by: tier={info['tier']} backend={info['backend']} model={info['model']}\n"
            f"tokens:    prompt={info['prompt_tokens']} (cached {info['cached_prompt_tokens']}) "
            f"completion={info['completion_tokens']} stop={info['stop_reason']}\n"
            f"latency:   {info['latency_ms']} ms in the server, {wall_ms:.0f} ms as the editor saw it "
            f"(includes waiting for the model to load)"
        )
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return 0 if items else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", default=str(HERE / "sample.py"))
    parser.add_argument("--line", type=int, help="1-based line (default: end of the last non-blank line)")
    parser.add_argument("--col", type=int, help="1-based column")
    parser.add_argument("--model", help="a .gguf path or catalog id (default: the embedded model)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
