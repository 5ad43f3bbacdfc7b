"""Progress reports: a bar on a terminal, periodic plain lines elsewhere (logs, pipes, CI), nothing when off."""
from __future__ import annotations

import io

import pytest

from ncodec import progress as progress_module
from ncodec.progress import Progress


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream: io.StringIO, clock: _Clock, seconds: float, steps: int = 100, **kw: object) -> str:
    with Progress(steps, "fit inr", stream=stream, **kw) as bar:  # type: ignore[arg-type]
        for _ in range(steps):
            clock.now += seconds / steps
            bar.update()
    return stream.getvalue()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


def test_a_long_run_logs_plain_lines_on_a_non_terminal(clock: _Clock) -> None:
    text = _run(io.StringIO(), clock, seconds=60.0)
    lines = text.splitlines()
    assert "\r" not in text and 5 <= len(lines) <= 7
    assert lines[0].startswith("fit inr: ") and "% after " in lines[0]
    assert lines[-1].startswith("fit inr: done in 60")


def test_short_work_prints_nothing_on_a_non_terminal(clock: _Clock) -> None:
    assert _run(io.StringIO(), clock, seconds=2.0) == ""


def test_a_terminal_gets_a_redrawn_bar_and_off_means_silent(clock: _Clock) -> None:
    text = _run(_Terminal(), clock, seconds=60.0)
    assert text.count("\r") > 10 and "100.0%" in text and text.endswith("\n")
    assert _run(_Terminal(), clock, seconds=60.0, enabled=False) == ""
    assert _run(io.StringIO(), clock, seconds=60.0, enabled=False) == ""
