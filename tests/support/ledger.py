"""The ledger oracle: from the lines jobs append (`phase uuid attempt pid monotonic`), prove no loss
and explain every duplicate, independently of the store under test."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import read_ledger


def ledger_rows(ledger: Path, phase: str, uuid: str) -> list[list[str]]:
    """The ledger lines of one phase (`start`, `end`, `failed`) of one job."""
    return [row for row in read_ledger(ledger) if row[0] == phase and row[1] == uuid]


@dataclass
class LedgerReport:
    dispatched: int
    completed: int
    failed: int
    lost: list[str] = field(default_factory=list)
    duplicates: int = 0
    unexplained: list[str] = field(default_factory=list)
    """uuids whose extra run (or run that never ended) came from a worker that was not killed."""

    def summary(self) -> str:
        return (
            f"dispatched {self.dispatched}, completed {self.completed}, failed {self.failed}, "
            f"lost {len(self.lost)}, duplicates {self.duplicates}, unexplained {len(self.unexplained)}"
        )


def analyse(ledger: Path, dispatched: Iterable[str], killed_pids: Iterable[int], failed: Iterable[str] = ()) -> LedgerReport:
    """A job is lost when it has no `end` and no failed record. A duplicate `end` is explained when
    the worker that ended it earlier was killed (between its handle and its ack); a `start` that
    never ended must come from a killed worker too."""
    killed = {str(pid) for pid in killed_pids}
    failed_set = set(failed)
    ends: dict[str, list[str]] = defaultdict(list)
    open_runs: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in read_ledger(ledger):
        if len(row) < 5:
            continue  # a torn last line
        phase, uuid, attempt, pid = row[0], row[1], row[2], row[3]
        if phase == "start":
            open_runs[(uuid, attempt, pid)] += 1
        elif phase == "end":
            ends[uuid].append(pid)
            open_runs[(uuid, attempt, pid)] -= 1
    wanted = list(dispatched)
    report = LedgerReport(len(wanted), sum(1 for u in wanted if ends.get(u)), len(failed_set))
    report.lost = [u for u in wanted if not ends.get(u) and u not in failed_set]
    for uuid, pids in ends.items():
        report.duplicates += len(pids) - 1
        if sum(1 for pid in pids[:-1] if pid not in killed) > 0 and len(pids) > 1:
            report.unexplained.append(uuid)
    for (uuid, _, pid), still_open in open_runs.items():
        if still_open > 0 and pid not in killed:
            report.unexplained.append(uuid)
    return report
