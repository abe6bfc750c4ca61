"""One description of the hyperparameters, and one family of validators.

:class:`~numba_rmsprop.RMSprop` declares each hyperparameter once, in its
class body, as an annotated attribute::

    rho: float = hyperparameter(0.9, check=real(0.0, 1.0),
                                doc="Discount factor of the mean square.")

:class:`Configurable` turns those declarations into

* the constructor's validation and error messages (``_configure``), and the
  check that the written constructor matches the declarations;
* read-only properties (a hyperparameter is fixed once the optimizer exists;
  ``learning_rate`` has its own getter and setter);
* ``get_config`` / ``from_config``;
* the *Parameters* section of the class docstring;
* :func:`names` for the ``minimize`` front end's options.

The class writes its constructor out, typed, for type checkers and readers;
:class:`Configurable` checks, when the class is made, that it declares the
same arguments in the same order, kinds and defaults (and annotations) as the
declarations, so the two cannot drift apart.

Validators take ``(name, value)`` and return the value in canonical form, or
raise ``TypeError`` (wrong kind) / ``ValueError`` (wrong value) with one
message style: ``"`name` must be <what>; got <value>."``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

Check = Callable[[str, Any], Any]
_MISSING = object()


# ------------------------------------------------------------------ validators
def _fail(exc, name: str, what: str, value) -> None:
    raise exc(f"`{name}` must be {what}; got {value!r}.")


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _interval(lo: float, hi: float, open_hi: bool) -> str:
    if hi == math.inf:
        return f">= {lo:g}" if lo != -math.inf else "finite"
    return f"in [{lo:g}, {hi:g}{')' if open_hi else ']'}"


def real(
    lo: float = -math.inf, hi: float = math.inf, *, open_hi: bool = False, optional: bool = False
) -> Check:
    """A finite real number in ``[lo, hi]`` (``[lo, hi)`` with ``open_hi``), as a float."""
    what = "a finite real number " + _interval(lo, hi, open_hi) + (", or None" if optional else "")

    def check(name, value):
        if value is None and optional:
            return None
        if not _is_real(value):
            _fail(TypeError, name, what, value)
        value = float(value)
        if not (math.isfinite(value) and lo <= value and (value < hi if open_hi else value <= hi)):
            _fail(ValueError, name, what, value)
        return value

    check.what = what
    return check


def positive(*, optional: bool = False) -> Check:
    """A finite real number > 0 (or None, to disable the option)."""
    what = "a finite real number > 0" + (", or None to disable it" if optional else "")

    def check(name, value):
        if value is None and optional:
            return None
        if not _is_real(value):
            _fail(TypeError, name, what, value)
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            _fail(ValueError, name, what, value)
        return value

    check.what = what
    return check


def integer(lo: int, *, optional: bool = False) -> Check:
    """An integer ``>= lo`` (or None)."""
    what = f"an integer >= {lo}" + (" or None" if optional else "")

    def check(name, value):
        if value is None and optional:
            return None
        if not _is_integer(value):
            _fail(TypeError, name, what, value)
        if value < lo:
            _fail(ValueError, name, what, value)
        return int(value)

    check.what = what
    return check


def limit(lo: int) -> Check:
    """A limit on a count, as scipy's methods take ``maxiter`` and ``maxfev``.

    A number ``>= lo``, ``inf`` for no limit, or None for the caller's
    default. As scipy's methods count ``while k < maxiter``, a fractional limit
    allows ``ceil(value)`` (``maxiter=100.1``: 101 iterations; scipy gh-23430).
    Returns an ``int``, ``math.inf`` or None.
    """
    what = f"a number >= {lo}, inf (no limit) or None (the default)"

    def check(name, value):
        if value is None:
            return None
        if _is_integer(value):
            value = int(value)
        elif _is_real(value):
            value = float(value)
            if value == math.inf:
                return math.inf
            if not math.isfinite(value):
                _fail(ValueError, name, what, value)
            value = math.ceil(value)
        else:
            _fail(TypeError, name, what, value)
        if value < lo:
            _fail(ValueError, name, what, value)
        return value

    check.what = what
    return check


def seed(name, value):
    """What ``numpy.random.default_rng`` takes: None, an integer >= 0, a sequence of
    them, a ``SeedSequence``, a ``BitGenerator`` or a ``Generator``."""
    what = seed.what
    rnd = np.random
    if value is None or isinstance(value, (rnd.SeedSequence, rnd.BitGenerator, rnd.Generator)):
        return value
    items = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if isinstance(value, np.ndarray) and value.ndim > 1:
        _fail(TypeError, name, what, value)
    for v in np.asarray(items, dtype=object).reshape(-1):
        if not _is_integer(v):
            _fail(TypeError, name, what, value)
        if v < 0:
            _fail(ValueError, name, what, value)
    return value


seed.what = (
    "None, an integer >= 0 (or a sequence of them), a numpy.random.SeedSequence, "
    "BitGenerator or Generator"
)


def boolean(name, value) -> bool:
    """``True`` or ``False`` (NumPy's bools too)."""
    if not isinstance(value, (bool, np.bool_)):
        _fail(TypeError, name, "a bool", value)
    return bool(value)


boolean.what = "a bool"


def one_of(*choices) -> Check:
    """One of ``choices``."""
    what = "one of " + ", ".join(repr(c) for c in choices)

    def check(name, value):
        if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
            _fail(ValueError, name, what, value)
        return value

    check.what = what
    return check


def text(name, value) -> str:
    """A ``str``."""
    if not isinstance(value, str):
        _fail(TypeError, name, "a str", value)
    return value


text.what = "a str"


def dask_client(name, value):
    """None, ``"local"`` or a ``dask.distributed.Client``; checked without importing dask.

    A Client can only exist once ``distributed`` has been imported, so the
    check looks the class up in ``sys.modules``.
    """
    import sys

    if value is None or (isinstance(value, str) and value == "local"):
        return value
    dist = sys.modules.get("distributed")
    if dist is None or not isinstance(value, dist.Client):
        _fail(TypeError, name, dask_client.what, value)
    return value


dask_client.what = (
    'a dask.distributed.Client (e.g. Client("tcp://scheduler:8786")), "local" or None'
)


# ------------------------------------------------------------------ declarations
class Hyperparameter:
    """One hyperparameter: its default, validator and doc line; a read-only property.

    Parameters
    ----------
    default
        The default value.
    check
        Validator ``(name, value) -> value``.
    doc
        One line (or a few) for the docstring.
    kw_only
        Keyword-only in the constructor (after Keras's positional arguments).
    option
        Also an option of the ``minimize`` front end.
    in_config
        Part of ``get_config()``.
    get, set
        Replace the property's getter ``get(opt)`` and allow assignment
        through ``set(opt, value)``.
    to_config
        ``to_config(value)``: the value's form in ``get_config()``.
    type_doc
        The type as the docstring names it (default: from the annotation).
    """

    def __init__(
        self,
        default,
        *,
        check: Check,
        doc: str,
        kw_only: bool = False,
        option: bool = True,
        in_config: bool = True,
        get=None,
        set=None,
        to_config=None,
        type_doc: str | None = None,
    ):
        self.type_doc = type_doc
        self.default = default
        self.check = check
        self.doc = doc
        self.kw_only = kw_only
        self.option = option
        self.in_config = in_config
        self._get = get
        self._set = set
        self.to_config = to_config
        self.name = self.attr = None
        self.annotation = None

    def __set_name__(self, owner, name):
        self.name = name
        self.attr = "_" + name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        if self._get is not None:
            return self._get(obj)
        return getattr(obj, self.attr)

    def __set__(self, obj, value):
        if self._set is None:
            raise AttributeError(
                f"`{self.name}` is fixed once the optimizer is created; make a new one, "
                f"e.g. RMSprop.from_config({{**opt.get_config(), {self.name!r}: ...}})."
            )
        self._set(obj, value)

    def config_value(self, obj):
        value = getattr(obj, self.attr)
        return self.to_config(value) if self.to_config is not None else value

    def __repr__(self):
        return f"hyperparameter({self.name}={self.default!r})"


def hyperparameter(
    default: Any = _MISSING,
    *,
    check: Check,
    doc: str,
    kw_only: bool = False,
    option: bool = True,
    in_config: bool = True,
    get=None,
    set=None,
    to_config=None,
    type_doc: str | None = None,
) -> Any:
    """Declare a hyperparameter (see :class:`Hyperparameter`)."""
    return Hyperparameter(
        default,
        check=check,
        doc=doc,
        kw_only=kw_only,
        option=option,
        in_config=in_config,
        get=get,
        set=set,
        to_config=to_config,
        type_doc=type_doc,
    )


class Configurable:
    """Base class whose constructor checks, properties and config come from its
    hyperparameters.

    A subclass declares hyperparameters in its body, writes ``__init__`` with
    the same arguments (checked by :func:`check_init`) calling
    ``self._configure(values, kwargs)``, and implements ``_setup(values)``,
    which ``_configure`` calls with every validated value (and
    ``_check_together(values)`` for rules that involve several). Unknown
    keyword arguments raise ``TypeError``; the keywords in
    ``_IGNORED_KEYWORDS`` are dropped with a warning (Keras's legacy ones).
    """

    _hyperparameters: tuple = ()
    _IGNORED_KEYWORDS: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        found = [v for v in vars(cls).values() if isinstance(v, Hyperparameter)]
        if not found:
            return
        notes = getattr(cls, "__annotations__", {})
        for h in found:
            h.annotation = notes.get(h.name)
        positional = [h for h in found if not h.kw_only]
        keyword = [h for h in found if h.kw_only]
        cls._hyperparameters = tuple(positional + keyword)
        check_init(cls, positional, keyword)
        if cls.__doc__ and "{parameters}" in cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("{parameters}", _parameters_doc(cls._hyperparameters))

    # -- generated constructor calls these -------------------------------
    def _configure(self, values: dict, extra: dict) -> None:
        for key in list(extra):
            if key in self._IGNORED_KEYWORDS:
                if extra.pop(key) is not None:
                    warnings.warn(self._IGNORED_KEYWORDS[key], stacklevel=3)
        if extra:
            raise TypeError(f"Argument(s) not recognized: {sorted(extra)}.")
        checked = {h.name: h.check(h.name, values[h.name]) for h in self._hyperparameters}
        self._check_together(checked)
        for name, value in checked.items():
            setattr(self, "_" + name, value)
        self._setup(checked)

    def _check_together(self, values: dict) -> None:
        """Rules between hyperparameters; raise ``ValueError``."""

    def _setup(self, values: dict) -> None:
        """Build what the validated hyperparameters imply."""

    # -- config ------------------------------------------------------------
    def get_config(self) -> dict:
        """Every hyperparameter (schedules serialized), for ``from_config``."""
        return {h.name: h.config_value(self) for h in self._hyperparameters if h.in_config}

    @classmethod
    def names(cls, *, options: bool = False) -> tuple:
        """Names of the hyperparameters (only the front end's options with ``options=True``)."""
        return tuple(h.name for h in cls._hyperparameters if h.option or not options)


def check_init(cls, positional, keyword) -> None:
    """``TypeError`` unless ``cls.__init__`` (written in the class) takes the declared
    hyperparameters: the positional ones in order, then ``*`` and the keyword-only
    ones in order, each with its declared default and annotation, then ``**kwargs``."""
    init = vars(cls).get("__init__")
    if init is None:
        raise TypeError(f"{cls.__qualname__} must write out __init__ for its hyperparameters.")
    params = list(inspect.signature(init).parameters.values())[1:]  # less self
    want = [(h, inspect.Parameter.POSITIONAL_OR_KEYWORD) for h in positional]
    want += [(h, inspect.Parameter.KEYWORD_ONLY) for h in keyword]
    got = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    problems = []
    if [p.name for p in got] != [h.name for h, _ in want]:
        problems.append(f"arguments {[p.name for p in got]}, declared {[h.name for h, _ in want]}")
    else:
        for p, (h, kind) in zip(got, want, strict=True):
            if p.kind is not kind:
                problems.append(f"{p.name} is {p.kind.description}, declared {kind.description}")
            if p.default != h.default or type(p.default) is not type(h.default):
                problems.append(f"{p.name}={p.default!r}, declared {h.default!r}")
            if str(p.annotation) != str(h.annotation):
                problems.append(f"{p.name}: {p.annotation}, declared {h.annotation}")
    if len(params) == len(got) or params[-1].kind is not inspect.Parameter.VAR_KEYWORD:
        problems.append("no **kwargs last (Keras's legacy keywords)")
    if problems:
        raise TypeError(
            f"{cls.__qualname__}.__init__ differs from the hyperparameters: " + "; ".join(problems)
        )


def _type_text(annotation) -> str:
    text_ = str(annotation or "").replace("typing.", "")
    if text_.startswith("Optional[") and text_.endswith("]"):
        return text_[len("Optional[") : -1] + " or None"
    if text_.endswith(" | None"):
        return text_[: -len(" | None")] + " or None"
    return text_


def _parameters_doc(hyperparameters) -> str:
    lines = []
    for h in hyperparameters:
        lines.append(f"{h.name} : {h.type_doc or _type_text(h.annotation)}, default {h.default!r}")
        for line in h.doc.strip().splitlines():
            lines.append("    " + line.strip())
    return "\n    ".join(lines)
