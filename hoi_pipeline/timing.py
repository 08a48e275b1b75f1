"""Where a training step's time goes: phases marked in order, read once at the end.

On a GPU the marks are CUDA events recorded in the stream (no host-device synchronisation while
the step runs; `read` synchronises once); on the CPU, where every operation has finished when the
call returns, they are `time.perf_counter` readings. Marks may come from autograd hooks (the
backward pass reaching the backbone's output), so a phase can be part of `backward()`.
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch


class PhaseTimer:
    """`start()`, then `mark(name)` at the end of each phase; `read()` gives seconds per phase name.

    A name marked twice in one step (e.g. once per micro-batch) adds up.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._marks: list[tuple[str, object]] = []

    def _now(self) -> object:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self) -> None:
        self._marks = [("", self._now())]

    def mark(self, name: str) -> None:
        """The phase `name` ends now (it began at the previous mark)."""
        if self._marks:
            self._marks.append((name, self._now()))

    def read(self) -> dict[str, float]:
        """Seconds per phase since `start()`, in the order first marked (synchronises a GPU once)."""
        if self.cuda and self._marks:
            self._marks[-1][1].synchronize()  # type: ignore[attr-defined]
        seconds: dict[str, float] = defaultdict(float)
        for (_, before), (name, after) in zip(self._marks, self._marks[1:]):
            if self.cuda:
                seconds[name] += before.elapsed_time(after) / 1000.0  # type: ignore[attr-defined]
            else:
                seconds[name] += after - before  # type: ignore[operator]
        return dict(seconds)


class NoTimer(PhaseTimer):
    """The timer a step gets when nobody measures: marks cost nothing."""

    def __init__(self) -> None:
        super().__init__(torch.device("cpu"))

    def start(self) -> None:
        pass

    def mark(self, name: str) -> None:
        pass
