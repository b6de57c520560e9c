"""pytest plugin loaded only by mutmut runs (``-p tests.mutmut_pytest9`` in [tool.mutmut]).

mutmut 3.7 reads ``item._nodeid``, which pytest 9 no longer has; mutmut 3.8 fixes that
but needs click >= 8.4, which faust-streaming (click < 8.4) rules out. Remove this
plugin once a mutmut that supports pytest 9 installs next to faust.
"""

from __future__ import annotations

from _pytest.nodes import Node

if not hasattr(Node, "_nodeid"):
    Node._nodeid = property(lambda self: self.nodeid)  # type: ignore[attr-defined]
