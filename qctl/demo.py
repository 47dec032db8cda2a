"""Example jobs for `qctl demo`: a few hundred small jobs, two of which fail on purpose.

The two bounce only on their first run (a flag per job id in the cache store), so once they
are pushed back with `qctl retry` they succeed, as a real job would once its cause was fixed.
"""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal

from qctl.jobs.functions import queueable
from qctl.jobs.job import Job
from qctl.middleware.base import cache_of

FAILING = 2
"""How many demo jobs fail, whatever their number (at least this many are dispatched)."""
BOUNCED_FOR = 86_400


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
    """Pretends to send an invoice; one whose address `bounces` fails on its first run only."""

    tries = 1

    def __init__(self, invoice_id: int, amount: Decimal, bounces: bool = False) -> None:
        self.invoice_id = invoice_id
        self.amount = amount
        self.bounces = bounces

    def handle(self) -> None:
        if self.bounces and cache_of(self).add(f"qctl-demo:bounced:{self.job_id}", "1", ttl=BOUNCED_FOR):
            raise ValueError(f"invoice {self.invoice_id}: the customer's e-mail address bounced "
                             "(it has been fixed since: `qctl retry` this job)")
        time.sleep(0.001)


@queueable
def record_metric(name: str, value: float) -> None:
    """A queued function: the closure analogue."""
    time.sleep(0.0005)


def demo_jobs(count: int) -> list[Job]:
    """`count` (at least FAILING) jobs of three kinds; the FAILING invoices that bounce are spread among them."""
    bouncing = {count * (n + 1) // (FAILING + 1) for n in range(FAILING)}
    jobs: list[Job] = []
    for i in range(count):
        kind = i % 3
        if i in bouncing:
            jobs.append(SendInvoice(i // 3 + 1, Decimal(f"{i}.99"), bounces=True))
        elif kind == 0:
            jobs.append(ResizeImage(i, (320, 640, 1280)))
        elif kind == 1:
            jobs.append(SendInvoice(i // 3 + 1, Decimal(f"{i}.99")))
        else:
            from qctl.jobs.functions import queued

            jobs.append(queued(record_metric, "demo.latency", i / 10))
    return jobs
