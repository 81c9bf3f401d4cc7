"""Every SQL statement the services keep as a module constant is prepared against the migrated
schema, so a renamed or dropped column fails here, not on a page at 3 a.m.

Statements are found, not listed: each module of `services/` and `shared/` is imported, and every
module-level string that reads as a statement (SELECT, INSERT, UPDATE, DELETE, WITH) and every
module-level SQLAlchemy statement is prepared on a real connection (PREPARE parses, resolves
every table, column, function and parameter type, and runs nothing). A template still holding
`{placeholders}` is prepared once per schema it is written for.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.expression import Executable

import services
import shared

ROOT = Path(__file__).resolve().parents[2]
#: Modules that are not the services' own code paths (the console holds no SQL; a service's
#: `__main__` starts a server when imported).
SKIP = re.compile(r"\.__main__$|^services\.console\b")
STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE | re.DOTALL)
SCHEMAS = ("intake", "risk", "notify")


def _cte_head(sql: str) -> bool:
    """A WITH clause with no statement after it: the head of statements composed from it (each
    prepared whole where it is defined)."""
    if not re.match(r"^\s*WITH\b", sql, re.IGNORECASE):
        return False
    outside = sql
    while (inner := re.sub(r"\([^()]*\)", "", outside)) != outside:
        outside = inner
    return not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE)\b", outside, re.IGNORECASE)


def _modules() -> Iterator[str]:
    for package in (services, shared):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not SKIP.search(info.name):
                yield info.name


def _statements() -> list[tuple[str, str]]:
    """(where, SQL) of every module-level statement, templates filled in per schema."""
    found: dict[str, str] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if getattr(value, "__module__", name) != name and not isinstance(value, str):
                continue  # imported from elsewhere: prepared where it is defined
            where = f"{name}.{attr}"
            if isinstance(value, str) and STATEMENT.match(value):
                if _cte_head(value) or ("{" in value and "{schema}" not in value):
                    continue  # built at run time from parts prepared elsewhere
                for schema in SCHEMAS if "{schema}" in value else ("",):
                    sql = value.replace("{schema}", schema)
                    found[sql] = f"{where}[{schema}]" if schema else where
            elif isinstance(value, Executable) and not isinstance(value, type):
                compiled = value.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[attr-defined]
                found[str(compiled)] = where
    return [(where, sql) for sql, where in found.items()]


STATEMENTS = _statements()


def test_statements_are_found() -> None:
    """The finder finds the hot path's statements (a finder that finds nothing passes all)."""
    names = {where.rsplit(".", 1)[-1] for where, _ in STATEMENTS}
    assert len(STATEMENTS) >= 40, len(STATEMENTS)
    assert {"_CLAIM", "_OPEN_ALERT", "_ADD_DELIVERIES"} <= names, sorted(names)


async def test_every_statement_prepares_against_the_migrated_schema(db: asyncpg.Pool) -> None:
    failures = []
    async with db.acquire() as conn:
        for where, sql in STATEMENTS:
            try:
                async with conn.transaction():
                    await conn.prepare(sql)
            except asyncpg.PostgresError as exc:
                failures.append(f"{where}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
