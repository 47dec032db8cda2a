"""The allow-list, wherever a payload names code: jobs, functions, callbacks and value classes must be
defined in an `app` package, and resolving a name never runs a module's lazy `__getattr__`."""

from __future__ import annotations

import pytest
import qctl_testjobs.borrowed as borrowed

from qctl.errors import JobNotAllowedError, UnknownJobError
from qctl.jobs.resolve import Resolver

APP = ("qctl_testjobs",)


@pytest.mark.parametrize("path", ["qctl_testjobs.borrowed:os.system", "qctl_testjobs.borrowed:sys.exit",
                                  "qctl_testjobs.borrowed:Hog", "qctl_testjobs.borrowed:Job"])
def test_a_callback_must_be_defined_in_app_not_only_reachable_from_it(path: str) -> None:
    with pytest.raises((JobNotAllowedError, UnknownJobError)) as refused:
        Resolver(APP).callback(path)
    assert "\n" not in str(refused.value)


def test_a_callback_defined_in_app_resolves() -> None:
    assert Resolver(APP).callback("qctl_testjobs.borrowed:on_failure") is borrowed.on_failure


@pytest.mark.parametrize("path, defined_in", [("qctl_testjobs.borrowed:Hog", "qctl_lifecyclejobs"),
                                              ("qctl_testjobs:Job", "qctl.jobs.job")])
def test_a_job_class_imported_into_app_from_outside_is_refused(path: str, defined_in: str) -> None:
    with pytest.raises(JobNotAllowedError, match=f"defined in '{defined_in}', outside the app packages"):
        Resolver(APP).job_class(path)


def test_the_same_class_runs_once_its_own_package_is_in_app() -> None:
    resolver = Resolver(("qctl_testjobs", "qctl_lifecyclejobs"))
    assert resolver.job_class("qctl_testjobs.borrowed:Hog").__module__ == "qctl_lifecyclejobs"


def test_a_value_class_must_be_defined_in_app() -> None:
    from qctl_testjobs import Colour

    resolver = Resolver(APP)
    assert resolver.value_class("qctl_testjobs:Colour") is Colour
    with pytest.raises(JobNotAllowedError, match="defined in 'http'"):
        resolver.value_class("qctl_testjobs.borrowed:HTTPStatus")
    with pytest.raises(JobNotAllowedError, match="outside the app packages"):
        resolver.value_class("http:HTTPStatus")  # loaded in this process, still not named by a payload


@pytest.mark.parametrize("kind", ["job_class", "callback", "value_class", "function"])
def test_resolving_never_calls_a_modules_lazy_getattr(kind: str) -> None:
    borrowed.LAZY_LOOKUPS.clear()
    with pytest.raises(UnknownJobError, match="has no 'Lazy'"):
        getattr(Resolver(APP), kind)("qctl_testjobs.borrowed:Lazy")
    assert borrowed.LAZY_LOOKUPS == []


def test_the_trusted_resolver_of_in_process_payloads_takes_any_importable_name() -> None:
    assert Resolver(APP, trusted=True).value_class("http:HTTPStatus").__name__ == "HTTPStatus"
