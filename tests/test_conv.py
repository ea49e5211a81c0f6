"""Convolution layers: against plain loops written from the definitions, and finite differences."""

import numpy as np
import pytest

from mnist_exp.nn import cnn
from mnist_exp.nn.conv import Conv2D, Flatten, Image, MaxPool2D
from mnist_exp.nn.layers import Training
from mnist_exp.nn.losses import loss_and_grad


def zero_padded(x, w):
    """x inside a border of half the kernel of w: (x padded, kernel rows, kernel columns, ph, pw)."""
    n, h, wd, cin = x.shape
    kh, kw = w.shape[:2]
    ph, pw = kh // 2, kw // 2
    xp = np.zeros((n, h + 2 * ph, wd + 2 * pw, cin))
    xp[:, ph:ph + h, pw:pw + wd] = x
    return xp, kh, kw, ph, pw


def loop_conv(x, w, b):
    """'same' convolution (cross-correlation, as every framework computes it), pixel by pixel."""
    (n, h, wd, cin), cout = x.shape, w.shape[3]
    xp, kh, kw, _, _ = zero_padded(x, w)
    y = np.zeros((n, h, wd, cout))
    for s in range(n):
        for i in range(h):
            for j in range(wd):
                for o in range(cout):
                    y[s, i, j, o] = b[o] + sum(xp[s, i + a, j + c, k] * w[a, c, k, o]
                                               for a in range(kh) for c in range(kw) for k in range(cin))
    return y


def loop_conv_grads(x, w, dy):
    """dL/dw, dL/db, dL/dx of loop_conv, accumulated pixel by pixel."""
    n, h, wd, _ = x.shape
    xp, kh, kw, ph, pw = zero_padded(x, w)
    dw, dxp = np.zeros_like(w), np.zeros_like(xp)
    for s in range(n):
        for i in range(h):
            for j in range(wd):
                for a in range(kh):
                    for c in range(kw):
                        dw[a, c] += np.outer(xp[s, i + a, j + c], dy[s, i, j])
                        dxp[s, i + a, j + c] += w[a, c] @ dy[s, i, j]
    return dw, dy.sum(axis=(0, 1, 2)), dxp[:, ph:ph + h, pw:pw + wd]


def loop_pool(x, size):
    n, h, w, c = x.shape
    y = np.zeros((n, h // size, w // size, c))
    for i in range(h // size):
        for j in range(w // size):
            y[:, i, j] = x[:, i * size:(i + 1) * size, j * size:(j + 1) * size].max(axis=(1, 2))
    return y


@pytest.mark.parametrize("cin, cout, kernel, dtype", [(1, 3, 5, np.float64), (2, 4, 3, np.float64),
                                                       (3, 2, 5, np.float32)])
def test_conv2d_matches_the_loops_forward_and_backward(cin, cout, kernel, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, cin)).astype(dtype)
    w = rng.standard_normal((kernel, kernel, cin, cout)).astype(dtype)
    layer = Conv2D(w.copy())
    layer.params["b"][...] = rng.standard_normal(cout)
    y = layer.forward(x, Training(rng))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    assert y.dtype == dtype and y.shape == (2, 7, 6, cout)
    np.testing.assert_allclose(y, loop_conv(x, w, layer.params["b"]), **tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy.copy())
    dw, db, dx_loops = loop_conv_grads(x.astype(float), w.astype(float), dy.astype(float))
    np.testing.assert_allclose(layer.grads["w"], dw, **tol)
    np.testing.assert_allclose(layer.grads["b"], db, **tol)
    np.testing.assert_allclose(dx, dx_loops, **tol)


@pytest.mark.parametrize("chunk_values", [1, 400, 2 ** 18])
def test_conv2d_in_cache_sized_chunks_of_the_batch_matches_the_loops(monkeypatch, chunk_values):
    """The batch's im2col rows are made and multiplied chunk by chunk (one image, several, all):
    forward, weight gradient summed over the chunks, and the input gradient."""
    from mnist_exp.nn import conv

    monkeypatch.setattr(conv, "CHUNK_VALUES", chunk_values)
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((5, 6, 5, 3)), rng.standard_normal((3, 3, 3, 4))
    layer = Conv2D(w.copy())
    layer.params["b"][...] = rng.standard_normal(4)
    np.testing.assert_allclose(layer.forward(x, Training(rng)), loop_conv(x, w, layer.params["b"]), rtol=1e-10)
    dy = rng.standard_normal((5, 6, 5, 4))
    dx = layer.backward(dy.copy())
    dw, db, dx_loops = loop_conv_grads(x, w, dy)
    np.testing.assert_allclose(layer.grads["w"], dw, rtol=1e-10)
    np.testing.assert_allclose(layer.grads["b"], db, rtol=1e-10)
    np.testing.assert_allclose(dx, dx_loops, rtol=1e-10, atol=1e-12)
    assert layer.backward(dy.copy(), need_dx=False) is None
    np.testing.assert_allclose(layer.grads["w"], dw, rtol=1e-10)  # summed afresh, not onto the last


def test_max_pooling_matches_the_loops_and_sends_a_tie_to_its_first_maximum():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 9, 3))  # odd sizes: the last row and column are dropped
    pool = MaxPool2D(2)
    y = pool.forward(x, Training(rng))
    np.testing.assert_array_equal(y, loop_pool(x, 2))
    np.testing.assert_array_equal(MaxPool2D(2).forward(x, None), y)  # evaluation: the same maxima
    dx = pool.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.sum() == y.size and not dx[:, 6].any() and not dx[:, :, 8].any()
    ties = np.zeros((1, 2, 2, 1))  # a blank window: all four are maxima
    pool = MaxPool2D(2)
    pool.forward(ties, Training(rng))
    np.testing.assert_array_equal(pool.backward(np.full((1, 1, 1, 1), 5.0))[0, :, :, 0], [[5, 0], [0, 0]])


@pytest.mark.parametrize("shape, pool", [((3, 8, 8), 2), ((2, 7, 9), 2), ((2, 9, 9), 3)])
def test_the_first_convolution_pooled_in_one_layer_is_conv_then_pool(shape, pool):
    """PooledConv: Conv2D then MaxPool2D (odd sizes drop their last rows and columns), the
    gradient of a tie to its first maximum (blank images: every window ties), the bias after."""
    from mnist_exp.nn.pooled_conv import PooledConv

    rng = np.random.default_rng(8)
    x = rng.standard_normal((*shape, 1))
    x[0] = 0.0  # a blank image
    w, b = rng.standard_normal((3, 3, 1, 4)), rng.standard_normal(4)
    fused, conv, pooling = PooledConv(w.copy(), pool=pool), Conv2D(w.copy()), MaxPool2D(pool)
    fused.params["b"][...] = conv.params["b"][...] = b
    y = fused.forward(x, Training(rng))
    expected = pooling.forward(conv.forward(x, Training(rng)), Training(rng))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, loop_pool(loop_conv(x, w, b), pool), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    assert fused.backward(dy.copy(), need_dx=False) is None
    conv.backward(pooling.backward(dy.copy()), need_dx=False)
    for name in ("w", "b"):
        np.testing.assert_allclose(fused.grads[name], conv.grads[name], rtol=1e-10, err_msg=name)
    np.testing.assert_array_equal(fused.forward(x, None), y)  # evaluation: the same outputs


def test_only_the_first_convolution_is_pooled_in_one_layer_even_with_one_channel_after_it():
    """channels=[1, 2]: the second convolution also takes one channel, and needs its input gradient."""
    opts = cnn.Options(channels=(1, 2), kernel_size=3, pool=2, dense_width=5, biases=True)
    stack = cnn.build(np.random.default_rng(2), (8, 8), opts, "he", np.float64)
    assert [layer.kind for layer in stack.layers][:6] == ["image", "conv", "relu", "conv", "maxpool", "relu"]
    out = stack.forward(np.random.default_rng(0).random((3, 64)), Training(np.random.default_rng(0)))
    stack.backward(np.ones_like(out))
    assert all(np.isfinite(p.grad).all() for p in stack.parameters())


def small_cnn(dropout=0.0):
    opts = cnn.Options(channels=(2, 3), kernel_size=3, pool=2, dense_width=5, dropout=dropout, biases=True)
    return cnn.build(np.random.default_rng(2), (8, 8), opts, "he", np.float64)


def test_a_small_cnn_has_the_gradient_of_finite_differences():
    stack = small_cnn(dropout=0.3)
    rng = np.random.default_rng(3)
    x, y = rng.random((4, 64)), np.eye(10)[rng.integers(0, 10, 4)]

    def objective():
        out = stack.forward(x, Training(np.random.default_rng(4)))  # the same dropout masks each call
        loss, dout = loss_and_grad(out, y, "cross_entropy")
        return loss / len(x), dout

    _, dout = objective()
    stack.backward(dout)
    grads = {p.key: p.grad.copy() for p in stack.parameters()}
    params = {f"{layer.name}/{k}": v for layer in stack.layers for k, v in layer.params.items()}
    assert set(grads) == set(params) == {"conv1/w", "conv1/b", "conv2/w", "conv2/b", "dense1/w", "dense1/b",
                                         "dense2/w", "dense2/b"}
    eps = 1e-6
    for name, grad in grads.items():
        value = params[name]
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + eps
            plus = objective()[0]
            value[index] = original - eps
            minus = objective()[0]
            value[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_the_first_layer_gets_no_input_gradient_and_shapes_flow_through():
    stack = small_cnn()
    kinds = [layer.kind for layer in stack.layers]
    assert kinds == ["image", "conv", "relu", "conv", "maxpool", "relu", "flatten", "dense", "relu",
                     "dropout", "dense"]  # the first conv pools too (pooled_conv.py)
    x = np.random.default_rng(0).random((3, 64))
    out = stack.forward(x, Training(np.random.default_rng(0)))
    assert out.shape == (3, 10)
    assert stack.layers[7].params["w"].shape == (2 * 2 * 3, 5)  # 8 -> 4 -> 2 pixels a side, 3 channels
    conv, asked = stack.layers[1], []
    backward = conv.backward
    conv.backward = lambda dy, need_dx=True: asked.append(need_dx) or backward(dy, need_dx)
    stack.backward(np.ones_like(out))
    assert asked == [False]  # the first conv's input gradient is never computed
    assert Flatten().forward(np.zeros((2, 3, 4, 5)), None).shape == (2, 60)
    assert Image(28, 28).forward(np.zeros((2, 784)), None).shape == (2, 28, 28, 1)


@pytest.mark.parametrize("n", [8, 7, 3])
def test_a_batch_in_parts_on_several_threads_gives_the_whole_batch_gradient(n):
    """A convolutional batch trains in parts on the threads there are (nn/parts.py): the same dropout
    masks, loss and gradients as the whole batch in one pass, up to the order of sums; and the
    same numbers to the bit whatever the thread count (a batch smaller than PARTS has fewer parts)."""
    from mnist_exp.nn.parts import Parts

    rng = np.random.default_rng(5)
    x, y = rng.random((n, 64)), np.eye(10)[rng.integers(0, 10, n)]
    whole, parts = small_cnn(dropout=0.3), small_cnn(dropout=0.3)
    out = whole.forward(x, Training(np.random.default_rng(6)))
    loss, dout = loss_and_grad(out, y, "cross_entropy")
    whole.backward(dout)
    expected = {p.key: p.grad.copy() for p in whole.parameters()}
    got_loss, correct = Parts(parts, "cross_entropy").train_batch(x, y, Training(np.random.default_rng(6)))
    assert got_loss == pytest.approx(loss, rel=1e-12)
    assert correct == np.count_nonzero(out.argmax(axis=1) == y.argmax(axis=1))
    got = {p.key: p.grad for p in parts.parameters()}
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-9, atol=1e-12, err_msg=key)
    for threads in (1, 2, 3, 4, 8):  # run after run, the parts in turn or at once
        again = small_cnn(dropout=0.3)
        assert Parts(again, "cross_entropy").train_batch(x, y, Training(np.random.default_rng(6)), threads)[0] == got_loss
        for p in again.parameters():
            np.testing.assert_array_equal(p.grad, got[p.key])


def test_the_caller_runs_the_parts_a_busy_helper_has_not_started():
    """A helper thread that cannot start (its core held by another process) is not waited for:
    the calling thread runs every part itself, with the same numbers."""
    import threading

    from mnist_exp.nn.parts import Parts

    rng = np.random.default_rng(5)
    x, y = rng.random((8, 64)), np.eye(10)[rng.integers(0, 10, 8)]
    reference = small_cnn(dropout=0.3)
    Parts(reference, "cross_entropy").train_batch(x, y, Training(np.random.default_rng(6)), 1)
    stack = small_cnn(dropout=0.3)
    parts, release = Parts(stack, "cross_entropy"), threading.Event()
    held = parts._helper_pool(1).submit(release.wait, 30)  # the only helper, busy elsewhere
    try:
        done = threading.Event()
        runner = threading.Thread(target=lambda: (parts.train_batch(x, y, Training(np.random.default_rng(6)), 2),
                                                  done.set()))
        runner.start()
        assert done.wait(10), "the batch waited for a helper that never started"
    finally:
        release.set()
        held.result()
        runner.join()
    for mine, theirs in zip(stack.parameters(), reference.parameters()):
        np.testing.assert_array_equal(mine.grad, theirs.grad)


def test_a_cnn_epoch_has_the_same_numbers_on_one_blas_thread_as_on_two():
    """With one BLAS thread allowed (a sweep's job) the parts run in turn, else at once: the same numbers."""
    from threadpoolctl import threadpool_limits

    from mnist_exp.config import Config
    from mnist_exp.data.datasets import Split
    from mnist_exp.runner.networks import build

    cfg = Config(arch="cnn", channels=[4], dense_width=8, batch_size=32, loss="cross_entropy",
                 relu_derivative="correct", biases=True, init="he", dropout=0.3, optimizer="adam", dtype="float32")
    rng = np.random.default_rng(0)
    data = Split(rng.random((80, 784), np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, 80)])
    results = []
    for threads in (1, 2):
        with threadpool_limits(threads, "blas"):
            rng = np.random.default_rng(1)
            model = build(cfg, rng)
            results.append((model.fit_epoch(data, 1e-3, rng), model.fit_epoch(data, 1e-3, rng), model.arrays()))
    (fits_one, again_one, arrays_one), (fits_two, again_two, arrays_two) = results
    assert (fits_one, again_one) == (fits_two, again_two)
    for key in arrays_one:
        np.testing.assert_array_equal(arrays_one[key], arrays_two[key], err_msg=key)


@pytest.mark.parametrize("batch_size, n", [(2, 3), (32, 33), (4, 1), (7, 9)])
def test_a_cnn_trains_whatever_the_last_batch_holds(batch_size, n):
    """A last batch of one image (one part, the others empty) trains, and its numbers are
    those of that image in a batch of its own; evaluation and predict take any row count, 0 too."""
    from mnist_exp.config import Config
    from mnist_exp.data.datasets import Split
    from mnist_exp.runner.networks import build

    cfg = Config(arch="cnn", channels=[4], dense_width=8, batch_size=batch_size, loss="cross_entropy",
                 relu_derivative="correct", biases=True, init="he", dropout=0.3, optimizer="adam", dtype="float32")
    rng = np.random.default_rng(0)
    data = Split(rng.random((n, 784), np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)])
    model = build(cfg, np.random.default_rng(1))
    loss, accuracy = model.fit_epoch(data, 1e-3, np.random.default_rng(2))
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    assert model.outputs(data.x[:0]).shape == (0, 10)
    assert model.outputs(np.zeros((501, 784), np.float32)).shape == (501, 10)  # a last chunk of one row
    assert np.isfinite(model.evaluate(data)[0])


def test_a_one_image_batch_has_the_numbers_of_one_pass():
    """The one-row batch trains in one part: the gradient of that image alone."""
    from mnist_exp.nn.parts import Parts

    rng = np.random.default_rng(5)
    x, y = rng.random((1, 64)), np.eye(10)[[3]]
    whole, parts = small_cnn(dropout=0.3), small_cnn(dropout=0.3)
    out = whole.forward(x, Training(np.random.default_rng(6)))
    loss, dout = loss_and_grad(out, y, "cross_entropy")
    whole.backward(dout)
    got_loss, _ = Parts(parts, "cross_entropy").train_batch(x, y, Training(np.random.default_rng(6)))
    assert got_loss == pytest.approx(loss, rel=1e-12)
    got = {p.key: p.grad for p in parts.parameters()}
    for p in whole.parameters():
        np.testing.assert_allclose(got[p.key], p.grad, rtol=1e-9, atol=1e-12, err_msg=p.key)


def test_flatten_and_image_take_zero_rows():
    assert Flatten().forward(np.zeros((0, 3, 4, 5)), None).shape == (0, 60)
    assert Flatten().backward(np.zeros((0, 60))) is not None
    assert Image(28, 28).backward(np.zeros((0, 28, 28, 1))).shape == (0, 784)
