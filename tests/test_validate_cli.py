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
        assert e["verdict"] in ("pass", "fail")
        assert isinstance(e["buggy"], dict) and isinstance(e["fixed"], dict)
        assert isinstance(e["seconds"], float)


def test_table_output_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    result = CliRunner().invoke(validate_command, ["RC303", "--no-progress", "--plot", str(tmp_path)])
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
