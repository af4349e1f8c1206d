"""Prometheus alert rules (dashboards/alerts/): promtool accepts them, every alert has a promtool unit test that
fires it beside series that must not, and every alert has the annotations and runbook paragraph users read."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "dashboards" / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.test.yml"))


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: .ci/run installs Debian's prometheus package, which brings it")
    return path


def _alerts() -> dict[str, dict]:
    return {r["alert"]: r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]
            for r in g["rules"] if "alert" in r}


def test_promtool_checks_the_rules():
    assert RULE_FILES
    out = subprocess.run([_promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_pass():
    assert TEST_FILES
    out = subprocess.run([_promtool(), "test", "rules", *map(str, TEST_FILES)], capture_output=True, text=True,
                         cwd=ALERTS / "tests")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(TEST_FILES), out.stdout


def test_every_alert_is_fired_by_a_test_beside_series_that_must_not_fire_it():
    fired, covered_files = set(), set()
    for f in TEST_FILES:
        doc = yaml.safe_load(f.read_text())
        covered_files |= {(f.parent / r).resolve() for r in doc["rule_files"]}
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check["exp_alerts"]
                if not expected:
                    continue
                fired.add(check["alertname"])
                # the case also holds series of another label set that the alert must leave alone
                got = {tuple(sorted(e["exp_labels"].items())) for e in expected}
                assert len(case["input_series"]) > len(got), f"{case['name']}: no series that must not fire"
    assert {f.resolve() for f in RULE_FILES} <= covered_files
    assert set(_alerts()) - fired == set(), "alerts no promtool test fires"


def test_every_alert_has_summary_description_severity_and_a_runbook_paragraph():
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^## (.+)$", runbooks, re.M)}
    for name, rule in _alerts().items():
        ann = rule.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), name
        assert rule.get("labels", {}).get("severity") in ("page", "ticket", "warning"), name
        assert ann.get("runbook") == f"docs/runbooks.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbooks.md has no section '## {name}'"
