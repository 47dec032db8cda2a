"""What waiting for the application's transaction costs a dispatch.

On one PostgreSQL database (queue table and the app's session), interleaved per round:
- plain: `dispatch()` outside any transaction (one pooled INSERT each);
- after-commit: `after_commit().dispatch()` inside a tracked Session's transaction, then the commit
  that pushes them (the figure is per job, hold and push included);
- in-transaction: `in_transaction().dispatch()` inside the same kind of transaction, then its commit;
  the statements each dispatch adds to the app's transaction are counted on its engine.
Medians over the rounds, in µs per job.

    python bench/transactions.py [--jobs 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

POSTGRES_URL = os.environ.get("QCTL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from qctl_bench_jobs import Noop
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.orm import sessionmaker

    from qctl import config
    from qctl.runtime import Runtime, set_current
    from qctl.transactions import track

    token = secrets.token_hex(4)
    directory = Path(tempfile.mkdtemp(prefix="qctl-bench-tx-"))
    (directory / "qctl.toml").write_text(
        f'default = "pg"\napp = ["qctl_bench_jobs"]\n\n[connections.pg]\ndriver = "database"\n'
        f'url = "{POSTGRES_URL}"\ntable = "jobs_{token}"\n'
        + "".join(f'\n[{s}]\nurl = "{POSTGRES_URL}"\ntable = "{s}_{token}"\n' for s in ("failed", "batching", "cache")),
        encoding="utf-8",
    )
    runtime = Runtime(config.load(directory / "qctl.toml"))
    set_current(runtime)
    driver = runtime.connections.get()
    driver.size("default")  # the table exists before anything is timed
    engine = create_engine(POSTGRES_URL)
    Session = track(sessionmaker(engine))
    statements = [0]
    event.listen(engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1))

    def plain() -> None:
        for _ in range(args.jobs):
            Noop().dispatch()

    def after_commit() -> None:
        with Session() as session, session.begin():
            session.execute(text("SELECT 1"))
            for _ in range(args.jobs):
                Noop().after_commit().dispatch()

    def in_transaction() -> None:
        with Session() as session, session.begin():
            session.execute(text("SELECT 1"))
            before = statements[0]
            for _ in range(args.jobs):
                Noop().in_transaction().dispatch()
            per_dispatch.append((statements[0] - before) / args.jobs)

    per_dispatch: list[float] = []
    kinds = {"plain": plain, "after-commit": after_commit, "in-transaction": in_transaction}
    results: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        for _ in range(args.rounds):
            for name, run in kinds.items():
                started = time.perf_counter()
                run()
                results[name].append((time.perf_counter() - started) / args.jobs * 1e6)
                driver.clear("default")
        base = statistics.median(results["plain"])
        print(f"{args.jobs} jobs x {args.rounds} rounds on PostgreSQL (median µs per dispatch)")
        for name, values in results.items():
            median = statistics.median(values)
            print(f"  {name:15s} {median:8.1f} µs   ({median / base:.2f}x plain)")
        print(f"  statements added to the app's transaction per in-transaction dispatch: {statistics.median(per_dispatch):.2f}")
    finally:
        with engine.begin() as conn:
            for table in (f"jobs_{token}", f"failed_{token}", f"batching_{token}", f"cache_{token}", f"cache_{token}_locks"):
                conn.execute(text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()
        runtime.close()


if __name__ == "__main__":
    main()
