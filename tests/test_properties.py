"""Hypothesis: the fused kernels against the independent NumPy reference.

Random configurations x dtypes x shapes x memory layouts x call patterns.
float64 must agree to ~1e-12 relative (the operations are the same, only norm
summation order differs); float32 to a few ulps per step.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import ExponentialDecay as RefExponentialDecay
from reference import ReferenceRMSprop

import numba_rmsprop as nr
from numba_rmsprop.engine import config

SHAPES = [(), (1,), (7,), (3, 5), (4, 1, 3), (64,)]
LAYOUTS = ["C", "F", "strided", "transposed"]


@st.composite
def configs(draw):
    cfg = {
        "learning_rate": draw(st.sampled_from([1e-3, 0.01, 0.1])),
        "rho": draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0])),
        "momentum": draw(st.sampled_from([0.0, 0.0, 0.5, 0.9])),
        "epsilon": draw(st.sampled_from([1e-7, 1e-3, 0.0])),
        "centered": draw(st.booleans()),
    }
    if cfg["epsilon"] == 0.0 or cfg["rho"] == 1.0:
        # keep denominators away from 0/0, which is NaN in both
        cfg["epsilon"] = max(cfg["epsilon"], 1e-7)
        cfg["rho"] = min(cfg["rho"], 0.99)
    if draw(st.booleans()):
        cfg["weight_decay"] = draw(st.sampled_from([1e-3, 0.1]))
    clip = draw(st.sampled_from([None, "clipnorm", "clipvalue", "global_clipnorm"]))
    if clip:
        cfg[clip] = draw(st.sampled_from([0.05, 0.5, 3.0]))
    if draw(st.booleans()):
        cfg["use_ema"] = True
        cfg["ema_momentum"] = draw(st.sampled_from([0.0, 0.5, 0.99]))
        cfg["ema_overwrite_frequency"] = draw(st.sampled_from([None, 1, 2, 3]))
    if draw(st.booleans()):
        cfg["loss_scale_factor"] = draw(st.sampled_from([0.5, 128.0]))
    cfg["gradient_accumulation_steps"] = draw(st.sampled_from([None, None, 2, 3]))
    if draw(st.booleans()):
        cfg.update(draw(variants()))
    return cfg


#: The variants (torch, optax, TF1): every boolean keyword-only option of RMSprop, so a
#: new one is drawn without touching this file.
VARIANT_SWITCHES = [
    h.name for h in nr.RMSprop._hyperparameters if h.kw_only and isinstance(h.default, bool)
]


@st.composite
def variants(draw):
    cfg = {name: draw(st.booleans()) for name in VARIANT_SWITCHES}
    cfg["initial_velocity"] = draw(st.sampled_from([0.0, 0.0, 0.5, 1.0]))
    if draw(st.booleans()):  # a schedule: (initial rate, decay steps, decay rate)
        cfg["learning_rate"] = ("ExponentialDecay", 0.05, 3, 0.7)
    return cfg


def make_variable(rng, shape, dtype, layout):
    """A writeable array of ``shape`` laid out as asked (views keep a parent)."""
    base = rng.standard_normal(shape).astype(dtype)
    if layout == "C" or base.ndim == 0:
        return np.ascontiguousarray(base), None
    if layout == "F":
        return np.asfortranarray(base), None
    if layout == "transposed":
        parent = np.ascontiguousarray(base.T)
        return parent.T, None
    parent = rng.standard_normal(tuple(2 * s + 1 for s in shape)).astype(dtype)
    view = parent[tuple(slice(1, None, 2) for _ in shape)]
    view[...] = base
    return view, parent


def gradient(rng, shape, dtype, layout, scale):
    g = (rng.standard_normal(shape) * scale).astype(dtype)
    if layout == "F":
        return np.asfortranarray(g)
    if layout == "strided" and g.ndim:
        big = np.zeros(tuple(2 * s for s in shape), dtype)
        view = big[tuple(slice(None, None, 2) for _ in shape)]
        view[...] = g
        return view
    return g


@pytest.fixture(params=["serial-groups", "parallel-kernels"])
def threshold(request, monkeypatch):
    monkeypatch.setattr(
        config, "PARALLEL_THRESHOLD_BYTES", 10**12 if request.param == "serial-groups" else 1
    )
    return request.param


#: The cases the default run draws (each compiles kernels for its configuration,
#: ~1 s apiece); ``pytest -m slow`` (which .ci/run runs) draws 40 others.
EXAMPLES, MORE_EXAMPLES = 20, 40

kernel_cases = given(
    cfg=configs(),
    dtype=st.sampled_from([np.float32, np.float64]),
    var_specs=st.lists(
        st.tuples(st.sampled_from(SHAPES), st.sampled_from(LAYOUTS)), min_size=1, max_size=4
    ),
    grad_layout=st.sampled_from(LAYOUTS),
    pattern=st.lists(
        st.sampled_from(["all", "all", "none-grad", "subset"]), min_size=1, max_size=7
    ),
    seed=st.integers(0, 2**31 - 1),
)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@kernel_cases
def test_kernels_match_reference(threshold, cfg, dtype, var_specs, grad_layout, pattern, seed):
    check_kernels(threshold, cfg, dtype, var_specs, grad_layout, pattern, seed)


@pytest.mark.slow
@settings(max_examples=MORE_EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@kernel_cases
def test_kernels_match_reference_more_cases(
    threshold, cfg, dtype, var_specs, grad_layout, pattern, seed
):
    check_kernels(threshold, cfg, dtype, var_specs, grad_layout, pattern, seed)


def check_kernels(threshold, cfg, dtype, var_specs, grad_layout, pattern, seed):
    """The kernels against the NumPy reference on one drawn case: values, views, state."""
    rng = np.random.default_rng(seed)
    made = [make_variable(rng, s, dtype, lay) for s, lay in var_specs]
    ours = [v for v, _ in made]
    parents = [p for _, p in made]
    parent_before = [None if p is None else p.copy() for p in parents]
    theirs = [np.array(v, copy=True) for v in ours]

    if cfg.get("nesterov") and not cfg["momentum"]:
        cfg["momentum"] = 0.5  # Nesterov needs momentum
    ref_cfg = dict(cfg)
    if isinstance(cfg["learning_rate"], tuple):
        _, *args = cfg["learning_rate"]
        cfg["learning_rate"] = nr.schedules.ExponentialDecay(*args)
        ref_cfg["learning_rate"] = RefExponentialDecay(*args)
    opt = nr.RMSprop(**cfg)
    ref = ReferenceRMSprop(**ref_cfg)
    if cfg.get("weight_decay") and len(ours) > 1:
        opt.exclude_from_weight_decay(var_list=[ours[0]])
        ref.exclude_from_weight_decay(var_list=[theirs[0]])
    opt.build(ours)
    ref.build(theirs)

    for step, kind in enumerate(pattern):
        scale = 10.0 ** rng.integers(-3, 2)
        grads = [gradient(rng, v.shape, dtype, grad_layout, scale) for v in ours]
        idx = list(range(len(ours)))
        if kind == "none-grad" and len(ours) > 1:
            grads[rng.integers(len(ours))] = None
        if kind == "subset" and len(ours) > 1:
            idx = sorted(rng.choice(len(ours), size=len(ours) - 1, replace=False).tolist())[::-1]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt.apply([grads[i] for i in idx], [ours[i] for i in idx])
            ref.apply(
                [None if grads[i] is None else np.array(grads[i]) for i in idx],
                [theirs[i] for i in idx],
            )
        assert opt.iterations == ref.iterations == step + 1

    if cfg.get("use_ema"):
        opt.finalize_variable_values(ours)
        ref.finalize_variable_values(theirs)

    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (2e-5, 2e-6)
    for a, b in zip(ours, theirs, strict=False):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * max(1.0, np.abs(b).max(initial=0)))
    # views were updated in place, and nothing outside them was touched
    for v, parent, before in zip(ours, parents, parent_before, strict=False):
        if parent is not None:
            mask = np.ones(parent.shape, bool)
            mask[tuple(slice(1, None, 2) for _ in v.shape)] = False
            np.testing.assert_array_equal(parent[mask], before[mask])
            assert np.shares_memory(v, parent)
    state = opt.state_dict()
    for i in range(len(theirs)):
        np.testing.assert_allclose(
            state[f"velocity/{i}"],
            ref.state["velocity"][i],
            rtol=rtol,
            atol=atol * max(1.0, np.abs(ref.state["velocity"][i]).max(initial=0)),
        )


@pytest.mark.parametrize("clip", [{"global_clipnorm": 0.5}, {"clipnorm": 0.5}, {}])
def test_mixed_dtypes_sizes_and_empty_variables(monkeypatch, clip):
    """One optimizer over float32 and float64, tiny, empty and 'large' variables."""
    monkeypatch.setattr(config, "PARALLEL_THRESHOLD_BYTES", 4000)  # (40, 40) f32 takes prange
    rng = np.random.default_rng(7)
    shapes_dtypes = [
        ((3,), np.float32),
        ((40, 40), np.float32),
        ((0,), np.float32),
        ((5, 2), np.float64),
        ((2000,), np.float64),
        ((), np.float64),
    ]
    ours = [rng.standard_normal(s).astype(d) for s, d in shapes_dtypes]
    theirs = [a.copy() for a in ours]
    cfg = dict(
        learning_rate=0.05,
        momentum=0.5,
        centered=True,
        use_ema=True,
        gradient_accumulation_steps=2,
        **clip,
    )
    opt, ref = nr.RMSprop(**cfg), ReferenceRMSprop(**cfg)
    for _ in range(6):
        grads = [rng.standard_normal(a.shape).astype(a.dtype) for a in ours]
        opt.apply(grads, ours)
        ref.apply([g.copy() for g in grads], theirs)
    for a, b in zip(ours, theirs, strict=False):
        tol = 1e-12 if a.dtype == np.float64 else 2e-6
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert ours[2].shape == (0,)
