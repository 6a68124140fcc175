"""The alerting rules in deploy/prometheus are valid and raise each alert when they should.

``promtool`` (Debian's ``prometheus`` package; ``make test`` installs it) checks the rules and
runs alerts.test.yml: series for every alert firing and not firing. Both the stack's Prometheus
and compose load the same file, so these are the rules that run.
"""

from __future__ import annotations

import shutil
import subprocess

import yaml

from core.settings import load_settings
from tests.flows import ROOT
from vidflow.stack.prometheus import ALERT_RULES, Prometheus

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
EXPECTED = {
    "VidflowProcessDown",
    "VidflowInputLagGrowing",
    "VidflowDeadLetters",
    "VidflowJobTooLong",
    "VidflowFailureRatioHigh",
    "VidflowStorageLow",
    "VidflowProjectionBehind",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary is not None, "promtool is missing: `make test` installs Debian's prometheus"
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def test_promtool_accepts_the_rules() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_each_alert_fires_and_stays_silent_as_its_tests_say() -> None:
    done = _promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_defined_and_each_is_tested() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == EXPECTED
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    silent = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if not case["exp_alerts"]
    }
    assert fired == EXPECTED
    assert silent == EXPECTED


def test_the_stack_and_compose_load_the_same_rules() -> None:
    assert ALERT_RULES.resolve() == RULES.resolve()
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    deployed = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert deployed["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_the_stack_prometheus_config_names_the_rules_file() -> None:
    config = Prometheus().config(load_settings({}))
    assert config["rule_files"] == [str(RULES.resolve())]
