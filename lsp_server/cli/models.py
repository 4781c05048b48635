"""`ninetyten models list|path|verify|pull|use|rm|recommend`: argument parsing and output.

The work is done in local_models (catalog, pull, pulled, recommend, machine); this module
only parses arguments and prints. Imports stay light at module level: `ninetyten --help`
must not load llama.cpp or huggingface_hub.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from lsp_server.cli import models_use

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
LIST_CTX = 4096  # the context the RAM column assumes: the server's default n_ctx


def register(subparsers: Any) -> None:
    """Add `models` to the `ninetyten` command's subparsers."""
    models = subparsers.add_parser(
        "models",
        help="list, pull, remove, verify and recommend local models",
        description="Known models, what is pulled, downloads from Hugging Face (verified), and which models "
        "suit this machine.",
    )
    actions = models.add_subparsers(dest="models_command", metavar="ACTION")
    listing = actions.add_parser("list", help="the model catalog and what is pulled (the default action)")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    path = actions.add_parser("path", help="print the path of the model that would be loaded")
    path.add_argument("model", nargs="?", metavar="PATH|ID", help="default: what `serve` would load")
    verify = actions.add_parser("verify", help="check a model file's GGUF header and SHA-256")
    verify.add_argument("model", nargs="?", metavar="PATH|ID", help="default: what `serve` would load")
    pull = actions.add_parser(
        "pull",
        help="download models from Hugging Face, verified by SHA-256",
        description="Download catalog models (ID or ID:QUANT) or any GGUF on Hugging Face (REPO:FILE) into the "
        "Hugging Face cache, check the SHA-256 against the catalog or the hub's LFS metadata, and record them "
        "so `--model ID` finds them. Honours HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, HF_HUB_CACHE and the "
        "usual proxy variables.",
    )
    pull.add_argument("models", nargs="+", metavar="ID|ID:QUANT|REPO:FILE")
    pull.add_argument("--revision", metavar="REV", help="branch, tag or commit (default: the catalog's, else main)")
    pull.add_argument("--no-progress", action="store_true", help="no progress bar")
    models_use.register(actions)
    remove = actions.add_parser(
        "rm",
        help="delete pulled models to free space",
        description="Delete pulled files (every pulled file of a catalog id, one REPO:FILE, "
        "or a path) and their records.",
    )
    remove.add_argument("models", nargs="+", metavar="ID|REPO:FILE|PATH")
    recommend = actions.add_parser(
        "recommend",
        help="the best completion and chat models for this machine, and how to pull them",
        description="Pick the best completion model that keeps a keystroke's suggestion within the latency "
        "budget and the best chat model that writes faster than one reads, from RAM, cores and the GPU "
        "llama.cpp reports; explain why; print the pull command.",
    )
    recommend.add_argument("--json", action="store_true", help="print one JSON object")
    recommend.add_argument(
        "--machine",
        metavar="DESC",
        help="describe a machine instead of detecting this one, e.g. ram=16G,cores=8,gpu_mem=0 "
        "(keys: ram, cores, gpu_mem, gpu, shared, bw, gpu_bw)",
    )


def run(args: argparse.Namespace) -> int:
    from local_models import ModelError

    action = getattr(args, "models_command", None) or "list"
    handlers = {
        "list": _list,
        "path": _path,
        "verify": _verify,
        "pull": _pull,
        "use": models_use.run,
        "rm": _rm,
        "recommend": _recommend,
    }
    try:
        return handlers[action](args)
    except ModelError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE


# --- list ------------------------------------------------------------------------------


def _gb(n: int | float) -> str:
    from local_models.pull import human_bytes

    return human_bytes(n)


def _list(args: argparse.Namespace) -> int:
    from local_models import load_catalog, models_dir
    from local_models.paths import hub_cache_dir
    from local_models.pulled import all_records
    from local_models.recommend import memory_need

    records = all_records()
    catalog = load_catalog()
    pulled_by_id: dict[str, list[str]] = {}
    for record in records:
        if record.model_id and record.intact():
            pulled_by_id.setdefault(record.model_id, []).append(record.quant or "?")
    rows: list[dict[str, Any]] = []
    for model_id, entry in catalog.items():
        model_file = entry.default_file()
        manual = [f.quant for f in entry.files if (models_dir() / f.file).is_file()]
        pulled = sorted(set(pulled_by_id.get(model_id, []) + manual))
        rows.append(
            {
                "id": model_id,
                "for": ",".join(r.value for r in entry.roles),
                "params": entry.params,
                "quant": model_file.quant,
                "download": model_file.size,
                "ram": memory_need(entry, model_file, LIST_CTX),
                "context": entry.context_length,
                "license": entry.license,
                "pulled": pulled,
                "files": [
                    {"quant": f.quant, "repo": f.repo, "file": f.file, "size": f.size, "sha256": f.sha256}
                    for f in entry.files
                ],
            }
        )
    pulled_rows = [
        {
            "id": r.model_id,
            "spec": r.spec,
            "quant": r.quant,
            "size": r.size,
            "intact": r.intact(),
            "verified_against": r.verified_against,
            "sha256": r.sha256,
            "path": str(r.path),
        }
        for r in records
    ]
    total = sum(r.size for r in records if r.intact())
    if args.json:
        print(
            json.dumps(
                {
                    "models": rows,
                    "pulled": pulled_rows,
                    "pulled_bytes": total,
                    "hub_cache": str(hub_cache_dir()),
                    "models_dir": str(models_dir()),
                },
                indent=2,
            )
        )
        return 0
    header = ("id", "for", "params", "quant", "download", f"RAM@{LIST_CTX // 1024}k", "context", "license", "present")
    table: list[tuple[str, ...]] = [
        (
            str(r["id"]),
            str(r["for"]),
            str(r["params"]),
            str(r["quant"]),
            _gb(r["download"]),
            _gb(r["ram"]),
            str(r["context"]),
            str(r["license"]),
            ",".join(r["pulled"]) or "-",
        )
        for r in rows
    ]
    pulled_header = ("pulled", "quant", "size", "verified against", "path")
    pulled_table = [
        (
            r.model_id or r.spec,
            r.quant or "-",
            _gb(r.size),
            r.verified_against if r.intact() else "CHANGED since verified: pull again",
            str(r.path),
        )
        for r in records
    ]
    if not sys.stdout.isatty():  # scripts get tab-separated lines
        print("\t".join(header))
        for row in table:
            print("\t".join(row))
        if pulled_table:
            print()
            print("\t".join(pulled_header))
            for pulled_row in pulled_table:
                print("\t".join(pulled_row))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    known = Table(title="Known models (`ninetyten models pull ID`; RAM is an estimate at the default context)")
    for column in header:
        known.add_column(column)
    for row in table:
        known.add_row(*row)
    console.print(known)
    if pulled_table:
        present = Table(title=f"Pulled: {_gb(total)} in {hub_cache_dir()} (`ninetyten models rm ID` frees it)")
        for column in pulled_header:
            present.add_column(column)
        for pulled_row in pulled_table:
            present.add_row(*pulled_row)
        console.print(present)
    else:
        console.print(f"Nothing pulled yet (files go to {hub_cache_dir()}).")
    return 0


# --- path, verify ----------------------------------------------------------------------


def _path(args: argparse.Namespace) -> int:
    from local_models import resolve_model

    print(resolve_model(args.model, None, progress=True).path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from local_models import resolve_model, verify_model
    from local_models.pulled import record_for_path

    resolved = resolve_model(args.model, None, progress=True)
    record = record_for_path(resolved.path)
    expected = resolved.entry.expected_sha256(resolved.path.name) if resolved.entry else None
    expected = expected or (record.sha256 if record else None)
    result = verify_model(resolved.path, expected, progress=True)
    if result.sha256_checked:
        against = (
            "the catalog"
            if resolved.entry and resolved.entry.expected_sha256(resolved.path.name)
            else "the digest recorded when it was pulled"
        )
        checked = f"SHA-256 matches {against}"
    else:
        checked = "no known SHA-256 to compare against"
    print(
        f"{resolved.path}: GGUF v{result.gguf_version}, {result.tensor_count} tensors, "
        f"{result.size / 1e6:.1f} MB; {checked}"
    )
    return 0


# --- pull, rm --------------------------------------------------------------------------


def _pull(args: argparse.Namespace) -> int:
    from local_models import ModelError
    from local_models.pull import parse_target, pull

    failed = 0
    for spec in args.models:
        try:
            target = parse_target(spec, revision=args.revision)
            result = pull(target, progress=not args.no_progress)
        except ModelError as error:
            print(f"ninetyten: {error}", file=sys.stderr)
            failed += 1
            continue
        except KeyboardInterrupt:
            print(
                f"\nninetyten: interrupted; nothing of {spec} was kept (run the same command to start again)",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        record = result.record
        name = record.model_id or record.spec
        quant = f" {record.quant.upper()}" if record.quant else ""
        if result.downloaded:
            print(
                f"pulled {name}{quant} ({_gb(record.size)}), SHA-256 verified against "
                f"{'the catalog' if record.verified_against == 'catalog' else 'the hub'}: {record.path}"
            )
        else:
            print(f"{name}{quant} is already pulled ({_gb(record.size)}): {record.path}")
        use = record.model_id or record.spec
        print(f"  use it: ninetyten serve --model {use}   (or NINETYTEN_MODEL={use})")
    return EXIT_FAILURE if failed else 0


def _rm(args: argparse.Namespace) -> int:
    from local_models import ModelError, canonical_id, get_entry, models_dir
    from local_models.embedded import stamp_path
    from local_models.pull import remove
    from local_models.pulled import all_records, read_record, record_for_path

    failed = 0
    for spec in args.models:
        freed, removed = 0, []
        model_id = canonical_id(spec)
        path = Path(spec).expanduser()
        if model_id is not None and not path.exists():
            entry = get_entry(model_id)
            for record in all_records():
                if record.model_id == model_id:
                    freed += remove(record)
                    removed.append(str(record.path))
            for model_file in entry.files:  # files put into the models directory by hand, or assembled
                candidate = models_dir() / model_file.file
                if candidate.is_file():
                    freed += candidate.stat().st_size
                    candidate.unlink()
                    stamp_path(candidate).unlink(missing_ok=True)
                    removed.append(str(candidate))
        elif ":" in spec and "/" in spec.partition(":")[0] and not path.exists():
            repo, _, file_name = spec.partition(":")
            found = read_record(repo, file_name)
            if found is not None:
                freed += remove(found)
                removed.append(str(found.path))
        elif path.exists():
            found = record_for_path(path)
            inside = os.path.abspath(path).startswith(os.path.abspath(models_dir()) + os.sep)
            if found is not None:
                freed += remove(found)
                removed.append(str(found.path))
            elif inside and path.is_file():
                freed += path.stat().st_size
                path.unlink()
                stamp_path(path).unlink(missing_ok=True)
                removed.append(str(path))
            else:
                print(
                    f"ninetyten: {path} is not a model ninetyten pulled or keeps in {models_dir()}; "
                    "delete it yourself if you mean to.",
                    file=sys.stderr,
                )
                failed += 1
                continue
        if not removed:
            error = ModelError(
                f"Nothing to remove for {spec!r}: it is not pulled.", "`ninetyten models list` shows what is."
            )
            print(f"ninetyten: {error}", file=sys.stderr)
            failed += 1
            continue
        for item in removed:
            print(f"removed {item}")
        print(f"freed {_gb(freed)}")
    return EXIT_FAILURE if failed else 0


# --- recommend -------------------------------------------------------------------------


def _recommend(args: argparse.Namespace) -> int:
    from local_models.machine import detect_machine, parse_machine
    from local_models.recommend import recommend, summary_lines

    machine = parse_machine(args.machine) if args.machine else detect_machine()
    rec = recommend(machine)
    if args.json:
        print(rec.model_dump_json(indent=2))
        return 0
    print("\n".join(summary_lines(rec)))
    return 0


def doctor_lines() -> list[str]:
    """What `doctor` adds when the embedded model is in use: this machine's recommendation."""
    from local_models.machine import detect_machine
    from local_models.recommend import recommend, summary_lines

    lines = ["recommended    the embedded model is for trying things out; for real use on this machine:"]
    lines += [f"  {line}" for line in summary_lines(recommend(detect_machine()))]
    return lines
