"""`recipecheck validate` through click's CliRunner on the command object."""
import json

import pytest

pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from recipecheck.runtime.experiments.cli import validate_command  # noqa: E402


def test_command_name():
    assert validate_command.name == "validate"


def test_json_schema_for_two_codes():
    result = CliRunner().invoke(validate_command, ["RC102", "RC105", "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    exps = payload["experiments"]
    assert [e["rule"] for e in exps] == ["RC102", "RC105"]
    for e in exps:
        assert {"rule", "claim", "buggy", "fixed", "verdict", "seconds"} <= set(e)
        assert e["verdict"] in ("pass", "weak", "fail")
        assert len(e["seeds"]) == 3  # several seeds by default
        assert isinstance(e["buggy"], dict) and isinstance(e["fixed"], dict)
        assert isinstance(e["seconds"], float)


def test_table_output_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    result = CliRunner().invoke(validate_command, ["RC303", "--quick", "--no-progress", "--plot", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "RC303" in result.output and "pass" in result.output
    assert "1 experiment in" in result.output and "1 experiments" not in result.output
    assert len(list(tmp_path.glob("*.png"))) == 1


def test_unknown_code_is_usage_error():
    result = CliRunner().invoke(validate_command, ["RC999"])
    assert result.exit_code == 2


def test_failing_claim_exits_1(monkeypatch):
    from recipecheck.runtime.experiments import base

    (exp,) = base.select(["RC105"])
    monkeypatch.setattr(exp, "fn", lambda seed, device: base.Result({"update_over_large_batch": 1.0},
                                                                    {"update_over_large_batch": 1.0}, "fail", "forced"))
    result = CliRunner().invoke(validate_command, ["RC105", "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["experiments"][0]["verdict"] == "fail"


def test_list():
    result = CliRunner().invoke(validate_command, ["sanity", "--list"])
    assert result.exit_code == 0 and "sanity:initial-loss" in result.output


def test_json_lists_every_catalog_rule_with_an_experiment_or_a_reason():
    from recipecheck.runtime.experiments.coverage import catalog_codes

    result = CliRunner().invoke(validate_command, ["RC9", "RC105", "--format", "json", "--quick"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rules = {r["rule"]: r for r in payload["rules"]}
    assert set(rules) == {c for c in catalog_codes() if c.startswith(("RC9", "RC105"))}
    assert rules["RC105"]["experiment"] == "accumulation_unscaled"
    assert "no claim about training" in rules["RC900"]["reason"]
    assert [e["rule"] for e in payload["experiments"]] == ["RC105"]


def test_list_covers_the_whole_catalog():
    from recipecheck.runtime.experiments.coverage import catalog_codes

    result = CliRunner().invoke(validate_command, ["--list"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert set(catalog_codes()) <= listed
    assert "RC901" in listed and "not measured:" in result.output


def test_seeds_option_reports_each_seed():
    result = CliRunner().invoke(validate_command, ["RC108", "--seeds", "2", "--format", "json"])
    assert result.exit_code == 0, result.output
    (exp,) = json.loads(result.stdout)["experiments"]
    assert [s["seed"] for s in exp["seeds"]] == [0, 1]
    assert json.loads(result.stdout)["seeds"] == [0, 1]


def test_quick_runs_one_seed_and_prints_the_total_time():
    result = CliRunner().invoke(validate_command, ["RC107", "--quick", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "total: 1 experiment x 1 seed in" in result.output


def test_unmeasured_rule_alone_is_not_a_usage_error():
    result = CliRunner().invoke(validate_command, ["RC900", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "not measured" in result.output


def test_weak_verdict_does_not_fail_the_run(monkeypatch):
    from recipecheck.runtime.experiments import base

    (exp,) = base.select(["RC105"])
    monkeypatch.setattr(exp, "fn", lambda seed, device: base.Result(
        {"update_over_large_batch": 1.0}, {"update_over_large_batch": 2.0}, "pass" if seed < 2 else "fail", "forced"))
    result = CliRunner().invoke(validate_command, ["RC105", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["experiments"][0]["verdict"] == "weak"


def test_write_evidence(tmp_path):
    result = CliRunner().invoke(validate_command, ["RC107", "RC108", "--seeds", "2", "--no-progress",
                                                   "--write-evidence", str(tmp_path)])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "EVIDENCE.md").read_text()
    assert "| RC107 |" in md and "| 2/2 |" in md and "## Not measured" in md and "**RC900**" in md
    ns: dict = {}
    exec((tmp_path / "_evidence_data.py").read_text(), ns)
    assert ns["EVIDENCE"]["RC108"]["manual"].startswith("Measured (`recipecheck validate RC108`, seeds 0-1)")


def test_jobs_gives_the_same_numbers_as_one_process():
    args = ["RC105", "RC108", "RC303", "--seeds", "2", "--format", "json"]
    one = json.loads(CliRunner().invoke(validate_command, args).stdout)["experiments"]
    two = json.loads(CliRunner().invoke(validate_command, args + ["--jobs", "2"]).stdout)["experiments"]
    assert [e["rule"] for e in two] == ["RC105", "RC108", "RC303"]
    assert [(e["buggy"], e["fixed"], e["verdict"]) for e in one] == [(e["buggy"], e["fixed"], e["verdict"]) for e in two]
