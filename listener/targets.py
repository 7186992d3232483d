"""The listener a command names: `path/to/module.py[:name]` or `package.module[:name]`.

`listener run` and `listener dev` load it; `dev` loads it again when its file changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from listener.errors import ListenerError
from listener.listener import Listener

__all__ = ["load_listener", "module_file"]


def load_listener(target: str, *, again: bool = False) -> Listener:
    """The Listener named in `path/to/module.py[:name]` or `package.module[:name]`.

    Without a name: the module's `listener`, else its only Listener. With `again`, a module imported
    before is run anew (a file's code as it is now), as `listener dev` does when the file changes.
    """
    where, _, name = target.partition(":")
    module = _load_file(Path(where)) if _is_path(where) else _import(where, again=again)
    if name:
        found = getattr(module, name, None)
        if not isinstance(found, Listener):
            raise ListenerError(f"{where} has no Listener named {name!r}.")
        return found
    if isinstance(getattr(module, "listener", None), Listener):
        return module.listener  # type: ignore[no-any-return]
    candidates = [v for v in vars(module).values() if isinstance(v, Listener)]
    if len(candidates) != 1:
        raise ListenerError(f"{where} has {len(candidates)} Listeners; name one: {where}:NAME.")
    return candidates[0]


def module_file(target: str) -> Path:
    """The file of the module `target` names, resolved (what `listener dev` watches)."""
    where, _, _ = target.partition(":")
    if _is_path(where):
        return Path(where).resolve()
    _on_path(os.getcwd())
    try:
        spec = importlib.util.find_spec(where)
    except ModuleNotFoundError:  # a parent package that is not there
        spec = None
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        raise ListenerError(f"No module named {where!r} with a file of its own.")
    return Path(spec.origin).resolve()


def _is_path(where: str) -> bool:
    return where.endswith(".py") or os.sep in where


def _on_path(folder: str) -> None:
    # Once: a module loaded again at each change must not grow sys.path each time.
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _load_file(where: Path) -> ModuleType:
    path = where.resolve()
    if not path.exists():
        raise ListenerError(f"No such file: {where}.")
    _on_path(str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def _import(where: str, *, again: bool) -> ModuleType:
    _on_path(os.getcwd())
    module = sys.modules.get(where)
    if again and module is not None:
        return importlib.reload(module)
    return importlib.import_module(where)
