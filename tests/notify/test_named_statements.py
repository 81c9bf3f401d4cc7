"""Named parameters of the paging path's raw statements (services/notify/sql.py)."""

from __future__ import annotations

import pytest

from services.notify.sql import Statement


def test_names_become_numbered_placeholders_in_order_of_first_use() -> None:
    found = Statement("SELECT * FROM t WHERE a = :a AND b = ANY(:bs::uuid[]) AND c = :a::text")
    assert found == "SELECT * FROM t WHERE a = $1 AND b = ANY($2::uuid[]) AND c = $1::text"
    assert found.sql == found and type(found.sql) is str
    assert found.names == ("a", "bs")
    assert found.args(bs=[1], a=0) == [0, [1]]


def test_a_missing_or_unknown_name_is_refused() -> None:
    found = Statement("UPDATE t SET a = :a WHERE id = :id")
    with pytest.raises(TypeError, match="missing"):
        found.args(a=1)
    with pytest.raises(TypeError, match="unknown"):
        found.args(a=1, id=2, b=3)
