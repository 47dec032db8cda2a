"""Fetching a job's model attributes again when it runs, through `[models] session`.

One Session per job, opened at the first model and closed when the job has settled; what the job
does with it (commit or not) is its own business. Only classes inside `app` that SQLAlchemy maps
are fetched.
"""

from __future__ import annotations

import importlib
from typing import Any

from qctl.errors import ModelNotFoundError, PayloadError
from qctl.jobs.resolve import module_is_within
from qctl.payload.models import ModelRef


class ModelLoader:
    """The configured session factory, imported on first use."""

    def __init__(self, session_path: str | None, app: tuple[str, ...], source: str) -> None:
        self.session_path = session_path
        self.app = app
        self.source = source
        self._factory: Any = None

    def factory(self) -> Any:
        if self._factory is None:
            path = self.session_path
            if path is None:
                raise ModelNotFoundError(f"the job holds a model but no `[models] session` is set in {self.source}")
            module, _, name = path.partition(":")
            try:
                found: Any = importlib.import_module(module)
                for part in name.split(".") if name else ():
                    found = getattr(found, part)
            except Exception as exc:
                raise ModelNotFoundError(f"[models] session = {path!r}: cannot load it ({exc})") from None
            if not name or not callable(found):
                raise ModelNotFoundError(f"[models] session = {path!r}: expected 'module:name' of a sessionmaker or function")
            self._factory = found
        return self._factory

    def for_job(self) -> JobModels:
        return JobModels(self)


class JobModels:
    """The models of one job: fetched through one Session, closed with `close()`."""

    def __init__(self, loader: ModelLoader) -> None:
        self.loader = loader
        self.session: Any = None

    def fetch(self, ref: ModelRef) -> Any:
        self.check(ref)
        if self.session is None:
            self.session = self.loader.factory()()
        key = ref.key[0] if len(ref.key) == 1 else ref.key
        try:
            found = self.session.get(ref.cls, key)
        except Exception as exc:  # a key of the wrong shape, or the database said no: one line
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelNotFoundError(f"{ref.where}: cannot fetch {ref.name} with key {_shown(ref.key)} ({first})") from None
        if found is None:
            raise ModelNotFoundError(f"{ref.where}: {ref.name} with key {_shown(ref.key)} no longer exists")
        return found

    def check(self, ref: ModelRef) -> None:
        if not module_is_within(ref.cls.__module__, self.loader.app):
            raise PayloadError(f"{ref.where}: model {ref.name} is outside the app packages; it is not fetched")
        from sqlalchemy import inspect

        if inspect(ref.cls, raiseerr=False) is None:
            raise PayloadError(f"{ref.where}: {ref.name} is not an SQLAlchemy mapped class")

    def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()


def _shown(key: tuple[Any, ...]) -> str:
    return repr(key[0]) if len(key) == 1 else repr(key)
