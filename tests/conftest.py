"""Marks every test under tests/integration as `integration`, and runs the longest modules
first."""

from __future__ import annotations

import pytest

#: Modules that take longest (their fixtures included), longest first, as measured by a whole
#: `make test` (`--durations` and each module's wall time). `make test` hands whole modules to
#: its pytest-xdist processes in collection order (`--dist loadfile`), so these start first and
#: the shorter ones fill in around them: a long module collected last would run alone at the
#: end while the other processes idle.
LONGEST_FIRST = (
    "tests/integration/test_docs_examples.py",
    "tests/integration/test_flavors.py",
    "tests/integration/test_outside_clients.py",
    "tests/integration/test_schemathesis.py",
    "tests/integration/test_jobs.py",
    "tests/integration/test_make_up.py",
    "tests/integration/test_invocations.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)

    def order(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))

    items.sort(key=order)  # stable: each module keeps its own order
