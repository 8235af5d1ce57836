"""Suite-wide pytest hooks: the time spent per test module, printed after every run (the
suite's budget is tracked per module; setup and teardown of shared fixtures count in the
module that paid for them)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from _pytest.terminal import TerminalReporter


def pytest_terminal_summary(terminalreporter: TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    per_module: dict[str, float] = defaultdict(float)
    for reports in terminalreporter.stats.values():
        for rep in reports:
            if isinstance(rep, pytest.TestReport):
                per_module[rep.nodeid.split("::", 1)[0]] += rep.duration
    if len(per_module) < 2:
        return
    terminalreporter.write_sep("=", "time per module (setup + call + teardown)")
    for module, secs in sorted(per_module.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{secs:8.1f}s  {module}")
    terminalreporter.write_line(f"{sum(per_module.values()):8.1f}s  in all")
