"""`ninetyten models use`: the user's choice of completion and chat model, for every ninetyten
process on this machine (saved in models.toml in the user config dir, see local_models/choice.py)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EXIT_USAGE = 2


def register(actions: Any) -> None:
    use = actions.add_parser(
        "use",
        help="choose the local models every ninetyten process on this machine uses",
        description="Save which model serves completions (MODEL) and which serves explain, refactor, ask and "
        "commit messages (--chat) in models.toml in your config dir, for the language servers, the CLI and the "
        "git hook. `default` goes back to the built-in model (for --chat: to the completion model). --model, "
        "NINETYTEN_MODEL and an editor's model setting still win over this choice.",
    )
    use.add_argument("model", nargs="?", metavar="ID|REPO:FILE|PATH", help="the completion model")
    use.add_argument("--chat", metavar="ID|REPO:FILE|PATH", help="the chat model")


def run(args: argparse.Namespace) -> int:
    """ModelError (a model that is not pulled, not a GGUF) propagates: nothing is saved then."""
    from local_models.choice import choice_path, save_choices
    from local_models.resolve import CHAT_MODEL_ENV, MODEL_ENV

    wanted = [(task, value) for task, value in (("completion", args.model), ("chat", args.chat)) if value]
    if not wanted:
        print("ninetyten: name a model: `ninetyten models use ID` (completions) and/or --chat ID", file=sys.stderr)
        return EXIT_USAGE
    choice = save_choices(dict(wanted))  # type: ignore[arg-type]
    print(f"completion  {choice.completion or 'the built-in model'}")
    print(f"chat        {choice.chat or 'the completion model'}")
    print(f"saved in {choice_path()}")
    pinned = [name for name in (MODEL_ENV, CHAT_MODEL_ENV) if os.environ.get(name, "").strip()]
    if pinned:
        print(f"note: {' and '.join(pinned)} in this environment win over this choice")
    return 0
