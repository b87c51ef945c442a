"""Reference regularizers: each tested for its defining property, and against torch where it has one."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.testing import assert_close  # noqa: E402

from recipecheck.runtime.reference import regularizers as rr  # noqa: E402
from recipecheck.runtime.reference import schedules as rs  # noqa: E402
from recipecheck.runtime.reference.optimizers import SGD  # noqa: E402

D = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=gen(seed), dtype=D)


# ---------------------------------------------------------------------------------------------
# penalties
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "penalty,grad",
    [
        (lambda ps: rr.l2_penalty(ps, 0.3), lambda p: rr.l2_penalty_grad(p, 0.3)),
        (lambda ps: rr.l1_penalty(ps, 0.3), lambda p: rr.l1_penalty_grad(p, 0.3)),
        (lambda ps: rr.elastic_net_penalty(ps, 0.2, 0.5),
         lambda p: rr.elastic_net_penalty_grad(p, 0.2, 0.5)),
    ],
    ids=["l2", "l1", "elastic-net"],
)
def test_penalty_gradients_match_autograd(penalty, grad):
    ps = [randn(3, 4, seed=1).requires_grad_(), randn(5, seed=2).requires_grad_()]
    penalty(ps).backward()
    for p in ps:
        assert_close(p.grad, grad(p.detach()))


def test_penalty_values():
    w = [torch.tensor([3.0, -4.0], dtype=D), torch.tensor([[1.0]], dtype=D)]
    assert rr.l2_penalty(w, 0.1).item() == pytest.approx(0.05 * 26)
    assert rr.l1_penalty(w, 0.1).item() == pytest.approx(0.8)
    assert rr.elastic_net_penalty(w, 0.1, 0.2).item() == pytest.approx(0.8 + 0.1 * 26)


def test_l2_penalty_equals_sgd_weight_decay():
    """SGD on loss + l2_penalty(lam) follows the same path as SGD(weight_decay=lam)."""
    a, b = randn(6, seed=3), randn(6, seed=4)
    w1 = torch.zeros(6, dtype=D, requires_grad=True)
    w2 = torch.zeros(6, dtype=D, requires_grad=True)
    o1 = SGD([w1], lr=0.1, momentum=0.9)
    o2 = SGD([w2], lr=0.1, momentum=0.9, weight_decay=0.2)
    for _ in range(30):
        for w, o, pen in ((w1, o1, True), (w2, o2, False)):
            o.zero_grad()
            loss = ((a * w - b) ** 2).sum() + (rr.l2_penalty(w, 0.2) if pen else 0)
            loss.backward()
            o.step()
    assert_close(w1, w2)
    assert w1.abs().max() > 0.1


def test_l1_shrinks_small_weights_more_than_l2():
    """The defining difference: L1's pull is constant, L2's is proportional to the weight."""
    w = torch.tensor([1e-3, 1.0], dtype=D)
    l1, l2 = rr.l1_penalty_grad(w, 0.1), rr.l2_penalty_grad(w, 0.1)
    assert l1[0] == l1[1] == pytest.approx(0.1)
    assert l2[0] / l2[1] == pytest.approx(1e-3)


# ---------------------------------------------------------------------------------------------
# max-norm
# ---------------------------------------------------------------------------------------------


def test_max_norm_bounds_every_row_and_keeps_direction():
    w = randn(20, 7, seed=5) * torch.linspace(0.1, 3, 20, dtype=D)[:, None]
    before = w.clone()
    rr.max_norm_(w, 1.5)
    norms, old = w.norm(dim=1), before.norm(dim=1)
    assert (norms <= 1.5 + 1e-12).all()
    small = old <= 1.5
    assert small.any() and (~small).any()
    assert_close(w[small], before[small])  # rows inside the ball are untouched
    assert_close(norms[~small], torch.full_like(norms[~small], 1.5), rtol=1e-6, atol=0)
    cos = F.cosine_similarity(w, before, dim=1)
    assert_close(cos, torch.ones_like(cos))
    assert_close(w, torch.renorm(before, 2, 0, 1.5))


def test_max_norm_conv_filters_and_after_optimizer_step():
    w = nn.Parameter(randn(4, 3, 3, 3, seed=6) * 5)
    opt = SGD([w], lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        (-(w.sum())).backward()  # pushes all weights up: norms grow
        opt.step()
        rr.max_norm_(w, 2.0)
        assert (w.detach().flatten(1).norm(dim=1) <= 2.0 + 1e-9).all()
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        rr.max_norm_(w, 0.0)


# ---------------------------------------------------------------------------------------------
# dropout, DropConnect
# ---------------------------------------------------------------------------------------------


def _mean_over_draws(fn, n=2000):
    g = gen(11)
    return torch.stack([fn(g) for _ in range(n)]).mean(0)


def test_inverted_dropout_preserves_expectation():
    x, p = randn(50, seed=7), 0.3
    m = _mean_over_draws(lambda g: rr.inverted_dropout(x, p, generator=g))
    # per-element std of one draw is |x| sqrt(p/(1-p)); 6 standard errors margin
    se = x.abs() * math.sqrt(p / (1 - p)) / math.sqrt(2000)
    assert ((m - x).abs() <= 6 * se + 1e-12).all()
    assert_close(rr.inverted_dropout(x, p, generator=gen(), training=False), x)


def test_dropout_zeroes_fraction_p_and_scales_survivors():
    x = torch.ones(20000, dtype=D)
    y = rr.inverted_dropout(x, 0.25, generator=gen(1))
    assert set(torch.unique(y).tolist()) == {0.0, 1 / 0.75}
    assert (y == 0).double().mean().item() == pytest.approx(0.25, abs=0.015)
    assert (rr.inverted_dropout(x, 1.0, generator=gen()) == 0).all()


def test_scaled_dropout_equivalent_in_expectation_to_inverted():
    """Train-time E[scaled] = eval-time scaled output; same masks differ by exactly 1/(1-p)."""
    x, p = randn(50, seed=8), 0.4
    m = _mean_over_draws(lambda g: rr.scaled_dropout(x, p, generator=g))
    eval_out = rr.scaled_dropout(x, p, generator=gen(), training=False)
    assert_close(eval_out, (1 - p) * x)
    se = x.abs() * math.sqrt(p * (1 - p)) / math.sqrt(2000)
    assert ((m - eval_out).abs() <= 6 * se + 1e-12).all()
    inv = rr.inverted_dropout(x, p, generator=gen(5))
    tts = rr.scaled_dropout(x, p, generator=gen(5))
    assert_close(inv, tts / (1 - p))
    # the eval outputs of the two conventions differ by the same factor
    assert_close(rr.inverted_dropout(x, p, generator=gen(), training=False), eval_out / (1 - p))


def test_dropout_uses_only_the_given_generator():
    state = torch.get_rng_state()
    rr.inverted_dropout(randn(10), 0.5, generator=gen(3))
    assert torch.equal(state, torch.get_rng_state())
    a = rr.inverted_dropout(torch.ones(100, dtype=D), 0.5, generator=gen(3))
    b = rr.inverted_dropout(torch.ones(100, dtype=D), 0.5, generator=gen(3))
    assert torch.equal(a, b)


def test_dropconnect_expectation_and_masks_weights():
    x, w, b = randn(4, 6, seed=9), randn(3, 6, seed=10), randn(3, seed=11)
    exact = F.linear(x, w, b)
    m = _mean_over_draws(lambda g: rr.dropconnect_linear(x, w, b, 0.5, generator=g), n=3000)
    assert_close(m, exact, atol=0.25, rtol=0)  # loose statistical bound ...
    assert (m - exact).abs().mean() < 0.06  # ... and a tight average one
    assert_close(rr.dropconnect_linear(x, w, b, 0.5, generator=gen(), training=False), exact)
    # one weight mask shared by the batch: identical inputs give identical outputs
    same = rr.dropconnect_linear(x[:1].expand(5, 6), w, b, 0.5, generator=gen(2))
    assert_close(same, same[:1].expand(5, 3))
    # whereas dropout on the activations would give different rows
    act = F.linear(rr.inverted_dropout(x[:1].expand(5, 6), 0.5, generator=gen(2)), w, b)
    assert not torch.allclose(act, act[:1].expand(5, 3))


# ---------------------------------------------------------------------------------------------
# batch norm
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(16, 5), (8, 3, 4, 4)])
def test_batch_norm_matches_torch_train_and_eval(shape):
    C = shape[1]
    weight, bias = randn(C, seed=1).requires_grad_(), randn(C, seed=2).requires_grad_()
    rm_o, rv_o = torch.zeros(C, dtype=D), torch.ones(C, dtype=D)
    rm_t, rv_t = rm_o.clone(), rv_o.clone()
    for step in range(5):
        x = randn(*shape, seed=20 + step) * 3 + 1
        ours = rr.batch_norm(x, rm_o, rv_o, weight, bias, training=True, momentum=0.2)
        theirs = F.batch_norm(x, rm_t, rv_t, weight, bias, training=True, momentum=0.2)
        assert_close(ours, theirs)
        assert_close(rm_o, rm_t)
        assert_close(rv_o, rv_t)
    # gradients flow the same way (the batch statistics are part of the graph)
    xg = randn(*shape, seed=99).requires_grad_()
    g1 = torch.autograd.grad(rr.batch_norm(xg, None, None, weight, bias, training=True).pow(3).sum(),
                             [xg, weight])
    g2 = torch.autograd.grad(F.batch_norm(xg, None, None, weight, bias, training=True).pow(3).sum(),
                             [xg, weight])
    for a, b in zip(g1, g2):
        assert_close(a, b)
    x = randn(*shape, seed=50)
    assert_close(rr.batch_norm(x, rm_o, rv_o, weight, bias, training=False),
                 F.batch_norm(x, rm_t, rv_t, weight, bias, training=False))


def test_batch_norm_train_output_is_standardized_and_eval_differs():
    x = randn(32, 4, seed=3) * 5 + 2
    rm, rv = torch.zeros(4, dtype=D), torch.ones(4, dtype=D)
    y = rr.batch_norm(x, rm, rv, training=True)
    assert_close(y.mean(0), torch.zeros(4, dtype=D), atol=1e-12, rtol=0)
    assert_close(y.var(0, unbiased=False), torch.ones(4, dtype=D), atol=1e-4, rtol=0)
    # eval uses the running statistics (after one step with momentum 0.1), not the batch's
    assert_close(rm, 0.1 * x.mean(0))
    assert_close(rv, 0.9 + 0.1 * x.var(0, unbiased=True))
    y_eval = rr.batch_norm(x, rm, rv, training=False)
    assert_close(y_eval, (x - rm) / torch.sqrt(rv + 1e-5))
    assert (y_eval - y).abs().max() > 0.5
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        rr.batch_norm(randn(1, 4), None, None, training=True)


# ---------------------------------------------------------------------------------------------
# label smoothing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_torch(eps):
    logits, y = randn(12, 7, seed=4), torch.randint(0, 7, (12,), generator=gen(4))
    for red in ("mean", "sum", "none"):
        assert_close(rr.label_smoothing_cross_entropy(logits, y, eps, reduction=red),
                     F.cross_entropy(logits, y, label_smoothing=eps, reduction=red))


def test_smoothed_targets_sum_to_one():
    y = torch.tensor([0, 3, 1])
    q = rr.smooth_labels(y, 4, 0.2, dtype=D)
    assert_close(q.sum(1), torch.ones(3, dtype=D))
    assert_close(q[0], torch.tensor([0.85, 0.05, 0.05, 0.05], dtype=D))
    assert (q.argmax(1) == y).all()


# ---------------------------------------------------------------------------------------------
# Beta sampling, mixup, cutmix, cutout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a,b", [(0.2, 0.2), (2.0, 5.0), (1.0, 1.0)])
def test_sample_beta_moments(a, b):
    s = rr.sample_beta(a, b, 20000, generator=gen(int(a * 10 + b)))
    assert ((s >= 0) & (s <= 1)).all()
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    assert s.mean().item() == pytest.approx(mean, abs=5 * math.sqrt(var / 20000))
    assert s.var().item() == pytest.approx(var, rel=0.05)


def test_mixup_is_a_convex_combination():
    x, y = randn(8, 3, 4, 4, seed=5), torch.arange(8) % 3
    mixed = rr.mixup(x, y, alpha=0.4, generator=gen(6), num_classes=3)
    lam, j = mixed.lam, mixed.perm
    assert 0.0 <= lam <= 1.0
    assert sorted(j.tolist()) == list(range(8))
    assert_close(mixed.inputs, lam * x + (1 - lam) * x[j])
    lo, hi = torch.minimum(x, x[j]), torch.maximum(x, x[j])
    assert ((mixed.inputs >= lo - 1e-12) & (mixed.inputs <= hi + 1e-12)).all()
    assert_close(mixed.targets.sum(1), torch.ones(8, dtype=D))
    onehot = F.one_hot(y, 3).to(D)
    assert_close(mixed.targets, lam * onehot + (1 - lam) * onehot[j])
    # a given lam is used as is
    assert rr.mixup(x, y, generator=gen(), num_classes=3, lam=0.25).lam == 0.25


def test_cutmix_pastes_exactly_the_box_and_labels_by_area():
    x, y = randn(6, 2, 10, 12, seed=7), F.one_hot(torch.arange(6) % 4, 4).to(D)
    for seed in range(5):
        m = rr.cutmix(x, y, alpha=1.0, generator=gen(seed))
        y1, y2, x1, x2 = m.box
        inside = torch.zeros(10, 12, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        assert_close(m.inputs[..., inside], x[m.perm][..., inside])
        assert_close(m.inputs[..., ~inside], x[..., ~inside])
        assert m.lam == pytest.approx(1 - inside.sum().item() / 120)
        assert_close(m.targets, m.lam * y + (1 - m.lam) * y[m.perm])
        assert_close(m.targets.sum(1), torch.ones(6, dtype=D))


def test_cutout_zeroes_exactly_the_clipped_patch():
    x = torch.rand(64, 3, 9, 9, generator=gen(8), dtype=D) + 0.5  # no zeros in the input
    out, mask = rr.cutout(x, 4, generator=gen(9), return_mask=True)
    for i in range(64):
        zero = (out[i] == 0)
        assert (zero == zero[0:1]).all()  # same patch on every channel
        rows, cols = zero[0].any(1).nonzero().flatten(), zero[0].any(0).nonzero().flatten()
        # the zeros form one axis-aligned rectangle, at most 4x4, full size unless clipped
        assert zero[0].sum() == len(rows) * len(cols)
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        if 0 < rows.min() and rows.max() < 8:
            assert len(rows) == 4
        assert_close(out[i][~zero], x[i][~zero])
    assert_close(out, x * mask)
    assert set(mask.unique().tolist()) == {0.0, 1.0}


# ---------------------------------------------------------------------------------------------
# stochastic depth
# ---------------------------------------------------------------------------------------------


def test_stochastic_depth_keeps_expectation_and_drops_whole_examples():
    branch, p = randn(10, 4, seed=12), 0.3
    m = _mean_over_draws(lambda g: rr.stochastic_depth(branch, p, generator=g))
    se = branch.abs() * math.sqrt(p / (1 - p)) / math.sqrt(2000)
    assert ((m - branch).abs() <= 6 * se + 1e-12).all()
    out = rr.stochastic_depth(branch, p, generator=gen(1))
    for i in range(10):  # each example is dropped entirely or kept scaled
        assert torch.equal(out[i], torch.zeros(4, dtype=D)) or torch.allclose(out[i], branch[i] / 0.7)
    batch = rr.stochastic_depth(branch, 0.5, generator=gen(2), mode="batch")
    assert torch.equal(batch, torch.zeros_like(branch)) or torch.allclose(batch, branch * 2)
    assert_close(rr.stochastic_depth(branch, p, generator=gen(), training=False), branch)


# ---------------------------------------------------------------------------------------------
# augmentation
# ---------------------------------------------------------------------------------------------


def test_random_horizontal_flip():
    x = randn(200, 2, 3, 5, seed=13)
    out, flags = rr.random_horizontal_flip(x, 0.5, generator=gen(1), return_flags=True)
    assert_close(out[flags], x[flags].flip(-1))
    assert_close(out[~flags], x[~flags])
    assert 0.35 < flags.double().mean().item() < 0.65
    assert_close(rr.random_horizontal_flip(x, 1.0, generator=gen()), x.flip(-1))
    assert_close(rr.random_horizontal_flip(x, 0.0, generator=gen()), x)


def test_random_crop_windows_of_padded_input():
    x = randn(50, 2, 6, 6, seed=14)
    out, off = rr.random_crop(x, 6, padding=2, generator=gen(2), return_offsets=True)
    assert out.shape == x.shape
    xp = F.pad(x, (2, 2, 2, 2))
    for i in range(50):
        oy, ox = off[i].tolist()
        assert 0 <= oy <= 4 and 0 <= ox <= 4
        assert_close(out[i], xp[i, :, oy:oy + 6, ox:ox + 6])
    assert len(set(map(tuple, off.tolist()))) > 10  # offsets really vary
    assert_close(rr.random_crop(x, 6, generator=gen()), x)  # no padding, full size: identity
    assert rr.random_crop(x, (3, 4), generator=gen()).shape == (50, 2, 3, 4)
    with pytest.raises(ValueError, match="larger than the padded image"):
        rr.random_crop(x, 7, generator=gen())


# ---------------------------------------------------------------------------------------------
# gradient clipping
# ---------------------------------------------------------------------------------------------


def _with_grads(scale, seed=15):
    ps = [torch.zeros(s, dtype=D, requires_grad=True) for s in ((3, 4), (5,), (2, 2))]
    for i, p in enumerate(ps):
        p.grad = randn(*p.shape, seed=seed + i) * scale
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_grad_norm_matches_torch(norm_type, scale):
    a, b = _with_grads(scale), _with_grads(scale)
    na = rr.clip_grad_norm_(a, 1.0, norm_type)
    nb = torch.nn.utils.clip_grad_norm_(b, 1.0, norm_type, foreach=False)
    assert_close(na, nb)
    for pa, pb in zip(a, b):
        assert_close(pa.grad, pb.grad)
    total_after = rr.clip_grad_norm_(a, 1e9, norm_type)
    assert total_after <= 1.0 + 1e-9
    if scale == 0.01:  # small gradients are untouched
        for pa, pr in zip(a, _with_grads(scale)):
            assert_close(pa.grad, pr.grad)


def test_clip_grad_norm_preserves_direction_clip_value_does_not():
    a, b, ref = _with_grads(10.0), _with_grads(10.0), _with_grads(10.0)
    rr.clip_grad_norm_(a, 1.0)
    rr.clip_grad_value_(b, 0.5)
    flat = lambda ps: torch.cat([p.grad.flatten() for p in ps])  # noqa: E731
    assert F.cosine_similarity(flat(a), flat(ref), dim=0) == pytest.approx(1.0)
    assert F.cosine_similarity(flat(b), flat(ref), dim=0) < 0.999


def test_clip_grad_value_matches_torch():
    a, b = _with_grads(3.0), _with_grads(3.0)
    rr.clip_grad_value_(a, 0.7)
    torch.nn.utils.clip_grad_value_(b, 0.7, foreach=False)
    for pa, pb in zip(a, b):
        assert_close(pa.grad, pb.grad)
        assert pa.grad.abs().max() <= 0.7


# ---------------------------------------------------------------------------------------------
# early stopping
# ---------------------------------------------------------------------------------------------


def test_early_stopping_restores_the_best_epoch():
    model = nn.Linear(2, 1).double()
    stopper = rr.EarlyStopping(patience=3, min_delta=0.01)
    losses = [1.0, 0.8, 0.6, 0.55, 0.595, 0.7, 0.56, 0.9, 0.3]
    stopped_at = None
    for epoch, loss in enumerate(losses):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(epoch)  # the weights identify the epoch
        if stopper.step(loss, model):
            stopped_at = epoch
            break
    assert stopper.best_epoch == 3 and stopper.best == 0.55
    assert stopped_at == 6  # epochs 4, 5, 6 did not improve by min_delta; 0.3 is never seen
    stopper.restore(model)
    for p in model.parameters():
        assert (p == 3).all()


def test_early_stopping_min_delta_and_max_mode():
    model = nn.Linear(1, 1)
    s = rr.EarlyStopping(patience=2, min_delta=0.1, mode="max")
    assert [s.step(m, model) for m in (0.5, 0.55, 0.7, 0.75)] == [False, False, False, False]
    assert s.best_epoch == 2  # 0.55 and 0.75 are within min_delta of the best
    assert s.step(0.1, model) is True
    with pytest.raises(RuntimeError, match="before any step"):
        rr.EarlyStopping().restore(model)


def test_early_stopping_checkpoint_is_a_copy():
    model = nn.Linear(2, 2)
    s = rr.EarlyStopping(patience=1)
    s.step(1.0, model)
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(s.best_state["weight"], model.weight)


# ---------------------------------------------------------------------------------------------
# weight averaging
# ---------------------------------------------------------------------------------------------


def test_ema_closed_form_on_constant_sequence():
    w = torch.tensor([4.0, -2.0], dtype=D, requires_grad=True)
    ema = rr.EMA([w], decay=0.9)
    c = torch.tensor([1.0, 1.0], dtype=D)
    with torch.no_grad():
        w.copy_(c)
    w0 = torch.tensor([4.0, -2.0], dtype=D)
    for t in range(1, 30):
        ema.update()
        assert_close(ema.shadow[0], c + 0.9**t * (w0 - c))


def _train_and_average(avg_factory, torch_avg_fn, steps=40):
    torch.manual_seed(0)  # module init only; training uses explicit tensors
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    ours = avg_factory(model)
    theirs = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch_avg_fn) \
        if torch_avg_fn else torch.optim.swa_utils.AveragedModel(model)
    theirs.update_parameters(model)  # torch copies on its first update; ours at construction
    opt = SGD(model.parameters(), lr=0.1)
    x, y = randn(16, 3, seed=1), randn(16, 1, seed=2)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
        ours.update()
        theirs.update_parameters(model)
    for s, p in zip(ours.shadow, theirs.module.parameters()):
        assert_close(s, p.detach())
    return model, ours


def test_ema_matches_torch_averaged_model():
    model, ema = _train_and_average(lambda m: rr.EMA(m, decay=0.95),
                                    torch.optim.swa_utils.get_ema_multi_avg_fn(0.95))
    live = [p.detach().clone() for p in model.parameters()]
    ema.swap()
    assert_close(list(model.parameters())[0].detach(), ema.params[0].detach())
    assert not torch.equal(list(model.parameters())[0].detach(), live[0])
    ema.swap()
    assert_close(list(model.parameters())[0].detach(), live[0])


def test_polyak_matches_torch_averaged_model_and_is_the_mean():
    _train_and_average(rr.PolyakAverage, None)
    w = torch.zeros(3, dtype=D)
    avg = rr.PolyakAverage([w])
    for v in (1.0, 2.0, 6.0):
        w.fill_(v)
        avg.update()
    assert_close(avg.shadow[0], torch.full((3,), 9.0 / 4, dtype=D))  # mean of 0, 1, 2, 6


# ---------------------------------------------------------------------------------------------
# snapshot ensembles
# ---------------------------------------------------------------------------------------------


def test_snapshot_ensemble_with_sgdr():
    torch.manual_seed(1)  # module init only
    model = nn.Linear(4, 3).double()
    x, y = randn(30, 4, seed=3), torch.randint(0, 3, (30,), generator=gen(3))
    opt = SGD(model.parameters(), lr=0.5)
    n_steps, T_0, T_mult = 21, 3, 2
    sched = rs.FunctionScheduler(opt, lambda t, lr0: rs.cosine_warm_restarts(t, lr0, T_0, T_mult))
    ends = rs.sgdr_cycle_ends(n_steps, T_0, T_mult)
    ens = rr.SnapshotEnsemble()
    lr_seen = []
    for t in range(n_steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        lr_seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if t in ends:
            ens.add(model)
    assert len(ens) == len(ends) == 3
    # snapshots are taken at each cycle's lowest LR, right before the restart to lr0
    starts = [0] + [e + 1 for e in ends[:-1]]
    for s0, e in zip(starts, ends):
        assert lr_seen[e] == min(lr_seen[s0:e + 1]) < lr_seen[s0] == 0.5
    # members are frozen copies, distinct from each other and from later training
    w = [m.weight.clone() for m in ens.members]
    assert not torch.allclose(w[0], w[1])
    with torch.no_grad():
        model.weight.add_(1)
    assert torch.equal(ens.members[-1].weight, w[-1])
    # the prediction is the mean of the members' probabilities ...
    probs = ens.predict_proba(x)
    manual = torch.stack([F.softmax(m(x), 1) for m in ens.members]).mean(0).detach()
    assert_close(probs, manual)
    assert_close(probs.sum(1), torch.ones(30, dtype=D))
    # ... so its log-loss is at most the members' average (Jensen; strict if members disagree)
    nll_ens = F.nll_loss(probs.log(), y)
    nll_members = torch.stack([F.cross_entropy(m(x), y) for m in ens.members]).mean()
    assert nll_ens < nll_members


def test_snapshot_ensemble_max_members():
    ens = rr.SnapshotEnsemble(max_members=2)
    m = nn.Linear(1, 1)
    for v in range(4):
        with torch.no_grad():
            m.weight.fill_(v)
        ens.add(m)
    assert [e.weight.item() for e in ens.members] == [2.0, 3.0]
    with pytest.raises(RuntimeError, match="no members"):
        rr.SnapshotEnsemble().predict_proba(torch.zeros(1, 1))


# ---------------------------------------------------------------------------------------------
# device-agnostic: the meta device computes nothing, so any tensor created on a hard-coded
# device (or a mask drawn and left on the generator's device) makes these fail
# ---------------------------------------------------------------------------------------------

_META = {
    "inverted_dropout": lambda x, g: rr.inverted_dropout(x, 0.5, generator=g),
    "scaled_dropout": lambda x, g: rr.scaled_dropout(x, 0.5, generator=g),
    "dropconnect": lambda x, g: rr.dropconnect_linear(
        x.flatten(1), torch.ones(3, 48, device=x.device), torch.ones(3, device=x.device), 0.5,
        generator=g),
    "stochastic_depth": lambda x, g: rr.stochastic_depth(x, 0.5, generator=g),
    "cutout": lambda x, g: rr.cutout(x, 2, generator=g),
    "crop": lambda x, g: rr.random_crop(x, 4, 1, generator=g),
    "flip": lambda x, g: rr.random_horizontal_flip(x, generator=g),
    "mixup": lambda x, g: rr.mixup(x, torch.zeros(2, dtype=torch.long, device=x.device),
                                   generator=g, num_classes=3).inputs,
    "cutmix": lambda x, g: rr.cutmix(x, torch.zeros(2, 3, device=x.device), generator=g).targets,
    "batch_norm": lambda x, g: rr.batch_norm(x, torch.zeros(3, device=x.device),
                                             torch.ones(3, device=x.device), training=True),
    "max_norm": lambda x, g: rr.max_norm_(x.clone(), 1.0),
    "label_smoothing": lambda x, g: rr.label_smoothing_cross_entropy(
        x.flatten(1)[:, :3], torch.zeros(2, dtype=torch.long, device=x.device), 0.1),
}


@pytest.mark.parametrize("name", sorted(_META))
def test_device_agnostic_on_meta(name):
    x = torch.empty(2, 3, 4, 4, device="meta")
    out = _META[name](x, gen(0))
    assert out.device.type == "meta"


def test_clip_grad_norm_device_agnostic_on_meta():
    p = torch.empty(3, device="meta", requires_grad=True)
    p.grad = torch.empty(3, device="meta")
    assert rr.clip_grad_norm_([p], 1.0).device.type == "meta"
