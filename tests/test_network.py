import numpy as np
import pytest

from mnist_exp.data.datasets import Split
from mnist_exp.nn.reference import Weights, evaluate, init_weights, literal_epoch, predict, train_epoch


def reference_epoch(w1, w2, x_all, y_all, lr, rng):
    """The documented procedure, transcribed literally: one mask draw per sample."""
    return literal_epoch(Weights(w1, w2), Split(x_all, y_all), lr, rng)


def random_split(rng, n):
    x = rng.integers(0, 256, (n, 784)) * (rng.random((n, 784)) < 0.2) / 255.0
    return Split(x, np.eye(10)[rng.integers(0, 10, n)])


@pytest.mark.parametrize("hidden, lr, n, block", [(100, 0.005, 70, 32), (37, 0.02, 64, 32), (1, 0.1, 5, 32),
                                                  (20, 0.01, 33, 32), (50, 0.01, 40, 1), (50, 0.01, 40, 7),
                                                  (50, 0.01, 40, 64)])
def test_fast_epoch_gives_the_literal_procedures_numbers(hidden, lr, n, block):
    data = random_split(np.random.default_rng(1), n)
    ours, theirs = np.random.default_rng(7), np.random.default_rng(7)
    weights = init_weights(ours, hidden)
    w1, w2 = 0.2 * theirs.random((784, hidden)) - 0.1, 0.2 * theirs.random((hidden, 10)) - 0.1
    for _ in range(3):
        fast, literal = train_epoch(weights, data, lr, ours, block), reference_epoch(w1, w2, data.x, data.y, lr, theirs)
        assert fast[1] == literal[1]  # accuracy: the same count of correct samples
        assert fast[0] == pytest.approx(literal[0], rel=1e-12)  # the sums run in another order
    np.testing.assert_allclose(weights.w1, w1, rtol=0, atol=1e-13)
    np.testing.assert_allclose(weights.w2, w2, rtol=0, atol=1e-13)
    assert ours.random() == theirs.random()  # the generators are left in the same state


@pytest.mark.parametrize("hidden", [1, 7, 100, 333])
def test_one_mask_draw_per_epoch_equals_one_per_sample(hidden):
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    per_sample = np.stack([a.integers(low=0, high=2, size=hidden) for _ in range(25)])
    np.testing.assert_array_equal(per_sample, b.integers(low=0, high=2, size=(25, hidden)))


def test_init_draws_w1_then_w2_uniform_in_range():
    weights = init_weights(np.random.default_rng(0), 20)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(weights.w1, 0.2 * rng.random((784, 20)) - 0.1)
    assert weights.w2.shape == (20, 10)
    assert -0.1 <= weights.w1.min() and weights.w1.max() < 0.1


def test_evaluate_is_mean_squared_error_and_accuracy_without_dropout():
    w = Weights(np.eye(784, 3), np.array([[1.0] + [0] * 9, [0, 1.0] + [0] * 8, [0, 0, 1.0] + [0] * 7]))
    x = np.zeros((2, 784))
    x[0, 0], x[1, 2] = 1.0, 0.5
    y = np.eye(10)[[0, 1]]
    np.testing.assert_allclose(predict(w, x)[1, :3], [0, 0, 0.5])
    loss, accuracy = evaluate(w, Split(x, y))
    assert loss == pytest.approx((0 + (1 + 0.25)) / 2)
    assert accuracy == 0.5


def test_training_reduces_the_loss_on_a_learnable_task():
    rng = np.random.default_rng(0)
    x = rng.random((200, 784)) * (rng.random((200, 784)) < 0.2)
    label = x[:, :780].reshape(200, 10, 78).sum(axis=2).argmax(axis=1)  # the block with most ink
    data = Split(x, np.eye(10)[label])
    weights = init_weights(rng, 50)
    first, _ = train_epoch(weights, data, 0.01, rng)
    for _ in range(5):
        last, _ = train_epoch(weights, data, 0.01, rng)
    assert last < 0.8 * first
