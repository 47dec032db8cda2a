"""Instance attributes put over an object's own methods for the life of a fake, then taken off again."""

from __future__ import annotations

from typing import Any

_MISSING = object()


class Patches:
    """Every `set()` is undone by `undo()`, newest first, leaving the objects exactly as they were.

    Fakes stack (a Bus fake over a Queue fake) and must end in reverse order: undoing under a later
    fake's patches would leave the later one's in place for ever, so that is refused, changing nothing.
    """

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any, Any]] = []

    def set(self, target: Any, name: str, value: Any) -> None:
        self._undo.append((target, name, target.__dict__.get(name, _MISSING), value))
        setattr(target, name, value)

    def undo(self) -> None:
        covered = [name for target, name, _, value in self._undo if target.__dict__.get(name, _MISSING) is not value]
        if covered:
            raise RuntimeError(f"a fake that began later still patches {', '.join(sorted(set(covered)))}: "
                               "end fakes in the reverse order they began")
        while self._undo:
            target, name, old, _ = self._undo.pop()
            if old is _MISSING:
                target.__dict__.pop(name, None)
            else:
                setattr(target, name, old)
