"""The facades list each public name once, sorted, and every name is what its module defines."""

from __future__ import annotations

import importlib

import pytest

import listener
import plugins


@pytest.mark.parametrize("package", [listener, plugins], ids=lambda p: p.__name__)
def test_facade_is_sorted_and_complete(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names == sorted(names) and len(set(names)) == len(names)
    for name in names:
        value = getattr(package, name)
        module = importlib.import_module(value.__module__)
        assert getattr(module, name) is value, f"{name} should come from {value.__module__}"
        assert name in getattr(module, "__all__", [name]), f"{value.__module__}.__all__ should list {name}"


def test_the_issue_contract_imports() -> None:
    from listener import Event, JobStatus, Listener, Outcome, Platform  # noqa: F401
    from plugins.job_handler import job_handler  # noqa: F401

    assert {s.value for s in JobStatus} == {"created", "planning", "scheduled", "ready", "executing", "complete",
                                            "failed", "cancelled"}
