"""Every example runs, in --quick mode, in a fresh interpreter, and prints real output."""

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
    "pixel_fit.py": ["5,000 curves", "nr.minimize_many:", "least_squares", "median |error|"],
    "lr_sweep.py": ["6 learning rates x 3 seeds = 18 runs", "best learning rate"],
}


def test_every_example_is_listed():
    found = {f for f in os.listdir(EXAMPLES) if f.endswith(".py")}
    assert found == set(EXPECTED)


#: Examples that compile many configurations (7-15 s each with a cold cache): run by
#: .ci/run (pytest -m slow), kept out of the README's test command.
SLOW = {"least_squares.py", "numba_neural_net.py", "lr_sweep.py", "schedules_accumulation.py"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(EXPECTED)]
)
def test_example_quick(name):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name), "--quick"],
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
