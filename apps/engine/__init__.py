"""Canal's execution engine: pure Python, no Django, no I/O.

It turns a KFP v2 PipelineSpec (IR) plus the recorded state of a run's tasks into
decisions: which tasks are ready (with resolved inputs), which must be skipped and
why, which DAGs have finished, and whether the run is complete.

Modules:

* ``spec``: ``parse_pipeline_spec(ir, platform_spec) -> PipelineSpec`` and ``SpecError``;
* ``keys``: node keys (``root``, ``root/t``, ``root/loop#3/t``), ``NodeKind``, ``NodeState``;
* ``model``: ``RunContext``, ``NodeRecord``, ``NodeIO``, ``ArtifactRef``, ``Plan``,
  ``NodeCreate``, ``NodeComplete``, ``RunOutcome``, ``StepLaunch``, ``CacheDecision``;
* ``execution``: ``ActiveExecution(spec, ctx, records).plan()``; an execution can also be
  kept for the life of a run: ``advance()`` for each plan, ``apply(record)`` for what
  changed outside the engine, ``set_context(ctx)`` when the run starts canceling;
* ``executor_io``: ``build_executor_input``, ``collect_outputs``, ``resolve_importer``;
* ``placeholders``: ``render_command`` and ``PlaceholderContext``;
* ``cel``, ``cache``, ``retry``, ``graph`` (``graph_from_ir``), ``values``, ``durations``.

How the service drives a run (one "advance" = one ``plan()`` call):

1. load the run's Task rows as ``NodeRecord`` (key, kind, state, inputs recorded at
   creation, outputs, error, iteration_count) and build a ``RunContext``;
2. ``plan = ActiveExecution(spec, ctx, records).plan()``;
3. in one transaction insert ``plan.creates`` in order (parents come first), then apply
   ``plan.completes``; store each ``NodeCreate.launch``;
4. after commit, dispatch ``plan.launches`` (``render_command`` on
   ``build_executor_input(...)``; importers via ``resolve_importer``), terminate
   ``plan.to_terminate``, and record ``plan.run_outcome`` if set;
5. when a step ends, store SUCCEEDED + ``collect_outputs(...)`` (artifact ids assigned
   by the service) or FAILED + error (after ``retry.retry_delay`` says no more retries),
   and advance again.

Cost: building from records is linear in the records of the running groups. A kept
execution (the service keeps one per run in each worker: ``runs.services.records``) is
fed the records that changed and examines only their parent groups and the groups they finish:
per group it counts the children in each state and per loop the first index not yet
created, so one completion costs the same in a 5,000-node run as in a 50-node one
(``operations`` counts it; ``tests/engine/test_incremental.py``), except that a loop
that finishes reads its iterations once to collect its outputs. A run retry deletes
records: build a new execution then.
"""
