"""Every example runs, in --quick mode, in a fresh interpreter, prints real output, and
draws readable plots (a title, axis labels and a legend on every Axes with data)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")

# example -> strings its --quick output must contain
EXPECTED = {
    "quickstart.py": ["Completed maxiter=500", "identical results: True", "L-BFGS-B (full)"],
    "logistic_regression.py": ["L-BFGS-B", "RMSprop minibatch 64", "epochs"],
    "least_squares.py": ["identical weights: True", "non-negative least squares", "feasible: True"],
    "rosenbrock.py": ["BFGS", "L-BFGS-B", "n = 10"],
    "noisy_objective.py": ["BFGS", "RMSprop, decaying lr + EMA + ftol"],
    "schedules_accumulation.py": ["CosineDecayRestarts", "use_ema=False", "use_ema=True"],
    "numba_neural_net.py": ["gradient check", "bit-identical after", "True"],
    "pixel_fit.py": [
        "5,000 curves",
        "nr.minimize_many:",
        "least_squares",
        "Python loop of scipy curve_fit (scaled):",
        "median |error|",
        "  scipy curve_fit ",
        "the same fits: True",
    ],
    "lr_sweep.py": ["6 learning rates x 3 seeds = 18 runs", "best learning rate"],
    "gpu.py": ["running on", "max |x_gpu - x_cpu|"],
}

#: Runs an example as ``python EXAMPLE --quick`` would (``runpy``, ``__name__ ==
#: "__main__"``), then checks the figures it left open, as sphinx-gallery collects them.
RUN_AND_CHECK_PLOTS = """
import runpy, sys
path = sys.argv[1]
sys.argv = [path, "--quick"]
runpy.run_path(path, run_name="__main__")
import matplotlib.pyplot as plt
nums = plt.get_fignums()
if not nums:
    sys.exit("no figure is open after the example ran")
checked = 0
for num in nums:
    fig = plt.figure(num)
    suptitle = fig.get_suptitle()
    for i, ax in enumerate(fig.axes):
        if not ax.has_data():
            continue
        missing = [
            what
            for what, ok in [
                ("a title", ax.get_title() or ax.get_title("left") or suptitle),
                ("an x label", ax.get_xlabel()),
                ("a y label", ax.get_ylabel()),
                ("a legend", ax.get_legend() is not None),
            ]
            if not ok
        ]
        if missing:
            sys.exit(f"figure {num}, Axes {i} lacks " + ", ".join(missing))
        checked += 1
if not checked:
    sys.exit("no Axes of the open figures shows data")
print(f"plots checked: {len(nums)} figure(s), {checked} Axes with data")
"""


def test_every_example_is_listed():
    found = {f for f in os.listdir(EXAMPLES) if f.endswith(".py")}
    assert found == set(EXPECTED)


#: Examples that compile many configurations (7-15 s each with a cold cache): run by
#: .ci/run (pytest -m slow), kept out of the README's test command.
#: gpu.py without a GPU runs on Numba's CUDA simulator (~30 s).
SLOW = {
    "least_squares.py",
    "numba_neural_net.py",
    "lr_sweep.py",
    "schedules_accumulation.py",
    "gpu.py",
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(EXPECTED)]
)
def test_example_quick(name):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"  # as the docs build; no window even where there is a display
    # conftest.py sets the simulator for this process: gpu.py must choose it by itself
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_CHECK_PLOTS, os.path.join(EXAMPLES, name)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for text in EXPECTED[name]:
        assert text in proc.stdout, (text, proc.stdout)
    assert "nan" not in proc.stdout.lower().split()
    assert "plots checked:" in proc.stdout, proc.stdout + proc.stderr
