"""Root conftest: docstring examples are unit tests.

``--doctest-modules`` (pyproject addopts) collects the examples in the packages, and
deploy/test selects ``-m "unit or integration"``; without a marker every doctest would
be deselected there, so this marks each one ``unit`` before ``-m`` filters.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.DoctestItem):
            item.add_marker(pytest.mark.unit)
