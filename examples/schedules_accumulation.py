"""Learning-rate schedules and gradient accumulation on a minibatch problem
========================================================================

Part 1 fits the same minibatch least-squares problem with a constant
learning rate and with each of the six Keras schedules of
``numba_rmsprop.schedules``, and reports the gap to the exact optimum. With
minibatches a constant rate leaves the iterate bouncing in a noise ball; a
decaying one shrinks the ball.

Part 2 checks what ``gradient_accumulation_steps`` means. With the same seed,
four consecutive minibatches of 16 are exactly the rows of one minibatch of
64 (one permutation per epoch, cut in order), and the accumulated update uses
the mean of the four mean gradients -- the mean gradient of the 64 rows. So
``batch_size=16, gradient_accumulation_steps=4`` for ``4k`` optimizer calls
matches ``batch_size=64`` for ``k`` calls up to rounding. (Schedules see the
raw call count, so a schedule would need its step counts multiplied by 4;
this part uses a constant rate. And the EMA of the weights, as in Keras, is
updated on every call, so with ``use_ema`` the two runs differ by design.)

With matplotlib installed, the schedules and the gap to the optimum along each
run of part 1 go to ``examples/schedules_accumulation.png``. Run it::

    python examples/schedules_accumulation.py [--quick]
"""

import argparse
import os
import sys

import numpy as np

import numba_rmsprop as nr
from numba_rmsprop import schedules as S


def mse(w, A, b):
    r = A @ w - b
    return 0.5 * (r @ r) / b.size, A.T @ r / b.size


def main(quick=False):
    rng = np.random.default_rng(4)
    n, d = 4096, 10
    A = rng.normal(size=(n, d))
    b = A @ rng.normal(size=d) + rng.normal(size=n)
    w_ls = np.linalg.lstsq(A, b, rcond=None)[0]
    f_ls = mse(w_ls, A, b)[0]
    epochs = 4 if quick else 40
    bs = 32
    steps = epochs * n // bs
    lr0 = 0.01

    schedules = {
        "constant": lr0,
        "ExponentialDecay": S.ExponentialDecay(lr0, steps // 8, 0.5),
        "PiecewiseConstantDecay": S.PiecewiseConstantDecay(
            [steps // 2, 3 * steps // 4], [lr0, lr0 / 10, lr0 / 100]
        ),
        "PolynomialDecay": S.PolynomialDecay(lr0, steps, end_learning_rate=lr0 / 1000, power=2.0),
        "InverseTimeDecay": S.InverseTimeDecay(lr0, steps // 20, 1.0),
        "CosineDecay (warmup)": S.CosineDecay(
            0.0, steps, alpha=1e-3, warmup_target=lr0, warmup_steps=steps // 20
        ),
        "CosineDecayRestarts": S.CosineDecayRestarts(
            lr0, steps // 7, t_mul=2.0, m_mul=0.7, alpha=1e-3
        ),
    }
    print(
        f"part 1: least squares {n} x {d}, minibatches of {bs}, {epochs} epochs = {steps} "
        "steps, same seed for all"
    )
    print(f"{'schedule':26s}{'lr at end':>11s}{'loss - f*':>12s}{'|w - w*|':>11s}")
    gaps = {}  # name -> (step, full-data loss - f*) every steps // 100 steps

    def recorder(name):
        gaps[name] = []

        def record(intermediate_result):
            r = intermediate_result
            if r.nit % (steps // 100) == 0:
                gaps[name].append((r.nit, mse(r.x, A, b)[0] - f_ls))

        return record

    for name, lr in schedules.items():
        res = nr.minimize(
            mse,
            np.zeros(d),
            args=(A, b),
            jac=True,
            options=dict(learning_rate=lr, batch_size=bs, maxiter=steps, seed=0),
            callback=recorder(name),
        )
        lr_end = lr if isinstance(lr, float) else lr(steps - 1)
        print(f"{name:26s}{lr_end:11.2e}{res.fun - f_ls:12.2e}{np.linalg.norm(res.x - w_ls):11.2e}")
    plot(schedules, gaps, steps, bs)

    k = (1 if quick else 10) * n // 64
    print(
        f"\npart 2: {k} calls with batch_size=64 vs {4 * k} calls with batch_size=16 and "
        "gradient_accumulation_steps=4"
    )
    for ema in (False, True):
        common = dict(learning_rate=1e-3, seed=1, use_ema=ema, ema_momentum=0.9)
        big = nr.minimize(
            mse, np.zeros(d), args=(A, b), jac=True, options=dict(common, batch_size=64, maxiter=k)
        )
        acc = nr.minimize(
            mse,
            np.zeros(d),
            args=(A, b),
            jac=True,
            options=dict(common, batch_size=16, gradient_accumulation_steps=4, maxiter=4 * k),
        )
        print(
            f"  use_ema={ema}: nit {big.nit} vs {acc.nit}, epochs {big.nepoch} vs "
            f"{acc.nepoch}; max |w_64 - w_16x4| = {np.max(np.abs(big.x - acc.x)):.2e} "
            f"(|w| ~ {np.max(np.abs(big.x)):.2f}); loss {big.fun:.10f} vs {acc.fun:.10f}"
        )
    print(
        "  (without EMA: equal up to rounding. With it they differ by design: as in Keras, "
        "the\n   EMA of the weights is updated on every call, accumulation-only calls "
        "included.)"
    )


def plot(schedules, gaps, steps, bs):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12.5, 4.2))
    t = np.arange(0, steps, max(1, steps // 500))
    for i, (name, lr) in enumerate(schedules.items()):
        rates = np.full(t.size, lr) if isinstance(lr, float) else [lr(s) for s in t]
        ax1.plot(t, rates, color=f"C{i}", label=name)
        ax2.semilogy(*np.array(gaps[name]).T, color=f"C{i}", label=name)
    ax1.set(xlabel="step", ylabel="learning rate", title="The learning-rate schedules")
    ax1.set_ylim(top=1.5 * ax1.get_ylim()[1])  # room for the legend
    ax1.legend(fontsize="small", ncols=2, loc="upper center")
    ax2.set(
        xlabel="step",
        ylabel="full-data loss - f*",
        title=f"Gap to the exact optimum (minibatches of {bs})",
    )
    ax2.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "schedules_accumulation.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs (for tests)")
    main(ap.parse_args().quick)
