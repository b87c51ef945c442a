"""The tiny trainer and the data made in code: shapes, labels, determinism."""
import math

import pytest

torch = pytest.importorskip("torch")

from recipecheck.runtime.reference import data as D  # noqa: E402
from recipecheck.runtime.reference.trainer import (  # noqa: E402
    RNNRegressor, TrainConfig, evaluate, mlp, parameter_vector, small_cnn, train,
)


def test_spiral_shapes_and_labels():
    X, y = D.spiral(50, 4, seed=0)
    assert X.shape == (200, 2) and y.shape == (200,)
    assert X.dtype == torch.float32 and y.dtype == torch.long
    assert torch.equal(torch.bincount(y), torch.full((4,), 50))
    assert float(X.norm(dim=1).max()) <= 1.0 + 1e-6  # radius in [0, 1]


def test_blobs_and_class_sorted():
    X, y = D.blobs(30, 3, dim=5, seed=1)
    assert X.shape == (90, 5)
    perm = torch.randperm(90, generator=D.make_generator(0))
    Xs, ys = D.class_sorted(X[perm], y[perm])
    assert torch.equal(ys, torch.sort(ys).values)
    Xb, yb = D.class_sorted_blobs(10, 3, seed=2)
    assert torch.all(yb[1:] >= yb[:-1])


def test_adding_problem_targets():
    X, y = D.adding_problem(64, 12, seed=0)
    assert X.shape == (64, 12, 2) and y.shape == (64, 1)
    assert torch.all(X[:, :, 1].sum(1) == 2)
    assert torch.allclose(y[:, 0], (X[:, :, 0] * X[:, :, 1]).sum(1))


def test_noise_features_and_split():
    X, y = D.noise_features(40, 100, seed=0)
    assert X.shape == (40, 100) and set(y.tolist()) == {0, 1}
    s = D.train_val_split(X, y, 0.25, seed=0)
    assert s.X_val.shape[0] == 10 and s.X_train.shape[0] == 30


def test_digits_optional():
    pytest.importorskip("sklearn")
    s = D.digits(image=True, seed=0)
    assert s.X_train.shape[1:] == (1, 8, 8)
    assert 0.0 <= float(s.X_train.min()) and float(s.X_train.max()) <= 1.0
    assert set(s.y_train.unique().tolist()) == set(range(10))


def test_data_does_not_touch_global_rng():
    state = torch.get_rng_state()
    D.spiral(10, 3, seed=0)
    D.blobs(10, 3, seed=0)
    D.adding_problem(8, 6, seed=0)
    assert torch.equal(state, torch.get_rng_state())


def _run(seed, **kw):
    X, y = D.spiral(60, 3, seed=0)
    model = mlp(2, 3, (32,), block=("linear", "act", "dropout"), dropout=0.2, seed=seed)
    h = train(model, X, y, TrainConfig(epochs=3, batch_size=20, optimizer="adam", lr=0.01, **kw), seed=seed)
    return model, h


def test_same_seed_bitwise_equal_parameters():
    m1, h1 = _run(3)
    m2, h2 = _run(3)
    assert torch.equal(parameter_vector(m1), parameter_vector(m2))
    assert h1.loss == h2.loss


def test_different_seed_different_parameters():
    m1, _ = _run(3)
    m2, _ = _run(4)
    assert not torch.equal(parameter_vector(m1), parameter_vector(m2))


def test_training_leaves_global_rng_alone():
    state = torch.get_rng_state()
    _run(0)
    assert torch.equal(state, torch.get_rng_state())


def test_history_records_and_learning():
    X, y = D.spiral(100, 3, seed=0)
    model = mlp(2, 3, (64,), seed=0)
    h = train(model, X, y, TrainConfig(epochs=20, batch_size=30, lr=0.5, momentum=0.9, record_update_ratio=True),
              X_val=X, y_val=y, seed=0)
    assert h.steps == 200 and len(h.loss) == len(h.lr) == len(h.grad_norm) == len(h.update_ratio) == 200
    assert len(h.train_acc) == len(h.val_acc) == 20
    assert h.final_train_acc >= 0.85
    assert h.loss[0] == pytest.approx(math.log(3), rel=0.1)


def test_scheduler_interval_and_accumulation_steps():
    X, y = D.spiral(40, 3, seed=0)  # 120 examples, 12 batches of 10
    sched = lambda o, spe, ep: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5)  # noqa: E731
    h = train(mlp(2, 3, (8,), seed=0), X, y, TrainConfig(epochs=2, batch_size=10, lr=1.0, scheduler=sched,
                                                        scheduler_interval="epoch"), seed=0)
    assert h.epoch_lr == [0.5, 0.25]
    h = train(mlp(2, 3, (8,), seed=0), X, y, TrainConfig(epochs=1, batch_size=10, lr=1.0, scheduler=sched,
                                                        scheduler_interval="batch"), seed=0)
    assert h.epoch_lr == [0.5 ** 12]
    h = train(mlp(2, 3, (8,), seed=0), X, y, TrainConfig(epochs=1, batch_size=10, accumulation_steps=4), seed=0)
    assert h.steps == 3


def test_eval_mode_flag_and_mode_restored():
    X, y = D.spiral(30, 3, seed=0)
    model = mlp(2, 3, (16,), block=("linear", "act", "dropout"), seed=0)
    model.train()
    a = evaluate(model, X, y, eval_mode=True)
    b = evaluate(model, X, y, eval_mode=True)
    assert a == b and model.training


def test_cnn_and_rnn_models_run():
    out = small_cnn(1, 10, seed=0)(torch.zeros(2, 1, 8, 8))
    assert out.shape == (2, 10)
    X, y = D.adding_problem(16, 8, seed=0)
    m = RNNRegressor(2, 8, 1, seed=0)
    h = train(m, X, y, TrainConfig(epochs=1, batch_size=8, loss="mse", clip_grad_norm=1.0), seed=0)
    assert h.steps == 2 and all(math.isfinite(v) for v in h.loss)


def test_init_schemes():
    m = mlp(4, 2, (8,), init="zeros", seed=0)
    assert all(float(p.detach().abs().sum()) == 0 for p in m.parameters())
    m = mlp(4, 2, (8,), init=0.5, seed=0)
    assert torch.all(m[0].weight == 0.5)
    m = mlp(256, 2, (256,), init="kaiming", seed=0)
    assert float(m[0].weight.detach().std()) == pytest.approx(math.sqrt(2 / 256), rel=0.05)
