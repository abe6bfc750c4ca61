"""Checkpoints of an optimizer: ``state_dict`` / ``load_state_dict`` and pickling."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..composition import refuse
from ..schedules import LearningRateSchedule

#: Optimizer state kinds, in ``state_dict`` key order: (key prefix, slot attribute).
STATE_KINDS = (
    ("velocity", "v"),
    ("momentum", "mom"),
    ("average_gradient", "mg"),
    ("average", "avg"),
    ("accumulator", "acc"),
)


class Checkpoints:
    """The state methods of :class:`~numba_rmsprop.RMSprop` (its slots, backend and counters)."""

    def state_dict(self) -> dict:
        """All optimizer state as host NumPy arrays and numbers, in a flat dict.

        Keys: ``iterations``, ``learning_rate`` (constant rates only),
        ``n_variables``, ``<kind>/<i>`` for each state array, and
        ``flavor.<option>`` for each variant option (``epsilon_in_sqrt``,
        ``initial_velocity``, ...: the semantics the state was made with, which
        :meth:`load_state_dict` checks), so that
        ``np.savez(path, **opt.state_dict())`` saves it whole.
        """
        if not self.built:
            raise ValueError("The optimizer is not built yet; it has no state.")
        with self._lock:
            return self._host_state()

    def _flavor(self) -> dict:
        """``{"flavor.<option>": value}`` for the variant options (the keyword-only
        hyperparameters in the config): the semantics of the state."""
        return {
            f"flavor.{h.name}": getattr(self, h.attr)
            for h in self._hyperparameters
            if h.kw_only and h.in_config
        }

    def _host_state(self) -> dict:
        state = {"iterations": int(self._iterations), "n_variables": len(self._slots)}
        state.update(self._flavor())
        if isinstance(self._learning_rate, float):
            state["learning_rate"] = self._learning_rate
        for slot in self._slots:
            for kind, attr in STATE_KINDS:
                a = getattr(slot, attr)
                if a is not None:
                    state[f"{kind}/{slot.index}"] = self._backend.to_host(a)
        return state

    def load_state_dict(self, state: Mapping) -> None:
        """Restore :meth:`state_dict` output (e.g. ``dict(np.load(path))``).

        Everything is checked before anything changes; a state saved with
        other variant options (another flavor: ``like_torch`` state into a
        Keras-flavored optimizer, say) is refused. ``iterations`` and a
        constant ``learning_rate`` take the loaded values at once; on an
        optimizer not built yet the state arrays are kept and restored by
        :meth:`build`, and a setting made after loading (``opt.learning_rate =
        ...``) wins.
        """
        state = dict(state)
        with self._lock:
            self._check_state(state, self._slots if self.built else None)
            self._restore_scalars(state)
            if self.built:
                self._restore_arrays(state)
            else:
                self._pending_state = state

    def _check_state(self, state: dict, slots) -> None:
        for key in ("iterations", "n_variables"):
            if key not in state:
                raise ValueError(f"`state` lacks {key!r}; it is not a state_dict().")
        it = np.asarray(state["iterations"])
        if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
            raise ValueError(f"`state['iterations']` must be a non-negative integer; got {it!r}.")
        mine = self._flavor()
        unknown = sorted(k for k in state if k.startswith("flavor.") and k not in mine)
        if unknown:
            raise ValueError(f"`state` has unknown variant options: {unknown}.")
        differ = [
            f"{k[len('flavor.') :]}={np.asarray(state[k]).item()!r} there, {v!r} here"
            for k, v in mine.items()
            if k in state and np.asarray(state[k]).item() != v
        ]
        if differ:  # a state_dict() made before the flavor was recorded has no such keys
            raise ValueError(
                "`state` was saved by an optimizer of another flavor ("
                + "; ".join(differ)
                + "): it would continue with other semantics. Load it into an optimizer "
                "made with the same variant options (e.g. the same RMSprop.like_torch(...))."
            )
        if slots is None:
            return
        n = int(np.asarray(state["n_variables"]))
        if n != len(slots):
            raise ValueError(f"`state` holds {n} variables; this optimizer has {len(slots)}.")
        expected = {
            f"{kind}/{s.index}": s
            for s in slots
            for kind, attr in STATE_KINDS
            if getattr(s, attr) is not None
        }
        extra = {k for k in state if "/" in k} - set(expected)
        missing = set(expected) - set(state)
        if missing or extra:
            raise ValueError(
                "`state` does not match this optimizer's configuration: "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}."
            )
        for key, s in expected.items():
            a = np.asarray(state[key])
            if a.shape != s.shape or a.dtype != s.dtype:
                raise ValueError(
                    f"`state[{key!r}]` has shape {a.shape} and dtype {a.dtype}; "
                    f"expected {s.shape} and {s.dtype}."
                )

    def _restore_scalars(self, state: dict) -> None:
        self._iterations = int(np.asarray(state["iterations"]))
        if (
            "learning_rate" in state
            and not isinstance(self._learning_rate, LearningRateSchedule)
            and not callable(self._learning_rate)
        ):
            self._learning_rate = float(np.asarray(state["learning_rate"]))

    def _restore_arrays(self, state: dict) -> None:
        for slot in self._slots:
            for kind, attr in STATE_KINDS:
                a = getattr(slot, attr)
                if a is not None:
                    self._backend.copy_into(a, np.asarray(state[f"{kind}/{slot.index}"]))

    def __getstate__(self) -> dict:
        """What ``pickle`` and ``copy.deepcopy`` keep.

        The hyperparameters, the counters, the variables and the state
        (:meth:`state_dict`'s arrays), never the compiled backend: unpickling
        builds a fresh one on the restored variables (see ``__setstate__``).
        """
        with self._lock:
            state = {
                "hyperparameters": {h.name: getattr(self, h.attr) for h in self._hyperparameters},
                "iterations": self._iterations,
                "pending_state": self._pending_state,
                "exclude": list(self._exclude_vars),
            }
            if self.built:
                if self._backend.name != "cpu":
                    refuse("apply_cuda", {"pickle"})
                state["variables"] = [s.var for s in self._slots]
                state["decay"] = [s.decay for s in self._slots]
                state["state"] = self._host_state()
            return state

    def __setstate__(self, state: dict) -> None:
        """Rebuild from ``__getstate__``'s output.

        A built optimizer is built again on the unpickled variables (pickle
        keeps identity within one dump: ``pickle.loads(pickle.dumps((opt,
        variables)))`` gives an optimizer bound to the unpickled
        ``variables``; ``copy.deepcopy(opt)`` gives an independent one bound
        to copies, ``opt.variables``), and its state and counters are
        restored, so it continues bit for bit.
        """
        hyper = dict(state["hyperparameters"])
        for name, value in hyper.items():
            setattr(self, "_" + name, value)
        self._setup(hyper)
        self._exclude_vars = list(state["exclude"])
        self._exclude_ids = {id(v) for v in self._exclude_vars}
        self._iterations = int(state["iterations"])
        self._pending_state = state["pending_state"]
        if "variables" in state:
            variables = state["variables"]
            self._exclude_ids |= {
                id(v) for v, d in zip(variables, state["decay"], strict=False) if not d
            }
            self.build(variables)
            self._restore_scalars(state["state"])
            self._restore_arrays(state["state"])
