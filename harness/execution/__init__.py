"""Running untrusted submissions and recording what happened: the runner and its
worker processes, the ingestion process and sandbox a run lives in, Dask scale-out (``cluster``),
the run records (``records``) and their store (``store``), what produced a run (``provenance``)
and where the time goes (``phases``).

May import: ``harness.core`` through ``harness.reference``.
"""
