"""A job tested on its own: release/delete/fail recorded on the job, a fake batch recording add/cancel."""

from __future__ import annotations

import pytest
from qctl_testjobs.shop import (
    LOG,
    ChainsMore,
    GrowsBatch,
    Interacts,
    NotifyCustomer,
    RecordShipment,
)

from qctl.testing import FakeBatch


def fails(match: str) -> pytest.RaisesContext[AssertionError]:
    return pytest.raises(AssertionError, match=match)


def run(mode: str) -> Interacts:
    job = Interacts(mode).with_fake_queue_interactions()
    job.handle()
    return job


def test_released() -> None:
    job = run("release")
    job.assert_released()
    job.assert_released(delay=30)
    job.assert_not_deleted()
    job.assert_not_failed()
    with fails("expected the job to be released with a delay of 10s \\(it was released 30s\\)"):
        job.assert_released(delay=10)
    with fails("Interacts: expected the job to be deleted, but it was not \\(it was released 30s\\)"):
        job.assert_deleted()
    with fails("expected the job to be marked as failed"):
        job.assert_failed()


def test_deleted() -> None:
    job = run("delete")
    job.assert_deleted()
    job.assert_not_released()
    with fails("expected the job not to be deleted \\(it was deleted\\)"):
        job.assert_not_deleted()
    with fails("expected the job to be released, but it was not \\(it was deleted\\)"):
        job.assert_released()


def test_failed() -> None:
    job = run("fail")
    job.assert_failed()
    job.assert_failed_with(PermissionError)
    job.assert_failed_with(PermissionError("no access"))
    with fails("expected the job to fail with KeyError \\(it was failed with PermissionError: no access\\)"):
        job.assert_failed_with(KeyError)
    with fails("expected the job not to be marked as failed"):
        job.assert_not_failed()
    message = run("fail-message")
    message.assert_failed_with(Exception("gave up"))


def test_nothing_done() -> None:
    job = run("nothing")
    job.assert_not_released()
    job.assert_not_deleted()
    job.assert_not_failed()
    with fails("it was neither released, deleted nor failed"):
        job.assert_failed()


def test_asserting_without_the_fake_says_what_to_do() -> None:
    with fails("call with_fake_queue_interactions\\(\\)"):
        Interacts("release").assert_released()


def test_fake_batch_records_added_jobs() -> None:
    job, batch = GrowsBatch(2).with_fake_batch()
    assert isinstance(batch, FakeBatch) and job.batch() is batch and job.batch_id == batch.id
    job.handle()
    assert [type(j) for j in batch.added] == [RecordShipment, RecordShipment]
    assert batch.total_jobs == 2 and not batch.cancelled()


def test_fake_batch_cancelled() -> None:
    job, batch = GrowsBatch(2).with_fake_batch(name="imports")
    batch.cancel()
    job.handle()
    assert batch.cancelled() and batch.added == [] and batch.name == "imports"
    assert LOG == [("skipped-cancelled",)]


def test_fake_batch_and_interactions_together() -> None:
    job, batch = Interacts("delete").with_fake_batch()
    job.with_fake_queue_interactions().handle()
    job.assert_deleted()
    assert job.batch() is batch


def test_chain_changes_made_by_handle() -> None:
    job = ChainsMore().with_fake_queue_interactions()
    job.handle()
    job.assert_has_chain([RecordShipment, NotifyCustomer])
    job.assert_has_chain([RecordShipment(1), NotifyCustomer("ann")])
    with fails("expected the chain \\[NotifyCustomer\\] after the job, but it chained \\[RecordShipment, NotifyCustomer\\]"):
        job.assert_has_chain([NotifyCustomer])
    with fails("expected the job to chain nothing"):
        job.assert_doesnt_have_chain()
    run("nothing").assert_doesnt_have_chain()
