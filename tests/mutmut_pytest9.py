"""pytest plugin loaded only by mutmut runs (``-p tests.mutmut_pytest9`` in [tool.mutmut]).

Two fixes. mutmut 3.7 reads ``item._nodeid``, which pytest 9 no longer has; mutmut 3.8
fixes that but needs click >= 8.4, which faust-streaming (click < 8.4) rules out: drop that
part once a mutmut that supports pytest 9 installs next to faust. And hypothesis does not
shrink under mutmut (below).
"""

from __future__ import annotations

from _pytest.nodes import Node

if not hasattr(Node, "_nodeid"):
    Node._nodeid = property(lambda self: self.nodeid)  # type: ignore[attr-defined]

# A mutant that breaks a hypothesis property makes hypothesis shrink the failing example,
# which can outlast mutmut's CPU limit and be counted a timeout instead of a kill. Under
# mutmut only whether a test fails matters: generate examples, skip the shrinking, and
# keep hypothesis's example database out of the scratch copy.
from hypothesis import Phase, settings  # noqa: E402

settings.register_profile("mutmut", phases=[Phase.explicit, Phase.reuse, Phase.generate], database=None)
settings.load_profile("mutmut")
