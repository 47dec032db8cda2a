"""`qctl about`: the config found, connections, stores, versions and the servers that answer."""

from __future__ import annotations

import json as json_module
from typing import Any

import typer

from qctl.cli import context, options, output


def about(ctx: typer.Context, json: options.Json = False) -> None:
    """Show the config file found, every connection and store (passwords masked), app, key, versions, and which servers answer."""
    from qctl.about import describe

    facts = describe(context.get(ctx).config)
    if json:
        print(json_module.dumps(facts, indent=2))
        return
    for text in lines(facts):
        output.line(text)


def lines(facts: dict[str, Any]) -> list[str]:
    where = f" ({facts['config_directory']})" if facts["config_directory"] else ""
    found = [
        f"config      {facts['config']}{where}",
        f"app         {', '.join(facts['app']) or '(none)'}",
        f"key         {'set: payloads are signed' if facts['key_set'] else 'not set: payloads are not signed (qctl key:generate --write)'}",
        "connections",
    ]
    for c in facts["connections"]:
        url = f"  {c['url']}" if c["url"] else ""
        found.append(f"  {c['name']}{' (default)' if c['default'] else ''}: {c['driver']}{url}  queue {c['queue']}")
    found.append("stores")
    for kind, store in facts["stores"].items():
        url = f"  {store['url']}" if store["url"] else ""
        found.append(f"  {kind}: {store['driver']}{url}  table {store['table']}")
    found.append("versions    " + ", ".join(f"{name} {version or 'not installed'}" for name, version in facts["versions"].items()))
    found.append("servers")
    for server in facts["servers"]:
        found.append(f"  {server['url']}: {'ok' if server['reachable'] else 'unreachable'}, {server['detail']}")
    return found
