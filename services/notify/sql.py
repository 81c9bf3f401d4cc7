"""Raw asyncpg statements with named parameters: `:name` in the text, values given by name.

The paging path sends its statements straight to asyncpg (no SQLAlchemy compilation on every
page). Naming the parameters keeps a value from landing in the wrong column when a statement
changes; the text is turned into asyncpg's `$1, $2, ...` once, at import, and a name used twice
is one parameter. A Statement is also the `$n` text itself (a str), so tests/shared/test_sql.py
prepares it against the schema like any other statement; `.sql` is what is sent.
"""

from __future__ import annotations

import re

#: `:name`, but not a cast's `::type`.
_NAME = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Statement(str):
    #: The `$n` text as a plain str: what is sent (asyncpg's compiled protocol takes exactly a
    #: str, not a subclass).
    sql: str
    #: The parameters' names, in `$n` order.
    names: tuple[str, ...]

    def __new__(cls, text: str) -> Statement:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        sql = _NAME.sub(number, text)
        statement = super().__new__(cls, sql)
        statement.sql, statement.names = sql, tuple(names)
        return statement

    def args(self, **values: object) -> list[object]:
        """The values in placeholder order; every name, and only those, must be given."""
        if values.keys() != set(self.names):
            missing, extra = set(self.names) - values.keys(), values.keys() - set(self.names)
            raise TypeError(f"parameters missing: {sorted(missing)}, unknown: {sorted(extra)}")
        return [values[name] for name in self.names]
