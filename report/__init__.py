"""The self-evaluation (自评) report and the analysts' tools over the warehouse.

- ``report.data``: read-only queries (latest nightly values, quality, provenance).
- ``report.svg``: tiny inline-SVG charts (no JavaScript, no CDN: opens offline).
- ``report.charts``: the same charts for notebooks (a connection or path in, a figure out).
- ``report.render``: the HTML report of one region and month.
- ``report.cli``: ``yibao report`` and ``yibao query``.
"""
