"""Small helpers shared by the tests."""

import numpy as np


def snapshot(opt, variables):
    """Everything a failed call must leave unchanged."""
    return {
        "vars": [np.array(v, copy=True) for v in variables],
        "iterations": opt.iterations,
        "built": opt.built,
        "state": {k: np.array(v, copy=True) for k, v in opt.state_dict().items()} if opt.built else None,
    }


def assert_unchanged(opt, variables, snap):
    for before, v in zip(snap["vars"], variables):
        np.testing.assert_array_equal(np.asarray(v), before, strict=True)
    assert opt.iterations == snap["iterations"]
    assert opt.built == snap["built"]
    if snap["state"] is not None:
        now = opt.state_dict()
        assert set(now) == set(snap["state"])
        for k, v in snap["state"].items():
            np.testing.assert_array_equal(now[k], v, strict=True)
