"""Example jobs for `qctl demo`: a few hundred small jobs, a couple of which fail on purpose."""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal

from qctl.jobs.functions import queueable
from qctl.jobs.job import Job

FAILING_INVOICES = (13, 42)


class ResizeImage(Job):
    """Pretends to resize an image: a few milliseconds of hashing."""

    def __init__(self, image_id: int, sizes: tuple[int, ...]) -> None:
        self.image_id = image_id
        self.sizes = sizes

    def handle(self) -> None:
        digest = str(self.image_id).encode()
        for _ in self.sizes:
            digest = hashlib.sha256(digest * 64).digest()
        time.sleep(0.002)


class SendInvoice(Job):
    """Pretends to send an invoice; two invoices have a bad address and fail."""

    tries = 1

    def __init__(self, invoice_id: int, amount: Decimal) -> None:
        self.invoice_id = invoice_id
        self.amount = amount

    def handle(self) -> None:
        if self.invoice_id in FAILING_INVOICES:
            raise ValueError(f"invoice {self.invoice_id}: the customer's e-mail address bounced")
        time.sleep(0.001)


@queueable
def record_metric(name: str, value: float) -> None:
    """A queued function: the closure analogue."""
    time.sleep(0.0005)


def demo_jobs(count: int) -> list[Job]:
    jobs: list[Job] = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            jobs.append(ResizeImage(i, (320, 640, 1280)))
        elif kind == 1:
            jobs.append(SendInvoice(i // 3 + 1, Decimal(f"{i}.99")))
        else:
            from qctl.jobs.functions import queued

            jobs.append(queued(record_metric, "demo.latency", i / 10))
    return jobs
