"""`ninetyten report --html` opened in headless Chromium: it renders, loads nothing, logs no
error, and every figure it shows is the figure the JSON report prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lsp_server.ledger import Ledger
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.shipper import Shipper
from tests.ledger_rows import random_rows
from tests.vscode_harness import chromium_binary

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHARTS = [
    "Spend and savings by task type",
    "Spend and savings by week",
    "Share of requests by tier",
    "Escalation rate by task type",
    "Why requests escalated",
    "Acceptance by tier",
    "Acceptance by model",
]

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason="Chromium is not installed (make system-deps)")


def _cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {key: value for key, value in os.environ.items() if key != "NINETYTEN_TEAM_LEDGER_URL"}
    full.update(NINETYTEN_HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def _parse(field: str, text: str) -> float | None:
    """A figure as written on the page, back to a number (None for "-")."""
    if text == "-":
        return None
    number = float(re.sub(r"[$,%]", "", text))
    return number / 100 if field.endswith("_rate") else number


def _tolerance(field: str, text: str) -> float:
    """Half a unit in the last place written."""
    if field.endswith("_rate"):
        return 0.005
    decimals = len(text.split(".")[1].rstrip("%")) if "." in text else 0
    return 0.5 * 10**-decimals + 1e-12


def _expected(data: dict[str, Any], group: str, key: str, field: str) -> Any:
    if group == "totals":
        return data["totals"][field]
    if group == "escalation_reasons":
        return next(r for r in data[group] if r["reason"] == key)[field]
    if group == "counterfactual":
        return next(u for u in data[group] if (u["code"] or "-") == key)[field]
    return next(g for g in data[group] if g["key"] == key)[field]


def _open(page_file: Path, shot: Path) -> tuple[list[dict[str, str]], list[str], list[str], list[str]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(shot), full_page=True)
            figures = page.eval_on_selector_all(
                "[data-field]",
                "els => els.map(e => ({group: e.dataset.group, key: e.dataset.key, "
                "field: e.dataset.field, text: e.textContent}))",
            )
            charts = page.eval_on_selector_all("svg.chart", "els => els.map(e => e.getAttribute('aria-label'))")
            titles = page.eval_on_selector_all("svg.chart title", "els => els.map(e => e.textContent)")
        finally:
            browser.close()
    return figures, charts, titles, errors + [url for url in requests if url != page_file.as_uri()]


def _check(page_file: Path, data: dict[str, Any], shot: Path) -> list[dict[str, str]]:
    figures, charts, titles, problems = _open(page_file, shot)
    assert problems == []  # no console error or warning, no request but the page itself
    assert shot.stat().st_size > 50_000  # a page with charts, not a blank one
    assert charts == CHARTS
    for figure in figures:
        want = _expected(data, figure["group"], figure["key"], figure["field"])
        got = _parse(figure["field"], figure["text"])
        if want is None or got is None:
            assert want is None and got is None, figure
        else:
            assert abs(got - want) <= _tolerance(figure["field"], figure["text"]), (figure, want)
    shown = {(f["group"], f["key"], f["field"]) for f in figures}
    # Every group of every dimension, with its money and its rates, is on the page.
    for dimension in ("task", "tier", "model", "repo", "week"):
        for group in data[f"by_{dimension}"]:
            for field in ("cost_usd", "frontier_cost_usd", "savings_usd", "escalation_rate", "acceptance_rate"):
                assert (f"by_{dimension}", group["key"], field) in shown
    for field in ("cost_usd", "frontier_cost_usd", "savings_usd", "savings_pct", "escalation_rate", "requests"):
        assert ("totals", "total", field) in shown
    for reason in data["escalation_reasons"]:
        assert ("escalation_reasons", reason["reason"], "attempts") in shown
    for use in data["counterfactual"]:
        assert ("counterfactual", use["code"] or "-", "attempts") in shown
    # The charts carry the same numbers: the paid and frontier bars of each task.
    by_text = {(f["group"], f["key"], f["field"]): f["text"] for f in figures}
    for group in data["by_task"]:
        assert f"{group['key']}, paid: {by_text[('by_task', group['key'], 'cost_usd')]}" in titles
        assert (
            f"{group['key']}, on the frontier alone: {by_text[('by_task', group['key'], 'frontier_cost_usd')]}"
        ) in titles
    return figures


def test_html_report_in_chromium_shows_the_json_figures(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    with Ledger(home / "ledger.sqlite3") as ledger:
        for row in random_rows(3, 400, "dev"):
            ledger.record(row)
    page_file = tmp_path / "report.html"
    done = _cli(home, "report", "--since", "all", "--html", str(page_file), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    figures = _check(page_file, data, tmp_path / "report.png")
    assert len(figures) > 300
    text = page_file.read_text()
    assert "this machine's ledger" in text and "Claude Sonnet 4.6 list price" in text
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_team_html_report(tmp_path: Path, team_settings: TeamLedgerSettings):
    home = tmp_path / "home"
    home.mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        db = tmp_path / f"{name}.sqlite3"
        with Ledger(db) as ledger:
            for row in random_rows(seed, 150, name):
                ledger.record(row)
        shipper = Shipper(db, team_settings)
        shipper.ship_now()
        shipper.close()
    page_file = tmp_path / "team.html"
    done = _cli(
        home,
        "report",
        "--team",
        "--since",
        "all",
        "--html",
        str(page_file),
        "--json",
        env={"NINETYTEN_TEAM_LEDGER_URL": team_settings.url or ""},
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["source"] == "team" and data["totals"]["attempts"] == 300
    _check(page_file, data, tmp_path / "team.png")
    assert "the team ledger" in page_file.read_text()


def test_empty_period_page(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    page_file = tmp_path / "empty.html"
    done = _cli(home, "report", "--html", str(page_file))
    assert done.returncode == 0 and f"wrote {page_file}" in done.stderr and done.stdout == ""
    assert "No requests recorded in this period." in page_file.read_text()
