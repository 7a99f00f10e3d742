"""The CLI turns the cyclic garbage collector off for a one-shot run, and only then.

A one-shot run's objects live until exit, so collecting is pure cost (docs/performance.md).
The state must come back for in-process callers (tests, the API), and the long-lived shell
must collect.
"""

from __future__ import annotations

import gc

import pytest
from virtscenario.cli import app


def _seen_during(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> list[bool]:
    seen: list[bool] = []

    def fake_main(**kwargs: object) -> int:
        seen.append(gc.isenabled())
        return 0

    monkeypatch.setattr(app.cli, "main", fake_main)
    app.main(argv)
    return seen


def test_one_shot_run_does_not_collect_and_restores_the_state(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gc.isenabled()
    assert _seen_during(monkeypatch, ["scenarios", "list"]) == [False]
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    gc.disable()
    try:
        _seen_during(monkeypatch, ["scenarios", "list"])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_state_comes_back_after_a_failure() -> None:
    with pytest.raises(SystemExit) as exc:
        app.main(["create", "no-such-scenario", "--print-xml"])
    assert exc.value.code != 0
    assert gc.isenabled()


def test_the_shell_collects(monkeypatch: pytest.MonkeyPatch) -> None:
    from virtscenario.cli.shell import repl

    seen: list[bool] = []

    def fake_shell_main(ctx: object) -> int:
        seen.append(gc.isenabled())
        return 0

    monkeypatch.setattr(repl, "main", fake_shell_main)
    app.main(["shell"])
    assert seen == [True]
