"""Progress of a ``minimize`` run on stderr (``options["disp"]``)."""

from __future__ import annotations

import math
import sys
import time


class Progress:
    """Progress on stderr: a tqdm bar when tqdm is installed, else a plain line.

    Only made with ``disp``. The loops run steps in segments and call
    :meth:`update` after each; :meth:`steps` shortens the next segment so that
    it lasts about ``SEGMENT_SECONDS`` at the step rate measured over the
    previous one, so the display refreshes every 0.1-0.5 s whether a step
    takes a microsecond (compiled loop) or a second. Shorter segments change
    no result: both loops resume mid-epoch and mid-block exactly.
    """

    #: Target wall time of one segment of steps.
    SEGMENT_SECONDS = 0.2
    #: The plain line is rewritten at most this often.
    PRINT_SECONDS = 0.1
    #: Where the time comes from (seconds; tests substitute a clock of their own).
    clock = staticmethod(time.monotonic)

    def __init__(self, total, desc: str, unit: str = "step"):
        self.unit = unit
        self.total = total  # an int, or math.inf (maxiter=inf)
        self.of = f"/{total}" if total != math.inf else ""
        self.desc = desc
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self.bar = None
        if tqdm is not None:
            self.bar = tqdm(
                total=total if total != math.inf else None,
                desc=desc,
                unit=unit,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        self.done = 0
        self.last = -math.inf  # when the plain line was last written
        self.t_prev = self.clock()  # when the last segment ended
        self.step_seconds = None  # per step, over the last segment

    def steps(self, nsteps: int) -> int:
        """``nsteps`` cut to about ``SEGMENT_SECONDS`` of steps (at least one)."""
        if self.step_seconds is None or self.step_seconds <= 0.0:
            return min(nsteps, 1)
        return max(1, min(nsteps, int(self.SEGMENT_SECONDS / self.step_seconds)))

    def update(self, it: int, loss=None, **info) -> None:
        """``it`` steps are done; ``loss`` (the last one's) and ``info`` (more named values,
        e.g. a batch's active runs and best and median losses) are shown beside."""
        now = self.clock()
        if it > self.done:
            self.step_seconds = (now - self.t_prev) / (it - self.done)
        self.t_prev = now
        shown = dict(info)
        if loss is not None:
            shown = {"loss": loss, **shown}

        def text(digits):
            return {
                k: f"{v:.{digits}g}" if isinstance(v, float) else str(v) for k, v in shown.items()
            }

        if self.bar is not None:
            self.bar.update(it - self.done)
            if shown:
                self.bar.set_postfix(text(4), refresh=False)
        elif now - self.last >= self.PRINT_SECONDS or it >= self.total:
            self.last = now
            tail = "".join(f" {k} {v}" for k, v in text(6).items())
            sys.stderr.write(f"\r{self.desc}: {self.unit} {it}{self.of}{tail}")
            sys.stderr.flush()
        self.done = it

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write(f"\r{self.desc}: {self.unit} {self.done}{self.of}\n")
            sys.stderr.flush()
