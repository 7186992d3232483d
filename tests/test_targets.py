"""The listener a command names: by path or by module, loaded again as `listener dev` does, and the file to watch."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from listener.errors import ListenerError
from listener.targets import load_listener, module_file

SOURCE = "from listener import Listener\nlistener = Listener({name!r})\n"


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package `shop` with a module `shop.workers` in the working directory, forgotten afterwards."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "workers.py").write_text(SOURCE.format(name="first"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in ("shop", "shop.workers"):
        sys.modules.pop(name, None)


def test_a_module_is_loaded_again_as_its_file_is_now(package: Path) -> None:
    assert load_listener("shop.workers").name == "first"
    (package / "shop" / "workers.py").write_text(SOURCE.format(name="second"))
    assert load_listener("shop.workers").name == "first", "an import without `again` keeps the module it has"
    assert load_listener("shop.workers", again=True).name == "second"
    assert sys.path.count(str(package)) == 1, "loading again does not grow sys.path"


def test_a_file_is_loaded_again_as_it_is_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    module = tmp_path / "mine.py"
    module.write_text(SOURCE.format(name="first"))
    assert load_listener(str(module)).name == "first"
    module.write_text(SOURCE.format(name="second"))
    assert load_listener(str(module), again=True).name == "second"
    assert sys.path.count(str(tmp_path)) == 1
    sys.modules.pop("mine", None)


def test_the_file_to_watch_of_a_path_and_of_a_module(package: Path) -> None:
    assert module_file("shop/workers.py:listener") == (package / "shop" / "workers.py").resolve()
    assert module_file("shop.workers:listener") == (package / "shop" / "workers.py").resolve()
    for missing in ("shop.nope", "nowhere.nope"):
        with pytest.raises(ListenerError, match=rf"No module named '{missing}'"):
            module_file(missing)
