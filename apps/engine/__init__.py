"""Canal's execution engine: pure Python, no Django, no I/O.

It turns a KFP v2 PipelineSpec (IR) plus the recorded state of a run's tasks into
decisions: which tasks are ready (with resolved inputs), which must be skipped and
why, which DAGs have finished, and whether the run is complete.
"""
