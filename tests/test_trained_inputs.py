"""What load_model's predict and predict_proba take: pixels scaled as training scaled them,
floats in [0, 1] as they are, anything else refused in one line (analysis/trained.py)."""

import numpy as np
import pytest

from mnist_exp.analysis.trained import TrainedModel
from mnist_exp.config import Config
from mnist_exp.runner.networks import build

CFG = Config(hidden_size=16, batch_size=8, loss="cross_entropy", relu_derivative="correct", biases=True,
             init="he", optimizer="adam", dtype="float32")
PIXELS = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    return TrainedModel(CFG, build(CFG, np.random.default_rng(1)), None, None)


@pytest.mark.parametrize("images", [PIXELS.astype(np.int64), PIXELS.astype(np.uint16), PIXELS.astype(np.int16),
                                    PIXELS.tolist(), PIXELS.astype(np.float64), PIXELS.astype(np.float32),
                                    PIXELS.reshape(5, 784).astype(np.int32), PIXELS / 255.0, (PIXELS / 255.0).tolist()],
                         ids=["int64", "uint16", "int16", "list", "float64 0-255", "float32 0-255", "int32 rows",
                              "floats 0-1", "list 0-1"])
def test_pixels_of_any_number_type_score_as_their_bytes(model, images):
    np.testing.assert_array_equal(model.predict_proba(images), model.predict_proba(PIXELS))


@pytest.mark.parametrize("images, message", [
    (PIXELS.astype(np.int64) + 1, "images hold integers from 1 to 256: integer images must be pixels from 0 to 255"),
    (PIXELS.astype(np.int64) - 1, "images hold integers from -1 to 254: integer images must be pixels from 0 to 255"),
    (PIXELS * 2.0, "images hold floats from 0 to 510: they must be in [0, 1], or pixels in [0, 255]"),
    (PIXELS / 255.0 - 0.5, "images hold floats from -0.5 to 0.5: they must be in [0, 1], or pixels in [0, 255]"),
    (np.full((2, 784), np.nan), "images hold NaN or infinite values"),
    (np.where(np.arange(784) == 3, np.inf, 0.5)[None], "images hold NaN or infinite values"),
    (PIXELS.astype(bool), "images must be numbers, not bool"),
    (np.array([["a"] * 784]), "images must be numbers, not <U1"),
    (PIXELS.astype(complex), "images must be numbers, not complex128"),
    (PIXELS.reshape(5, 28, 28, 1), "images must be (n, 28, 28), (n, 784) or one (28, 28) image, not (5, 28, 28, 1)"),
    (PIXELS.reshape(-1), "images must be (n, 28, 28), (n, 784) or one (28, 28) image, not (3920,)"),
    ([[0] * 784, [0] * 783], "images must be (n, 28, 28), (n, 784) or one (28, 28) image: rows of different lengths"),
], ids=["256", "-1", "float 510", "negative floats", "nan", "inf", "bool", "strings", "complex", "4-d", "1-d", "ragged"])
def test_what_is_not_images_is_refused_in_one_line(model, images, message):
    for method in (model.predict, model.predict_proba):
        with pytest.raises(ValueError) as e:
            method(images)
        assert str(e.value) == message


def test_one_image_and_no_images(model):
    assert model.predict(PIXELS[0]).shape == (1,)
    assert model.predict(np.zeros((0, 784), np.float32)).shape == (0,)
    assert model.predict_proba(np.zeros((0, 28, 28), np.int64)).shape == (0, 10)
