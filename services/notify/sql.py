"""Raw asyncpg statements with named parameters: `:name` in the text, values given by name.

The paging path sends its statements straight to asyncpg (no SQLAlchemy compilation on every
page). Naming the parameters keeps a value from landing in the wrong column when a statement
changes; the text is turned into asyncpg's `$1, $2, ...` once, at import, and a name used twice
is one parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: `:name`, but not a cast's `::type`.
_NAME = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Statement:
    #: The text as asyncpg takes it (`$n` placeholders).
    sql: str
    #: The parameters' names, in `$n` order.
    names: tuple[str, ...]

    def args(self, **values: object) -> list[object]:
        """The values in placeholder order; every name, and only those, must be given."""
        if values.keys() != set(self.names):
            missing, extra = set(self.names) - values.keys(), values.keys() - set(self.names)
            raise TypeError(
                f"statement parameters: missing {sorted(missing)}, extra {sorted(extra)}"
            )
        return [values[name] for name in self.names]


def statement(text: str) -> Statement:
    """`text` with its `:name` parameters numbered in order of first use."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return Statement(_NAME.sub(number, text), tuple(names))
