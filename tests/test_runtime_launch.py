"""`recipecheck run` as a launcher: -m, __file__, --fail-on, torchrun, and --sanity on real shapes
(AdamW, user hooks, functional losses, progress and results in the terminal)."""

from __future__ import annotations

import io
import json
import re
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
from click.testing import CliRunner  # noqa: E402

from recipecheck.runtime.cli import run_command  # noqa: E402
from recipecheck.runtime.launcher import run_script  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _report(d):
    return json.loads((d / "report.json").read_text())


# a small classifier loop; options select the shapes under test
LOOP = textwrap.dedent('''
    import sys, argparse, torch
    import torch.nn.functional as F
    from torch import nn

    p = argparse.ArgumentParser()
    p.add_argument("--opt", default="sgd")
    p.add_argument("--loss", default="module")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--hook", action="store_true")
    p.add_argument("--nozero", action="store_true")
    p.add_argument("--exit", type=int, default=0)
    a, extra = p.parse_known_args()
    print("EXTRA", "|".join(extra) or "-")
    torch.manual_seed(0)
    x = torch.randn(64, 10)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3))
    with torch.no_grad():
        model[2].weight.mul_(0.1)
    calls = []
    if a.hook:  # the user's own logging hook
        model[0].register_forward_hook(lambda m, i, o: calls.append(float(o.detach().abs().mean())))
    if a.opt == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    crit = nn.CrossEntropyLoss()
    for step in range(a.steps):
        idx = torch.randperm(64)[:16]  # shuffled mini-batches
        xb, yb = x[idx], y[idx]
        if not a.nozero:
            opt.zero_grad()
        out = model(xb)
        if a.loss == "module":
            loss = crit(out, yb)
        elif a.loss == "ce":
            loss = F.cross_entropy(out, yb)
        else:
            loss = F.nll_loss(F.log_softmax(out, dim=1), yb)
        loss.backward()
        opt.step()
    print("HOOK_CALLS", len(calls), "FIRST", calls[0] if calls else None)
    print("FILE", __file__, "ARGV0", sys.argv[0], "NAME", __name__)
    sys.exit(a.exit)
''')


@pytest.fixture
def loop(tmp_path):
    path = tmp_path / "loop.py"
    path.write_text(LOOP)
    return path


def _field(out: str, key: str) -> str:
    line = next(l for l in out.splitlines() if key in l.split())
    parts = line.split()
    return parts[parts.index(key) + 1]


# ------------------------------------------------------------------- --sanity (issue 11 item 9)


def test_sanity_with_adamw_runs_every_check(loop, tmp_path, capsys):
    """AdamW's defaults carry decoupled_weight_decay, which AdamW.__init__ rejects: RT114, RT115
    and the LR test used to crash (visible only in report.json)."""
    rep = tmp_path / "rep"
    assert run_script(str(loop), ["--opt", "adamw", "--steps", "5"], report=str(rep), sanity=True,
                      summary=False) == 0
    data = _report(rep)
    sanity = data["run"]["sanity"]
    for key in ("gradient_check", "overfit", "regularization"):
        assert sanity[key]["status"] not in ("crashed", "skipped"), sanity[key]
    assert sanity["overfit"]["status"] == "ok" and sanity["regularization"]["status"] == "ok"
    assert not [e for e in data["run"]["check_errors"] if e["check"] in ("lr_range_test", "sanity")]
    assert data["series"]["lr_range_test"]["suggested_lr"] > 0


def test_sanity_never_fires_the_users_hooks(loop, tmp_path, capsys):
    """The suite's forward passes (hundreds) must not reach the script's own hooks."""
    plain = subprocess.run([sys.executable, str(loop), "--hook"], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert plain.returncode == 0, plain.stderr
    rep = tmp_path / "rep"
    assert run_script(str(loop), ["--hook"], report=str(rep), sanity=True, summary=False) == 0
    out = capsys.readouterr().out
    assert _field(out, "HOOK_CALLS") == _field(plain.stdout, "HOOK_CALLS") == "50"
    assert _field(out, "FIRST") == _field(plain.stdout, "FIRST")  # what the hook logs is unchanged
    assert _report(rep)["run"]["sanity"]["user_hooks_left_out"] == 1


@pytest.mark.parametrize("loss", ["ce", "nll"])
def test_sanity_supports_functional_losses(loop, tmp_path, loss):
    rep = tmp_path / "rep"
    assert run_script(str(loop), ["--loss", loss, "--steps", "3"], report=str(rep), sanity=True, summary=False) == 0
    sanity = _report(rep)["run"]["sanity"]
    assert sanity.get("status") != "skipped", sanity
    assert sanity["gradient_check"]["status"] in ("great", "ok")
    assert sanity["overfit"]["status"] == "ok"
    # read from the autograd graph: log_softmax then nll_loss is cross-entropy (right for logits
    # and for log-probabilities alike)
    assert "cross_entropy" in sanity["loss"] and "input_shape=(16, 3)" in sanity["loss"]


def test_sanity_functional_loss_on_reshaped_sequence_output(tmp_path):
    """A language model: seq-first output (T, B, V) flattened for F.cross_entropy against
    flattened targets, as in pytorch/examples word_language_model."""
    path = tmp_path / "lm.py"
    path.write_text(textwrap.dedent('''
        import torch
        import torch.nn.functional as F
        from torch import nn

        class LM(nn.Module):
            def __init__(self, v=20, h=16):
                super().__init__()
                self.emb, self.rnn, self.out = nn.Embedding(v, h), nn.GRU(h, h), nn.Linear(h, v)
            def forward(self, x):
                o, _ = self.rnn(self.emb(x))
                return self.out(o)

        torch.manual_seed(0)
        data = torch.randint(0, 20, (200, 4))
        model = LM()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for i in range(0, 180, 10):
            x, y = data[i:i + 10], data[i + 1:i + 11].reshape(-1)
            opt.zero_grad()
            out = model(x)
            F.cross_entropy(out.view(-1, 20), y).backward()
            opt.step()
    '''))
    rep = tmp_path / "rep"
    assert run_script(str(path), [], report=str(rep), sanity=True, summary=False) == 0
    sanity = _report(rep)["run"]["sanity"]
    assert sanity["gradient_check"]["status"] in ("great", "ok"), sanity["gradient_check"]
    # the targets are flattened tokens: the batch is not sliced by examples
    assert sanity["gradient_check"]["examples"] == 10
    assert sanity["overfit"]["status"] in ("ok", "fail") and "error" not in sanity["overfit"]


def test_sanity_prints_progress_and_results_in_the_terminal(loop, tmp_path):
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    assert run_script(str(loop), ["--steps", "3"], report=str(tmp_path / "rep"), sanity=True, summary=False,
                      console=console) == 0
    text = buf.getvalue()
    assert "recipecheck: sanity RT102 gradient check (float64) ..." in text
    assert "recipecheck sanity results:" in text
    for code in ("RT102", "RT114", "RT115"):
        assert f"  {code} " in text
    assert "max relative error" in text and "LR range test" in text


def test_sanity_rich_progress_on_a_terminal(loop, tmp_path):
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    assert run_script(str(loop), ["--steps", "3"], report=str(tmp_path / "rep"), sanity=True, summary=False,
                      console=console) == 0
    text = buf.getvalue()
    assert "recipecheck sanity results" in text and "gradient check" in text


# ------------------------------------------------------------------- launcher (issue 10 item 11)


def test_file_is_absolute_and_argv0_as_typed(loop, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_script("loop.py", ["--steps", "2"], report=None, summary=False) == 0
    out = capsys.readouterr().out
    assert _field(out, "FILE") == str(tmp_path / "loop.py")
    assert _field(out, "ARGV0") == "loop.py" and _field(out, "NAME") == "__main__"
    (tmp_path / "link.py").symlink_to(loop)
    assert run_script("link.py", ["--steps", "2"], report=None, summary=False) == 0
    assert _field(capsys.readouterr().out, "FILE") == str(tmp_path / "link.py")  # absolute, link kept


def test_run_module_like_python_m(tmp_path, capsys, monkeypatch):
    pkg = tmp_path / "proj" / "trainer"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text(LOOP)
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.setattr(sys, "path", list(sys.path))
    rep = tmp_path / "rep"
    result = CliRunner().invoke(run_command, ["--report", str(rep), "-m", "trainer.train", "--steps", "4",
                                              "--report", "not-ours", "--exit", "5"])
    assert result.exit_code == 5, result.output
    assert _field(result.output, "FILE") == str(pkg / "train.py")
    assert _field(result.output, "ARGV0") == str(pkg / "train.py")
    assert _field(result.output, "NAME") == "__main__"
    assert _field(result.output, "EXTRA") == "--report|not-ours"  # after -m MODULE, all is the module's
    data = _report(rep)
    assert data["run"]["module"] == "trainer.train" and data["run"]["steps"] == 4
    assert data["run"]["argv"] == ["-m trainer.train", "--steps", "4", "--report", "not-ours", "--exit", "5"]
    assert "trainer" not in sys.modules or sys.modules["trainer"].__file__.startswith(str(pkg))


def test_run_missing_module_fails_like_python_m(capsys):
    assert run_script(module="no_such_pkg_rc.train", report=None, summary=False) == 1
    assert "No module named 'no_such_pkg_rc'" in capsys.readouterr().err


def test_fail_on_exit_codes(loop, tmp_path):
    runner = CliRunner()
    rep = tmp_path / "rep"
    buggy = ["--nozero", "--steps", "30"]  # RT104 (error) fires
    # without --fail-on: the script's exit code
    assert runner.invoke(run_command, ["--report", str(rep), str(loop), *buggy]).exit_code == 0
    res = runner.invoke(run_command, ["--report", str(rep), "--fail-on", "error", str(loop), *buggy])
    assert res.exit_code == 1, res.output
    data = _report(rep)
    assert data["run"]["exit_code"] == 0 and data["run"]["fail_on"] == "error"
    assert any(f["code"] == "RT104" for f in data["findings"])
    # a failing script keeps its own code
    res = runner.invoke(run_command, ["--report", str(rep), "--fail-on", "warning", str(loop), *buggy, "--exit", "7"])
    assert res.exit_code == 7
    # a healthy run passes even with --fail-on warning
    res = runner.invoke(run_command, ["--report", str(rep), "--fail-on", "warning", str(loop), "--steps", "30"])
    assert res.exit_code == 0, [f["code"] for f in _report(rep)["findings"]]
    assert runner.invoke(run_command, ["--fail-on", "sometimes", str(loop)]).exit_code == 2


def test_missing_script_is_a_usage_error(tmp_path):
    runner = CliRunner()
    assert runner.invoke(run_command, []).exit_code == 2
    res = runner.invoke(run_command, [str(tmp_path / "nope.py")])
    assert res.exit_code == 2 and "no such script" in res.output


DDP_SCRIPT = textwrap.dedent('''
    import json, os, sys, torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DDP(nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(100 + rank)  # different data per rank
    x = torch.randn(320, 10, generator=g)
    y = x[:, :3].argmax(1)
    local = []
    for i in range(0, 320, 16):
        opt.zero_grad()
        loss = crit(model(x[i:i + 16]), y[i:i + 16])
        local.append(loss.item())
        loss.backward()
        opt.step()
    if rank == 1:  # a rank-local bug: evaluation in training mode
        with torch.no_grad():
            model(x[:8])
    with open(os.path.join(sys.argv[1], f"local{rank}.json"), "w") as fh:
        json.dump({"local": local, "file": __file__}, fh)
    dist.destroy_process_group()
''')


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_torchrun_two_ranks_one_report(tmp_path):
    """torchrun --nproc-per-node 2 (gloo, CPU): every rank is monitored, the loss is the mean
    over the ranks, rank 1's finding reaches rank 0, and only rank 0 writes the report."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    root = tmp_path
    for attempt in range(3):
        tmp_path = root / f"attempt{attempt}"
        tmp_path.mkdir()
        script = tmp_path / "ddp_train.py"
        script.write_text(DDP_SCRIPT)
        rep = tmp_path / "rep"
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
             "-m", "recipecheck", "run", "--report", str(rep), "--fail-on", "error", str(script),
             str(tmp_path)],
            capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path))
        # torch 2.13 + gloo sometimes aborts a rank in C++ teardown after a clean exit, with or
        # without the monitor (see runtime_helpers/ddp_worker.py); torchrun then kills the other
        # rank. Only that known signature is retried.
        if "terminate called without an active exception" not in proc.stderr:
            break
    # rank 1's RT111 is an error: --fail-on error makes rank 0, hence torchrun, fail
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert proc.stderr.count("failing (--fail-on error)") == 1, proc.stderr
    data = _report(rep)
    assert data["run"]["world_size"] == 2 and data["run"]["rank"] == 0 and data["run"]["exit_code"] == 0
    r0 = json.loads((tmp_path / "local0.json").read_text())
    r1 = json.loads((tmp_path / "local1.json").read_text())
    assert r0["file"] == str(script)
    mean = [(a + b) / 2 for a, b in zip(r0["local"], r1["local"])]
    assert data["series"]["loss"]["value"] == pytest.approx(mean, rel=1e-5)
    assert r0["local"] != r1["local"]
    # gradient norms (synchronized by DDP) are in the one report
    assert any(k.startswith("grad_norm/") for k in data["series"])
    rt111 = [f for f in data["findings"] if f["code"] == "RT111"]
    assert rt111 and rt111[0]["message"].startswith("[rank 1]")
    assert proc.stderr.count("report written to") == 1  # one report, one summary (rank 0)
    assert not data["run"]["check_errors"]


# ------------------------------------------------------------------- report of a short run (issue 10 item 10)


def test_short_run_report_has_curves_and_named_histograms(loop, tmp_path):
    rep = tmp_path / "rep"
    assert run_script(str(loop), ["--steps", "40"], report=str(rep), summary=False) == 0
    series = _report(rep)["series"]
    expected = list(range(1, 17)) + [32]  # every step at first, then powers of two (and every 100th)
    assert series["update_ratio/0.weight"]["step"] == expected
    assert series["grad_norm/0"]["step"] == expected
    assert series["activations/1/first"]["module"] == "Tanh"
    page = (rep / "report.html").read_text()
    assert "activations of model[1] (Tanh)" in page


# ------------------------------------------------------------------- benchmarks/gpu_check.py


def _gpu_check_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("rc_gpu_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_without_cuda_says_so_and_its_cpu_path_runs(capsys, monkeypatch):
    mod = _gpu_check_module()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert mod.main([]) == 0
    assert "CUDA is not available" in capsys.readouterr().out
    try:
        assert mod.main(["--cpu-smoke"]) == 0
    finally:
        torch.use_deterministic_algorithms(False)
    out = capsys.readouterr().out
    for kind in ("cnn", "gpt"):
        for name in ("no host sync", "bitwise identical", "overhead"):
            assert re.search(rf"^{kind}\s+{name}\s+PASS", out, re.M), out
    assert "all checks passed" in out


def test_gpu_check_identity_check_can_fail(monkeypatch):
    """A monitor that consumed the global RNG (dropout masks change) must be caught."""
    mod = _gpu_check_module()
    orig = mod.Workload.monitor

    def rng_eating_monitor(self, discovery=True):
        mon = orig(self, discovery)
        attach = mon.attach

        def attach_and_draw():
            torch.rand(1)  # what a careless monitor might do
            return attach()

        mon.attach = attach_and_draw
        return mon

    monkeypatch.setattr(mod.Workload, "monitor", rng_eating_monitor)
    passed, detail = mod.identical_check("cnn", torch.device("cpu"), 4, True)
    assert not passed and "differ" in detail


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_sanity_with_scripted_and_scaled_functional_loss(tmp_path):
    """A TorchScript loss compiled before training and a loss scaled for accumulation: the
    sanity suite reads the loss from the autograd graph and patches nothing TorchScript sees."""
    path = tmp_path / "scripted.py"
    path.write_text(textwrap.dedent('''
        import torch
        import torch.nn.functional as F
        from torch import nn

        @torch.jit.script
        def smoothed(out, y):
            return F.cross_entropy(out, y, ignore_index=-1)

        torch.manual_seed(0)
        x, y = torch.randn(64, 10), torch.randint(0, 4, (64,))
        model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 4))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(6):
            idx = torch.randperm(64)[:16]
            for micro in range(2):
                (smoothed(model(x[idx]), y[idx]) / 2).backward()
            opt.step()
            opt.zero_grad()
    '''))
    rep = tmp_path / "rep"
    assert run_script(str(path), [], report=str(rep), sanity=True, summary=False) == 0
    sanity = _report(rep)["run"]["sanity"]
    assert "cross_entropy" in sanity["loss"] and "'ignore_index': -1" in sanity["loss"], sanity["loss"]
    assert sanity["gradient_check"]["status"] in ("great", "ok")


# ------------------------------------------------------- --sanity with the loss inside forward(x, y)

GPT = textwrap.dedent('''
    import sys, torch
    from torch import nn
    from torch.nn import functional as F
    style = sys.argv[1]
    torch.manual_seed(0)
    V, T, D = 65, 16, 32

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(V, D)
            self.wpe = nn.Embedding(T, D)
            self.mlp = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))
            self.ln_f = nn.LayerNorm(D)
            self.lm_head = nn.Linear(D, V, bias=False)

        def forward(self, idx, targets=None):
            x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
            x = self.ln_f(x + self.mlp(x))
            if targets is None:  # inference: nanoGPT computes the last position only
                return (self.lm_head(x[:, [-1], :]) if style == "nanogpt" else self.lm_head(x)), None
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            return loss if style == "loss-only" else (logits, loss)

    data = torch.randint(0, V, (4096,))
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    for it in range(20):
        ix = torch.randint(len(data) - T, (8,))
        x = torch.stack([data[i:i + T] for i in ix])
        y = torch.stack([data[i + 1:i + 1 + T] for i in ix])
        out = model(x, y)
        loss = out if style == "loss-only" else out[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    print("FINAL", round(loss.item(), 4))
''')


@pytest.mark.parametrize("style", ["nanogpt", "mingpt"])
def test_sanity_on_a_model_computing_its_loss_in_forward(tmp_path, style, capsys):
    script = tmp_path / "train.py"
    script.write_text(GPT)
    rep = tmp_path / "rep"
    assert run_script(str(script), [style], report=str(rep), sanity=True, summary=False) == 0
    data = _report(rep)
    sanity = data["run"]["sanity"]
    for key in ("gradient_check", "overfit", "regularization"):
        assert sanity[key]["status"] not in ("crashed", "skipped"), sanity[key]
    assert sanity["overfit"]["status"] == "ok" and "forward(inputs, targets)" in sanity["loss_in_forward"]
    assert not data["run"]["check_errors"], data["run"]["check_errors"]
    assert data["series"]["lr_range_test"]["suggested_lr"] > 0
    plain = subprocess.run([sys.executable, str(script), style], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert _field(capsys.readouterr().out, "FINAL") == _field(plain.stdout, "FINAL")  # training unchanged


def test_sanity_skips_with_a_reason_when_the_output_cannot_be_paired_with_the_loss(tmp_path, capsys):
    # forward(x, y) returns the loss alone: no logits to recompute the loss from
    script = tmp_path / "train.py"
    script.write_text(GPT)
    rep = tmp_path / "rep"
    assert run_script(str(script), ["loss-only"], report=str(rep), sanity=True, summary=False) == 0
    data = _report(rep)
    assert data["run"]["sanity"]["status"] == "skipped"
    assert "could not be recomputed from the output of GPT" in data["run"]["sanity"]["reason"]
    assert "--sanity skipped" in capsys.readouterr().err
    assert not data["run"]["check_errors"]
