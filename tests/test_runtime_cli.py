"""`recipecheck run`: unmodified scripts under the monitor (in-process, like python -m cProfile)."""

from __future__ import annotations

import json
import textwrap

import pytest

torch = pytest.importorskip("torch")
from click.testing import CliRunner  # noqa: E402

from recipecheck.runtime.cli import run_command  # noqa: E402
from recipecheck.runtime.launcher import run_script  # noqa: E402

TRAIN = textwrap.dedent('''
    import sys, argparse, torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--shuffle", type=int, default=1)
    p.add_argument("--exit", type=int, default=0)
    p.add_argument("--raise", dest="rais", action="store_true")
    p.add_argument("--interrupt", action="store_true")
    p.add_argument("--nozero", action="store_true")
    p.add_argument("--sched", default="")
    p.add_argument("--noeval", action="store_true")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--save", default="")
    a = p.parse_args()
    torch.manual_seed(0)
    x = torch.randn(a.n, 10)
    y = (x[:, 0] > 0).long()
    dl = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=bool(a.shuffle))
    vl = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=32)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sch = torch.optim.lr_scheduler.StepLR(opt, 5) if a.sched else None
    crit = nn.CrossEntropyLoss()
    for epoch in range(a.epochs):
        model.train()
        for xb, yb in dl:
            if not a.nozero:
                opt.zero_grad()
            loss = crit(model(xb), yb)
            loss.backward()
            opt.step()
            if sch and a.sched == "batch":
                sch.step()
        if sch and a.sched == "epoch":
            sch.step()
        if not a.noeval:
            model.eval()
        with torch.no_grad():
            for xb, yb in vl:
                model(xb)
        if a.rais and epoch == 1:
            raise ValueError("boom from the script")
        if a.interrupt and epoch == 1:
            raise KeyboardInterrupt
    if a.save:
        torch.save({"state": model.state_dict(), "rng": torch.get_rng_state()}, a.save)
    print("ARGV", sys.argv, "NAME", __name__)
    sys.exit(a.exit)
''')


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(TRAIN)
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _globals_snapshot():
    import torch.nn.modules.module as M
    import torch.optim.optimizer as O
    from torch.utils.data import DataLoader

    return ([len(d) for d in (M._global_forward_hooks, M._global_forward_pre_hooks, M._global_backward_hooks,
                              M._global_forward_hooks_always_called, O._global_optimizer_pre_hooks,
                              O._global_optimizer_post_hooks)],
            torch.Tensor.__dict__["backward"], DataLoader.__dict__["__iter__"])


def _report(d):
    return json.loads((d / "report.json").read_text())


def test_run_preserves_argv_exit_code_and_writes_report(script, tmp_path, capsys):
    before = _globals_snapshot()
    rep = tmp_path / "rep"
    code = run_script(str(script), ["--epochs", "2", "--exit", "3"], report=str(rep), summary=False)
    assert code == 3
    out = capsys.readouterr().out
    assert f"ARGV ['{script}', '--epochs', '2', '--exit', '3'] NAME __main__" in out
    assert _globals_snapshot() == before
    data = _report(rep)
    assert set(data) == {"findings", "series", "run"}
    assert data["run"]["exit_code"] == 3 and data["run"]["steps"] == 16 and data["run"]["epochs"] == 2
    assert data["run"]["argv"][1:] == ["--epochs", "2", "--exit", "3"]
    assert data["series"]["loss"]["step"][:2] == [1, 2]
    assert "lr/group0" in data["series"]
    assert [f for f in data["findings"] if f["severity"] != "info"] == []
    assert (rep / "report.html").exists()


def test_run_script_exception_is_printed_and_exit_code_1(script, tmp_path, capsys):
    before = _globals_snapshot()
    rep = tmp_path / "rep"
    code = run_script(str(script), ["--raise"], report=str(rep), summary=True)
    assert code == 1
    err = capsys.readouterr().err
    assert "ValueError: boom from the script" in err and "Traceback" in err
    assert "runtime/launcher.py" not in err  # the traceback starts in the script
    assert _globals_snapshot() == before
    data = _report(rep)
    assert data["run"]["exception"].startswith("ValueError") and data["run"]["steps"] == 16


def test_run_keyboard_interrupt_still_reports(script, tmp_path):
    before = _globals_snapshot()
    code = run_script(str(script), ["--interrupt"], report=str(tmp_path / "rep"), summary=False)
    assert code == 130
    assert _globals_snapshot() == before
    assert _report(tmp_path / "rep")["run"]["interrupted"] is True


def test_run_discovers_bugs_in_an_unmodified_script(script, tmp_path):
    rep = tmp_path / "rep"
    code = run_script(str(script), ["--shuffle", "0", "--nozero", "--sched", "batch", "--noeval", "--n", "640"],
                      report=str(rep), summary=False)
    assert code == 0
    found = {f["code"]: f for f in _report(rep)["findings"]}
    assert {"RT104", "RT105", "RT110", "RT111"} <= set(found)
    assert "SequentialSampler" in found["RT110"]["message"]
    assert found["RT105"]["where"] == "StepLR"


def test_run_clean_script_epochs_from_loader(script, tmp_path):
    rep = tmp_path / "rep"
    run_script(str(script), ["--epochs", "4", "--sched", "epoch"], report=str(rep), summary=False)
    data = _report(rep)
    assert data["findings"] == [] or all(f["severity"] == "info" for f in data["findings"])
    assert data["run"]["epochs"] == 4


def test_cli_command(script, tmp_path):
    rep = tmp_path / "out"
    result = CliRunner().invoke(run_command, ["--report", str(rep), "--checks", "RT104,RT106", str(script),
                                              "--epochs", "1", "--nozero", "--exit", "2"])
    assert result.exit_code == 2, result.output
    data = _report(rep)
    assert [f["code"] for f in data["findings"]] == ["RT104"]
    assert data["run"]["checks"] == ["RT104", "RT106"]


def test_cli_via_main_group(script, tmp_path):
    from recipecheck.cli import main

    result = CliRunner().invoke(main, ["run", "--no-report", str(script), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "ARGV" in result.output


def test_cli_rejects_unknown_check(script):
    result = CliRunner().invoke(run_command, ["--checks", "RT777", str(script)])
    assert result.exit_code == 2 and "RT777" in result.output


def test_cli_sanity(script, tmp_path):
    rep = tmp_path / "rep"
    result = CliRunner().invoke(run_command, ["--report", str(rep), "--sanity", str(script), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    report = _report(rep)
    run = report["run"]
    assert "sanity" in run and run["sanity"] not in ({"status": "skipped"},)
    # the LR advisor ran on copies and its curve is in the report
    lr = report["series"]["lr_range_test"]
    assert len(lr["lr"]) == len(lr["loss"]) > 10 and lr["suggested_lr"] > 0
    assert "lr_advice" in run
    # RT101 is judged once, by the monitor, not again by the sanity suite
    assert sum(f["code"] == "RT101" for f in report["findings"]) <= 1


def test_run_mode_results_bitwise_identical(script, tmp_path, monkeypatch):
    import runpy
    import sys

    plain_out, mon_out = tmp_path / "plain.pt", tmp_path / "mon.pt"
    monkeypatch.setattr(sys, "argv", [str(script), "--epochs", "2", "--save", str(plain_out)])
    with pytest.raises(SystemExit):
        runpy.run_path(str(script), run_name="__main__")
    run_script(str(script), ["--epochs", "2", "--save", str(mon_out)], report=None, summary=False)
    a, b = torch.load(plain_out), torch.load(mon_out)
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), k
    assert torch.equal(a["rng"], b["rng"])


def test_run_second_training_phase_is_discovered(tmp_path):
    """A second model/optimizer created after the first phase (discovery hooks already gone) is
    found through the optimizer's parameters and becomes the step counter."""
    path = tmp_path / "two_phases.py"
    path.write_text(textwrap.dedent('''
        import torch
        from torch import nn
        torch.manual_seed(0)
        x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
        a = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))
        oa = torch.optim.SGD(a.parameters(), lr=0.05)
        for _ in range(20):
            oa.zero_grad()
            nn.functional.cross_entropy(a(x), y).backward()
            oa.step()
        b = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))
        ob = torch.optim.SGD(b.parameters(), lr=0.01)
        for _ in range(400):
            nn.functional.cross_entropy(b(x), y).backward()  # no zero_grad: RT104
            ob.step()
    '''))
    rep = tmp_path / "rep"
    assert run_script(str(path), [], report=str(rep), summary=False) == 0
    data = _report(rep)
    assert data["run"]["steps"] > 300 and not data["run"]["check_errors"]
    rt104 = [f for f in data["findings"] if f["code"] == "RT104"]
    assert rt104 and rt104[0]["where"].startswith("model1.")
