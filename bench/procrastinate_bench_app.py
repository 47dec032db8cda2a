"""Procrastinate's side of the SQL benchmark; runs in the peers' environment, never imports qctl.

Everything lives in its own PostgreSQL schema ($QCTL_BENCH_PG_SCHEMA, put first on
the search path), so the benchmark never touches anyone else's procrastinate tables.

    python procrastinate_bench_app.py setup|fill N|remaining|drop
    python -m procrastinate --app=procrastinate_bench_app.app worker --one-shot -c 10
"""

from __future__ import annotations

import asyncio
import os
import sys

import procrastinate
from bench_span import note_run

DSN = os.environ.get("QCTL_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = os.environ.get("QCTL_BENCH_PG_SCHEMA", "qctl_bench_procrastinate")

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=DSN, kwargs={"options": f"-c search_path={SCHEMA}"})
)


@app.task(name="noop")
async def noop() -> None:
    note_run()


async def setup() -> None:
    await app.connector.execute_query_async(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    await app.schema_manager.apply_schema_async()


async def fill(count: int) -> None:
    # Finished jobs of earlier rounds would make later rounds scan a bigger table.
    await app.connector.execute_query_async("TRUNCATE procrastinate_jobs CASCADE")
    await noop.batch_defer_async(*({} for _ in range(count)))
    # Planner statistics as a long-running database would have them (qctl's table gets the same).
    await app.connector.execute_query_async("ANALYZE procrastinate_jobs")


async def remaining() -> None:
    row = await app.connector.execute_query_one_async(
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
    )
    print(row["n"])


async def drop() -> None:
    await app.connector.execute_query_async(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


async def main(action: str, *args: str) -> None:
    async with app.open_async():
        if action == "setup":
            await setup()
        elif action == "fill":
            await fill(int(args[0]))
        elif action == "remaining":
            await remaining()
        elif action == "drop":
            await drop()
        else:
            raise SystemExit(f"unknown action {action!r}")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
