"""The scoring head against a naive implementation written straight from the formulas."""


import numpy
import pytest
import torch

from spacy_globalpointer.model import build_head_layers


def _head_model(efficient: bool, max_length=None, n_in: int = 6, n_labels: int = 2):
    from thinc.api import Model, noop

    from spacy_globalpointer.model import build_global_pointer

    model = build_global_pointer(noop(), nO=n_labels, head_width=4, efficient=efficient, max_length=max_length)
    head: Model = model.get_ref("head")
    head.set_dim("nI", n_in)
    build_head_layers(head)
    return head


@pytest.mark.parametrize("efficient", [False, True])
def test_head_gradient_matches_finite_differences(efficient):
    torch.manual_seed(0)
    head = _head_model(efficient, max_length=3)
    rng = numpy.random.default_rng(3)
    X = [rng.normal(size=(5, 6)).astype("f"), rng.normal(size=(2, 6)).astype("f")]
    Y, backprop = head.begin_update(X)
    weights = [rng.normal(size=y.shape).astype("f") for y in Y]

    def objective(xs):
        return sum(float((w * y).sum()) for w, y in zip(weights, head.predict(xs)))

    dX = backprop(weights)
    eps = 1e-2
    for doc in range(2):
        for i, j in [(0, 0), (1, 3), (X[doc].shape[0] - 1, 5)]:
            plus = [x.copy() for x in X]
            minus = [x.copy() for x in X]
            plus[doc][i, j] += eps
            minus[doc][i, j] -= eps
            numeric = (objective(plus) - objective(minus)) / (2 * eps)
            assert numeric == pytest.approx(float(dX[doc][i, j]), rel=2e-2, abs=2e-3)

