"""``eddy monitor``: a faust-streaming app that keeps windowed figures of the decision log.

``figures`` is the pure part (what one record contributes, how contributions
add up, the ratios); ``app`` wires it into faust agents and changelog-backed
tables; ``export`` serves the tables to Prometheus. See docs/monitor.md.
"""
