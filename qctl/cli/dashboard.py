"""How one `qctl top` frame looks: four compact panels (queues, workers, recent failures, batches)
that fit the console's height, text only where it matters (readable with NO_COLOR and in 80×24).

Like `output.py`, this module talks to the terminal through rich; it draws a `Snapshot`
(`qctl.monitoring.top`) and reads nothing itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

from qctl.cli.keys import WaitForKey
from qctl.cli.output import printable
from qctl.cli.status import duration, wait_text

if TYPE_CHECKING:
    from qctl.bus.batch import Batch
    from qctl.monitoring.status import QueueStatus
    from qctl.monitoring.top import Failure, Snapshot
    from qctl.worker.heartbeat import WorkerRecord

SPARKS = "▁▂▃▄▅▆▇█"
ASCII_SPARKS = "_.-=#"
BAR_WIDTH = 16
PANELS = 4
LINES_PER_PANEL = 2
"""A panel's title and its table's header."""


@dataclass(frozen=True)
class Look:
    height: int
    """Lines the frame may take."""
    unicode: bool
    """The terminal takes block characters (else sparklines and bars are drawn in ASCII)."""
    width: int = 80
    live: bool = True


def frame(snapshot: Snapshot, look: Look) -> RenderableType:
    status = snapshot.status
    tables = [
        ("Queues", "no queues", QUEUE_COLUMNS, [queue_cells(q, snapshot, look) for q in status.queues]),
        ("Workers", "none running", WORKER_COLUMNS, [worker_cells(w, snapshot.taken_at) for w in status.workers]),
        ("Recent failures", "none", FAILURE_COLUMNS, [failure_cells(f, snapshot.taken_at) for f in snapshot.failures]),
        ("Batches in progress", "none", BATCH_COLUMNS, [batch_cells(b, look) for b in status.batches]),
    ]
    problems = [Text(f"error: {printable(problem)}", style="bold red") for problem in snapshot.problems]
    room = max(0, look.height - 1 - PANELS * LINES_PER_PANEL - len(problems))
    shown = share_rows([len(rows) for *_, rows in tables], room)
    parts: list[RenderableType] = [header(snapshot, look)]
    for (title, empty, columns, rows), count in zip(tables, shown, strict=True):
        parts.append(panel(title, empty, columns, rows[:count], len(rows), look.width))
    return Group(*parts, *problems)


def share_rows(wanted: Sequence[int], room: int) -> list[int]:
    """Rows each panel shows when only `room` lines are left: one at a time to each panel in turn,
    so a long list of queues never pushes the workers off the screen."""
    given = [0] * len(wanted)
    while room > 0 and any(g < w for g, w in zip(given, wanted, strict=True)):
        for index, want in enumerate(wanted):
            if room > 0 and given[index] < want:
                given[index] += 1
                room -= 1
    return given


def header(snapshot: Snapshot, look: Look) -> Text:
    clock = time.strftime("%H:%M:%S", time.localtime(snapshot.taken_at))
    text = Text(f"qctl top  {clock}", style="bold")
    text.append("  refreshes every second, q quits" if look.live else "")
    return text


def panel(title: str, empty: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], total: int,
          width: int) -> RenderableType:
    if not total:
        return Text(f"{title}: {empty}", style="bold")
    more = f" ({len(rows)} of {total} shown)" if len(rows) < total else ""
    table = Table(title=Text(f"{title}{more}", style="bold"), title_justify="left", box=None, padding=(0, 1),
                  pad_edge=False, show_edge=False, header_style="bold")
    cells = [[printable(cell) for cell in row] for row in rows]
    for column, fitted in zip(columns, fit(columns, cells, width), strict=True):
        table.add_column(column.name, justify=column.justify, no_wrap=True, overflow="ellipsis", width=fitted)
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    return table


@dataclass(frozen=True)
class Column:
    name: str
    justify: JustifyMethod = "left"
    shrinks_to: int | None = None
    """A column that gives up its width (down to this) when the row is wider than the screen."""
    widest: int | None = None
    """Never wider than this, whatever its cells (a long class name leaves room for the error)."""


GAP = 2


def fit(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """Each column's width: as wide as its widest cell, the shrinking ones narrowed (in order) until
    the row fits the screen, the last first; the others keep theirs, so numbers and ids are never cut."""
    widths = [min(max([cell_len(column.name), *(cell_len(row[n]) for row in rows)]), column.widest or width)
              for n, column in enumerate(columns)]
    excess = sum(widths) + GAP * (len(widths) - 1) - width
    for n, column in reversed(list(enumerate(columns))):
        if excess <= 0:
            break
        if column.shrinks_to is not None and widths[n] > column.shrinks_to:
            given = min(excess, widths[n] - column.shrinks_to)
            widths[n] -= given
            excess -= given
    return widths


QUEUE_COLUMNS = [Column("queue", shrinks_to=10, widest=30), Column("ready", "right"), Column("delayed", "right"),
                 Column("reserved", "right"), Column("failed", "right"), Column("wait", "right"),
                 Column("done/min, 15 min"), Column("1h", "right")]
WORKER_COLUMNS = [Column("name", shrinks_to=8, widest=20), Column("state"), Column("job", shrinks_to=12, widest=30),
                  Column("for", "right"), Column("rss", "right"), Column("cpu", "right"), Column("done", "right")]
FAILURE_COLUMNS = [Column("id"), Column("ago", "right"), Column("class", shrinks_to=8, widest=16),
                   Column("error", shrinks_to=10)]
"""The error gives up its width before the class does (`fit` narrows from the last column back)."""
BATCH_COLUMNS = [Column("id"), Column("name", shrinks_to=8, widest=24), Column("progress"), Column("done", "right"),
                 Column("failed", "right")]


def queue_cells(item: QueueStatus, snapshot: Snapshot, look: Look) -> list[str]:
    sizes = item.sizes
    counts = snapshot.per_minute.get((item.connection, item.queue), [])
    last_hour = "-" if item.processed is None else str(item.processed.last_hour)
    return [f"{item.connection}:{item.queue}", str(sizes.ready), str(sizes.delayed), str(sizes.reserved),
            str(item.failed.total), wait_text(sizes.oldest_wait), sparkline(counts, look.unicode), last_hour]


def sparkline(counts: Sequence[int], unicode: bool = True) -> str:
    """One character per minute, the lowest for none; the tallest is the busiest minute shown."""
    if not counts:
        return "-"
    steps = SPARKS if unicode else ASCII_SPARKS
    top = max(counts)
    if top == 0:
        return steps[0] * len(counts)
    return "".join(steps[0] if n == 0 else steps[max(1, round(n / top * (len(steps) - 1)))] for n in counts)


def worker_cells(record: WorkerRecord, now: float) -> list[str]:
    job = " ".join(p for p in ((record.job_class or "").rsplit(".", 1)[-1], (record.job_id or "")[:8]) if p)
    running = "" if record.job_started_at is None or not job else duration(now - record.job_started_at)
    if len(record.in_flight) > 1:  # --concurrency: the oldest job, and how many more run beside it
        job += f" +{len(record.in_flight) - 1}"
    rss = "-" if record.rss_mb is None else f"{record.rss_mb:.0f}M"
    cpu = "-" if record.cpu_percent is None else f"{record.cpu_percent:.0f}%"
    return [record.name, record.state, job or "-", running, rss, cpu, str(record.jobs_done)]


def failure_cells(failure: Failure, now: float) -> list[str]:
    return [failure.id, duration(now - failure.failed_at), failure.job_class.rsplit(".", 1)[-1], failure.error]


def batch_cells(batch: Batch, look: Look) -> list[str]:
    percent = batch.progress()
    return [batch.id[:8], batch.name or "-", f"{bar(percent, look.unicode)} {percent:>3}%",
            f"{batch.processed_jobs()}/{batch.total_jobs}", str(batch.failed_jobs)]


def bar(percent: int, unicode: bool = True) -> str:
    """A bar drawn with two different characters, so it reads without colour."""
    full = round(max(0, min(100, percent)) / 100 * BAR_WIDTH)
    done, left = ("█", "░") if unicode else ("#", "-")
    return done * full + left * (BAR_WIDTH - full)


REFRESH_SECONDS = 1.0
QUIT_KEYS = frozenset("qQ")


def show_once(snapshot: Snapshot) -> None:
    """One frame on stdout, every row of it (for scripts: no screen, no height limit)."""
    from qctl.cli.output import out

    out.print(frame(snapshot, Look(height=1_000_000, unicode=_takes_unicode(out), width=out.width, live=False)))


def show_live(take: Callable[[], Snapshot], wait_for_key: WaitForKey, first: Snapshot) -> None:
    """The full-screen view, drawn again every second until q is pressed (Ctrl-C: KeyboardInterrupt).

    rich's own refresh thread is off: a frame is drawn only when a new snapshot is taken, once a
    second (at the terminal's size then), which keeps an idle `top` near no CPU at all."""
    from rich.console import Console
    from rich.live import Live

    console = Console(highlight=False)
    unicode = _takes_unicode(console)

    def draw(snapshot: Snapshot) -> RenderableType:
        width, height = console.size
        return frame(snapshot, Look(height=height, unicode=unicode, width=width))

    with Live(draw(first), console=console, screen=True, auto_refresh=False, redirect_stdout=False,
              redirect_stderr=False) as live:
        next_at = time.monotonic() + REFRESH_SECONDS
        while True:
            if QUIT_KEYS & set(wait_for_key(max(0.0, next_at - time.monotonic()))):
                return
            if time.monotonic() >= next_at:
                live.update(draw(take()), refresh=True)
                next_at = time.monotonic() + REFRESH_SECONDS


def _takes_unicode(console: Any) -> bool:
    return str(console.encoding).lower().startswith("utf")
