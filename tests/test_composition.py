"""The table of what composes (``numba_rmsprop.composition``): tests generated from it.

Every cell of ``TABLE`` (entry point x feature) is a case here:

* a cell that works runs the entry point with the feature on a tiny problem and
  compares it with the entry's reference, bit for bit: ``nr.minimize``'s Python
  and compiled loops with each other, every ``minimize_many`` run with its own
  ``nr.minimize`` (the defining rule), ``client=`` with the local call, CUDA (under
  the simulator) with the CPU, a resumed run with the run that never stopped;
* a refused cell must raise the table's exception, naming the combination,
  before anything runs: the objective is never called, no Dask task is sent,
  nothing changes.

A feature or entry added to the table shows up here at once; a feature without a
builder below fails ``test_every_cell_has_a_case``. The options column runs
every option and every variant switch at once (one compiled configuration per
entry point serves it).
"""

from __future__ import annotations

import copy
import math
import pickle
import re

import numpy as np
import pytest
from helpers import quad
from numba import njit
from reference import ReferenceRMSprop

import numba_rmsprop as nr
from numba_rmsprop import composition as C
from numba_rmsprop.frontend.checkpoint import RunCheckpoint

K, N, S = 3, 3, 12  # runs, parameters, samples
RNG = np.random.default_rng(11)
X0 = RNG.uniform(-1, 1, (K, N))
T = np.linspace(-1.0, 1.0, S)
Y = np.stack([0.5 * k + T - 0.3 * T * T for k in range(K)]) + 0.05 * RNG.standard_normal((K, S))
CENTRES = RNG.standard_normal((K, N)) * 2
W = np.array([1.0, 2.0, 0.5])
BASE = dict(learning_rate=0.05, maxiter=8)
#: Every option, and every variant switch away from Keras's default, at once.
ALL_OPTIONS = dict(
    learning_rate=nr.schedules.ExponentialDecay(0.05, 3, 0.8),
    rho=0.8,
    momentum=0.5,
    centered=True,
    epsilon=1e-6,
    weight_decay=0.01,
    clipnorm=2.0,
    use_ema=True,
    ema_momentum=0.7,
    ema_overwrite_frequency=3,
    loss_scale_factor=4.0,
    gradient_accumulation_steps=2,
    initial_velocity=0.1,
    epsilon_in_sqrt=False,
    learning_rate_in_momentum=False,
    decoupled_weight_decay=False,
    nesterov=True,
    bias_correction=True,
)
CELLS = [(e, f) for e in C.ENTRIES for f in C.FEATURES if f in C.TABLE[e]]


# ---------------------------------------------------------------- objectives
@njit
def model(x, t, y):
    """Least squares of ``y ~ x0 + x1 t + x2 t^2``, in loops (the same arithmetic compiled
    or not)."""
    f, g = 0.0, np.zeros(3)
    for i in range(t.size):
        r = x[0] + x[1] * t[i] + x[2] * t[i] * t[i] - y[i]
        f += 0.5 * r * r
        g[0] += r
        g[1] += r * t[i]
        g[2] += r * t[i] * t[i]
    return f / t.size, g / t.size


CALLS = [0]


def model_py(x, t, y):
    """``model``'s Python function, counted."""
    CALLS[0] += 1
    return model.py_func(x, t, y)


def model_loss(x, t, y):
    CALLS[0] += 1
    return model.py_func(x, t, y)[0]


def model_vec(X, t, Y):
    """Every active run at once (one column of ``X`` each), run by run ``model_py``."""
    out = [model_py(x, t, y) for x, y in zip(X.T, Y, strict=True)]
    return np.array([f for f, _ in out]), np.stack([g for _, g in out], axis=1)


@njit
def model_columns(X, t, Y):
    """``model`` on every column of ``X`` (run ``r``'s data ``Y[r]``): the same arithmetic,
    for the compiled vectorized loop."""
    n, m = X.shape
    f, G = np.empty(m), np.empty((n, m))
    for r in range(m):
        f[r], G[:, r] = model(X[:, r], t, Y[r])
    return f, G


def same(a, b, fields=("x", "fun", "jac", "nit", "nfev", "njev", "status", "message")):
    for name in fields:
        va, vb = a[name], b[name]
        if isinstance(va, (np.ndarray, list)):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=name)
        else:
            assert va == vb or (va != va and vb != vb), (name, va, vb)


# ---------------------------------------------------------------- calls
class Call:
    """One call of an entry point: what it gets, and how to run it."""

    def __init__(self, entry):
        self.entry = entry
        self.options = dict(BASE)
        self.bounds = None
        self.callback = None
        self.jac = True
        self.dask = False
        many = entry.startswith("many")
        self.args = (T, Y) if many else (T, Y[0])
        self.run_args = (1,) if many else ()

    def run(self, client=None, x=None, **change):
        o = dict(self.options, **change.pop("options", {}))
        e, args = self.entry, self.args
        X = X0 if x is None else x
        if self.dask:
            import dask.array as da

            args = tuple(
                da.from_array(a, chunks=a.shape[:-1] and (1,) * (a.ndim - 1) + (4,) or (4,))
                for a in args
            )
        if e in ("minimize", "minimize_compiled"):
            if e == "minimize":  # the Python loop, on the same arithmetic
                fun = model_py if self.jac is True else model_loss
                o["compiled"] = False
            else:
                fun = model if self.jac is True else model_loss
            return nr.minimize(
                fun,
                X0[0] if x is None else x,
                args=args,
                jac=self.jac,
                bounds=self.bounds,
                callback=self.callback,
                options=o,
            )
        if e == "many_vectorized_compiled" and self.callback is None and "batch_size" not in o:
            o["compiled"] = True  # the compiled loop or an error, never the Python loop quietly
        compiled = model if self.jac is True else model_loss
        fun = {
            "many_compiled": compiled,
            "many_vectorized": model_vec,
            "many_vectorized_compiled": model_columns,
            "many_client": compiled,
        }.get(e, model_py if self.jac is True else model_loss)
        return nr.minimize_many(
            fun,
            X,
            args=args,
            jac=self.jac,
            bounds=self.bounds,
            options=o,
            run_args=self.run_args,
            vectorized=e in ("many_vectorized", "many_vectorized_compiled"),
            callback=self.callback,
            client=client,
        )

    def reference(self, client=None):
        """What this call must give: the entry's reference."""
        e = self.entry
        if e == "many_client":
            local = copy.copy(self)
            local.entry = "many_compiled"
            return local.run()
        if e.startswith("many"):  # each run's nr.minimize (the defining rule)
            results = []
            for i in range(K):
                o = {k: (v[i] if isinstance(v, list) else v) for k, v in self.options.items()}
                fun = (
                    model
                    if e in ("many_compiled", "many_vectorized_compiled")
                    else (model_py if self.jac is True else model_loss)
                )
                args = (T, Y[i])
                if self.dask:
                    import dask.array as da

                    args = tuple(da.from_array(a, chunks=(4,)) for a in args)
                results.append(
                    nr.minimize(fun, X0[i], args=args, jac=self.jac, bounds=self.bounds, options=o)
                )
            return results
        other = copy.copy(self)  # the other loop of nr.minimize
        other.entry = "minimize" if e == "minimize_compiled" else "minimize_compiled"
        return other.run()


def check(call, out, ref):
    if isinstance(ref, list):
        for i, r in enumerate(ref):
            same({k: np.asarray(out[k])[i] if k != "message" else out[k][i] for k in out}, r)
    else:
        same(out, ref)


# ---------------------------------------------------------------- features
def _resume(call, client=None):
    """Run 4 steps, then resume to the full ``maxiter``: as the run that never stopped."""
    call.options.pop("resume")
    first = call.run(client, options=dict(maxiter=4))
    return call.run(client, x=first.x, options=dict(resume=first))


def feature(call, name):
    """Turn ``name`` on in ``call``; returns how to run it (default: ``call.run``)."""
    o = call.options
    if name == "dask_data":
        call.dask = True
        o.update(batch_size=4, seed=1)
    elif name == "per_run_data":
        pass  # the many calls' data are per run already
    elif name == "minibatches":
        o.update(batch_size=4, seed=1)
    elif name == "per_run_seed":
        o.update(batch_size=4, seed=[1, 2, 3])
    elif name == "callback":
        seen = []
        call.callback = lambda *a, **k: seen.append(1)
        call.seen = seen
    elif name == "finite_differences":
        call.jac = None
    elif name == "callable_lr":
        o["learning_rate"] = lambda: 0.05
    elif name == "options":
        o.update(ALL_OPTIONS)
    elif name == "per_run_options":
        o.update(learning_rate=[0.02, 0.05, 0.1], momentum=[0.0, 0.9, 0.5])
    elif name == "bounds":
        call.bounds = [(-0.5, 0.5)] * N
    elif name == "tolerances":
        o.update(gtol=0.2, ftol=1e-3, patience=2, tol_momentum=0.0)
    elif name == "maxiter_inf":
        o.update(maxiter=math.inf, gtol=0.3, tol_momentum=0.0)
    elif name == "checkpoint":
        o["resume"] = [None] * K  # (refused cells fail on it; _resume makes real ones)
        return _resume
    else:
        raise KeyError(name)
    return None


def _reference_of(call, name):
    if name == "callback":  # a callback changes nothing but the callback's calls
        quiet = copy.copy(call)
        quiet.callback = None
        return quiet.reference() if not call.entry.startswith("minimize") else quiet.run()
    if name == "callable_lr":  # the same rate as a number
        plain = copy.copy(call)
        plain.options = dict(call.options, learning_rate=0.05)
        return plain.reference() if call.entry.startswith("many") else plain.run()
    if name == "maxiter_inf":  # as a large finite limit
        finite = copy.copy(call)
        finite.options = dict(call.options, maxiter=10_000)
        return finite.reference() if call.entry.startswith("many") else finite.run()
    if name == "checkpoint":  # the run that never stopped
        return call.run()
    if name == "dask_data" and not call.entry.startswith("many"):  # the data in memory
        mem = copy.copy(call)
        mem.dask = False
        return mem.run()
    return call.reference()


# ---------------------------------------------------------------- the optimizer's cells
def _apply_case(entry, name):
    on_gpu = entry == "apply_cuda"
    cuda = pytest.importorskip("numba.cuda") if on_gpu else None
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(7), rng.standard_normal((2, 3))]
    grads = [[rng.standard_normal(a.shape) for a in init] for _ in range(6)]
    kw = dict(ALL_OPTIONS, learning_rate=0.05) if name == "options" else dict(BASE, momentum=0.9)
    kw.pop("maxiter", None)

    def device(a):
        return cuda.to_device(a) if on_gpu else a.copy()

    def host(a):
        return a.copy_to_host() if on_gpu else np.asarray(a)

    def run(opt, xs, steps, on_device=on_gpu):
        for g in steps:
            opt.apply([device(x) if on_device else x.copy() for x in g], xs)
        return [host(x) if on_device else x for x in xs]

    xs = [device(a) for a in init]
    opt = nr.RMSprop(**kw)
    if name == "options":
        got = run(opt, xs, grads)
        if on_gpu:
            want = run(nr.RMSprop(**kw), [a.copy() for a in init], grads, on_device=False)
        else:
            ref = ReferenceRMSprop(
                **{k: v for k, v in kw.items() if k != "learning_rate"}, learning_rate=0.05
            )
            want = [a.copy() for a in init]
            for g in grads:
                ref.apply([x.copy() for x in g], want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        return
    run(opt, xs, grads[:3])
    if name == "checkpoint":
        state = opt.state_dict()
        opt2 = nr.RMSprop.from_config(opt.get_config())
        xs2 = [device(host(x)) for x in xs]
        opt2.load_state_dict(state)
    elif name == "from_config":
        opt2 = nr.RMSprop.from_config(opt.get_config())
        opt2.load_state_dict(opt.state_dict())
        xs2 = [device(host(x)) for x in xs]
    elif name == "pickle":
        opt2, xs2 = pickle.loads(pickle.dumps((opt, xs)))
    else:
        raise KeyError(name)
    a, b = run(opt, xs, grads[3:]), run(opt2, xs2, grads[3:])
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def _apply_refused(entry, name, cell):
    cuda = pytest.importorskip("numba.cuda")
    x = cuda.to_device(np.ones(4))
    opt = nr.RMSprop(0.1)
    opt.apply([cuda.to_device(np.ones(4))], [x])
    before = opt.state_dict()
    with pytest.raises(cell.error, match=re.escape(C.refusal(entry, {name}).reason[:60])):
        pickle.dumps(opt)
    after = opt.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


# ---------------------------------------------------------------- the CUDA minimize_many cells
def _cuda_case(name, cell):
    cuda = pytest.importorskip("numba.cuda")
    calls = [0]

    def device_quad(X, Cd, w):  # the host's arithmetic on device arrays (simulator)
        calls[0] += 1
        Xh, Ch, wh = X.copy_to_host().T, Cd.copy_to_host(), w.copy_to_host()
        f = np.array([0.5 * np.sum(wh * (x - c) ** 2) for x, c in zip(Xh, Ch, strict=True)])
        return cuda.to_device(f), cuda.to_device(np.ascontiguousarray((wh * (Xh - Ch)).T))

    def host_quad(x, c, w):
        return 0.5 * np.sum(w * (x - c) ** 2), w * (x - c)

    o, bounds, callback, jac = dict(BASE, maxiter=4), None, None, True
    if name == "options":
        o.update(ALL_OPTIONS)
    elif name == "per_run_options":
        o.update(learning_rate=[0.02, 0.05, 0.1], momentum=[0.0, 0.9, 0.5])
    elif name == "bounds":
        bounds = [(-0.5, 0.5)] * N
    elif name == "tolerances":
        o.update(gtol=0.5, tol_momentum=0.0)
    elif name == "maxiter_inf":  # the runs stop after 10, 3 and 4 steps (the simulator is slow)
        o.update(maxiter=math.inf, gtol=0.5, tol_momentum=0.0, learning_rate=0.3)
    elif name == "callback":
        callback = lambda *a: None  # noqa: E731
    elif name in ("per_run_data",):
        pass
    elif name == "minibatches":
        o.update(batch_size=2)
    elif name == "finite_differences":
        jac = None
    elif name == "callable_lr":
        o["learning_rate"] = lambda: 0.05
    elif name == "checkpoint":
        o["resume"] = [None] * K
    elif name == "dask_data":
        pytest.importorskip("dask.array")
    else:
        raise KeyError(name)
    args = (cuda.to_device(CENTRES), cuda.to_device(W))
    if name == "dask_data":
        import dask.array as da

        args = (da.from_array(CENTRES), cuda.to_device(W))

    def run():
        return nr.minimize_many(
            device_quad,
            cuda.to_device(X0),
            args=args,
            run_args=(0,),
            vectorized=True,
            jac=jac,
            bounds=bounds,
            options=o,
            callback=callback,
        )

    if isinstance(cell, C.Refused):
        with pytest.raises(cell.error, match=re.escape(C.refusal("many_cuda", {name}).reason[:50])):
            run()
        assert calls[0] == 0
        return
    res = run()
    for i in range(K):
        oi = {k: (v[i] if isinstance(v, list) else v) for k, v in o.items()}
        one = nr.minimize(
            host_quad, X0[i], args=(CENTRES[i], W), jac=True, bounds=bounds, options=oi
        )
        np.testing.assert_allclose(res.x[i], one.x, rtol=1e-12, err_msg=f"run {i}")
        assert res.nit[i] == one.nit and res.status[i] == one.status


# ---------------------------------------------------------------- the generated tests
def test_every_cell_has_a_case():
    """Every feature of the table has a builder here (a new one must get one)."""
    for entry, name in CELLS:
        if entry in ("apply", "apply_cuda"):
            assert name in ("options", "checkpoint", "pickle", "from_config"), (entry, name)
        elif name != "checkpoint":
            assert feature(Call(entry), name) is None


#: Cells that compile another state layout of the compiled vectorized loop (~10 s each,
#: cold): the slow tier. Its other cells share one layout and stay in the default tier.
SLOW_CELLS = {("many_vectorized_compiled", f) for f in ("options", "per_run_options", "bounds")}


@pytest.mark.parametrize(
    "entry, name",
    [
        pytest.param(e, f, marks=pytest.mark.slow) if (e, f) in SLOW_CELLS else (e, f)
        for e, f in CELLS
    ],
    ids=[f"{e}-{f}" for e, f in CELLS],
)
def test_cell(entry, name, request):
    cell = C.TABLE[entry][name]
    if entry in ("apply", "apply_cuda"):
        if isinstance(cell, C.Refused):
            return _apply_refused(entry, name, cell)
        return _apply_case(entry, name)
    if entry == "many_cuda":
        return _cuda_case(name, cell)
    client = request.getfixturevalue("client") if entry == "many_client" else None
    call = Call(entry)
    how = feature(call, name)
    if isinstance(cell, C.Refused):
        CALLS[0] = 0
        sent = []
        if client is not None:  # no Dask task either
            request.getfixturevalue("monkeypatch").setattr(
                client, "submit", lambda *a, **k: sent.append(a)
            )
        with pytest.raises(cell.error, match=re.escape(C.refusal(entry, {name}).reason[:50])):
            call.run(client)
        assert CALLS[0] == 0 and not sent, "work ran before the refusal"
        return
    out = how(call, client) if how is not None else call.run(client)
    ref = _reference_of(call, name)
    if name == "finite_differences" and not entry.startswith("many"):
        np.testing.assert_allclose(out.x, ref.x, rtol=1e-9)
        return
    check(call, out, ref)
    if name == "callback":
        assert call.seen, "the callback was not called"
    if name in ("checkpoint",):
        ckpts = out.checkpoint if isinstance(out.checkpoint, list) else [out.checkpoint]
        assert all(isinstance(c, RunCheckpoint) for c in ckpts)


@pytest.mark.parametrize("entry", ["minimize", "many_compiled", "many_each"])
def test_pairs_are_refused_first(entry):
    """Two features that never combine (``PAIRS``), whatever the entry."""
    pytest.importorskip("dask.array")
    for (_, b), cell in C.PAIRS.items():
        call = Call(entry)
        feature(call, b)
        first = call.run(options=dict(maxiter=2))
        CALLS[0] = 0
        with pytest.raises(cell.error, match="not supported"):
            call.run(x=first.x, options=dict(resume=first))
        assert CALLS[0] == 0


def test_the_docs_show_the_table():
    import os

    from helpers import ROOT

    with open(os.path.join(ROOT, "docs", "composition.md"), encoding="utf-8") as f:
        assert C.markdown() in f.read(), "docs/composition.md's table is not composition.markdown()"


def test_quad_is_the_shared_objective():
    """The per-run objectives of test_many and test_dask stay importable here."""
    assert quad(np.zeros(3), np.ones(3), np.ones(3))[0] == 1.5


# ---------------------------------------------------------------- validation before work
#: Bad input, per entry family: (name, change, exception, message). Each is checked on
#: every entry it applies to: the error names the problem, and nothing ran.
MANY = ("many_compiled", "many_vectorized", "many_each", "many_client")
BAD = [
    (
        "maxiter inf without another rule",
        MANY,
        dict(options=dict(maxiter=[5, math.inf, 5])),
        ValueError,
        r"maxiter\[1\]=inf. needs another stopping rule",
    ),
    (
        "a bad per-run value",
        MANY,
        dict(options=dict(learning_rate=[0.1, 0.1, -1.0])),
        ValueError,
        r"learning_rate\[2\]",
    ),
    (
        "nesterov with a run of momentum 0",
        MANY,
        dict(options=dict(nesterov=True, momentum=[0.9, 0.0, 0.9])),
        ValueError,
        r"momentum\[1\]",
    ),
    (
        "a non-integer seed",
        MANY + ("minimize", "minimize_compiled"),
        dict(options=dict(seed=1.5)),
        TypeError,
        "`seed` must be",
    ),
    (
        "dask arrays without batch_size",
        ("many_compiled", "many_each", "many_client", "minimize", "minimize_compiled"),
        dict(dask=True),
        ValueError,
        "pass options\\['batch_size'\\]",
    ),
    (
        "data of different lengths",
        MANY + ("minimize", "minimize_compiled"),
        dict(short=True, options=dict(batch_size=4)),
        ValueError,
        "same length",
    ),
    (
        "a 2-D x0",
        ("minimize", "minimize_compiled"),
        dict(x=np.zeros((1, N))),
        ValueError,
        "'x0' must only have one dimension",
    ),
]
BAD_CASES = [(name, e, ch, exc, m) for name, entries, ch, exc, m in BAD for e in entries]


@pytest.mark.parametrize(
    "name, entry, change, exc, match", BAD_CASES, ids=[f"{e}-{n}" for n, e, *_ in BAD_CASES]
)
def test_bad_input_fails_before_anything_runs(name, entry, change, exc, match, request):
    if entry == "many_vectorized" and change.get("dask"):
        pytest.skip("refused by the table")
    client = request.getfixturevalue("client") if entry == "many_client" else None
    sent = []
    if client is not None:
        request.getfixturevalue("monkeypatch").setattr(
            client, "submit", lambda *a, **k: sent.append(a)
        )
        request.getfixturevalue("monkeypatch").setattr(
            client, "scatter", lambda *a, **k: sent.append(a)
        )
    call = Call(entry)
    change = dict(change)
    call.dask = change.pop("dask", False)
    if change.pop("short", False):
        call.args = (call.args[0][:-1],) + call.args[1:]
    x = change.pop("x", None)
    CALLS[0] = 0
    with pytest.raises(exc, match=match):
        call.run(client, x=x, **change)
    assert CALLS[0] == 0 and not sent, "work ran before the error"


def test_maximize_with_ftol_is_minimize_of_the_negation():
    """ftol watches the loss the run improves: ascending -f is descending f, bit for bit."""

    def neg(x, t, y):
        f, g = model.py_func(x, t, y)
        return -f, -g

    for o in (dict(ftol=1e-3, patience=3, tol_momentum=0.0), dict(gtol=0.05, tol_momentum=0.0)):
        up = nr.minimize(
            neg,
            X0[0],
            args=(T, Y[0]),
            jac=True,
            options=dict(o, maximize=True, learning_rate=0.05, maxiter=2000),
        )
        down = nr.minimize(
            model.py_func,
            X0[0],
            args=(T, Y[0]),
            jac=True,
            options=dict(o, learning_rate=0.05, maxiter=2000),
        )
        assert up.nit == down.nit < 2000 and up.status == down.status == 0
        np.testing.assert_array_equal(up.x, down.x)
        assert up.fun == -down.fun


# ---------------------------------------------------------------- the optimizer's bad input
def _keras_loads_a_torch_checkpoint():
    torch = nr.RMSprop.like_torch(lr=0.1, momentum=0.9)
    torch.apply([np.ones(3)], [np.ones(3)])
    keras = nr.RMSprop(0.1, momentum=0.9)
    keras.load_state_dict(torch.state_dict())


_BUF = np.zeros(10)
#: RMSprop.apply (and its constructors and checkpoints): (name, call, exception, message).
APPLY_BAD = [
    (
        "an np.matrix variable",
        lambda: nr.RMSprop(0.1).apply([np.ones((1, 3))], [np.asmatrix(np.zeros((1, 3)))]),
        TypeError,
        "numpy.matrix",
    ),
    (
        "overlapping views of one buffer",
        lambda: nr.RMSprop(0.1).apply([np.ones(6), np.ones(6)], [_BUF[0:6], _BUF[4:10]]),
        ValueError,
        r"variables\[0\] and variables\[1\] share memory",
    ),
    (
        "like_torch with Keras's name for the rate",
        lambda: nr.RMSprop.like_torch(learning_rate=0.1),
        TypeError,
        "torch's name `lr`",
    ),
    (
        "like_torch with Nesterov",
        lambda: nr.RMSprop.like_torch(momentum=0.9, nesterov=True),
        TypeError,
        "no Nesterov momentum",
    ),
    (
        "a torch checkpoint into a Keras optimizer",
        _keras_loads_a_torch_checkpoint,
        ValueError,
        "another flavor",
    ),
]


@pytest.mark.parametrize("name, call, exc, match", APPLY_BAD, ids=[c[0] for c in APPLY_BAD])
def test_apply_bad_input_fails_before_anything_changes(name, call, exc, match):
    with pytest.raises(exc, match=match):
        call()
    assert not _BUF.any()  # the views were not updated
