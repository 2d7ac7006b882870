"""A tiny in-memory stand-in for the Django service and a backend, to drive the engine.

``FakeRun`` keeps NodeRecords in a dict, applies each Plan the way the service will
(creates, then completes), and runs launched steps with Python callables instead of
processes. It goes through the real ExecutorInput/ExecutorOutput code: every container
step's command is rendered and its outputs are collected with ``collect_outputs``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.engine.execution import ActiveExecution
from apps.engine.executor_io import (
    OutputError,
    build_executor_input,
    collect_outputs,
    default_parameter_files,
    resolve_importer,
)
from apps.engine.keys import NodeKind, NodeState, is_terminal
from apps.engine.model import ArtifactRef, NodeIO, NodeRecord, Plan, RunContext, RunOutcome, StepLaunch
from apps.engine.placeholders import render_command
from apps.engine.spec import PipelineSpec


class StepFailed(Exception):
    """Raised by a behaviour to make the step fail."""


@dataclass
class StepResult:
    """What a fake step returns: parameter values and artifact metadata by output name."""

    parameters: dict[str, Any] = field(default_factory=dict)
    artifact_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


Behaviour = Callable[[StepLaunch], StepResult | dict[str, Any] | None]

_DUMMY = {
    "STRING": "x",
    "NUMBER_INTEGER": 1,
    "NUMBER_DOUBLE": 1.5,
    "BOOLEAN": True,
    "LIST": [],
    "STRUCT": {},
}


def dummy_outputs(launch: StepLaunch) -> StepResult:
    """Typed placeholder values for every declared output parameter."""
    return StepResult({n: _DUMMY.get(d.parameter_type, "x") for n, d in launch.output_parameters.items()})


class FakeRun:
    """Drive one run of ``spec`` to the end with fake steps."""

    def __init__(
        self,
        spec: PipelineSpec,
        ctx: RunContext | None = None,
        behaviours: Mapping[str, Behaviour] | None = None,
        default: Behaviour = dummy_outputs,
    ) -> None:
        self.spec = spec
        self.ctx = ctx or RunContext(run_id="run-1", run_name="test run", pipeline_name=spec.name)
        self.behaviours = dict(behaviours or {})
        self.default = default
        self.records: dict[str, NodeRecord] = {}
        self.pending: dict[str, StepLaunch] = {}
        self.launched: list[StepLaunch] = []
        self.argv: dict[str, list[str]] = {}
        self.plans: list[Plan] = []
        self.outcome: RunOutcome | None = None
        self.reasons: dict[str, str] = {}
        self._ids = itertools.count(1)
        self.max_pending_seen = 0
        self.on_round: Callable[[FakeRun], None] = lambda run: None
        self.check_incremental = True
        self.kept: ActiveExecution | None = None  # the execution fed events, checked against rebuilds
        self._fed: dict[str, NodeRecord] = {}  # the records the kept execution knows

    # -- engine round trip ----------------------------------------------------------------
    def plan(self) -> Plan:
        """One plan() call, applied to the records.

        Unless ``check_incremental`` is off, an execution kept since the first plan is also
        fed the records that changed since (as the service feeds completion events) and
        must return the same plan as the execution rebuilt from every record.
        """
        plan = ActiveExecution(self.spec, self.ctx, list(self.records.values())).plan()
        if self.check_incremental:
            self._check_kept_execution(plan)
        self.apply(plan)
        self.plans.append(plan)
        self._fed = dict(self.records)
        return plan

    def _check_kept_execution(self, rebuilt: Plan) -> None:
        if self.kept is None or any(key not in self.records for key in self._fed):
            # A run retry deletes records: the service builds a new execution then.
            self.kept = ActiveExecution(self.spec, self.ctx, list(self.records.values()))
        else:
            if self.kept.ctx != self.ctx:
                self.kept.set_context(self.ctx)
            for key, record in self.records.items():
                if self._fed.get(key) is not record:
                    self.kept.apply(record)
        incremental = self.kept.advance()
        assert incremental == rebuilt, _plan_difference(incremental, rebuilt)

    def apply(self, plan: Plan) -> None:
        """Write a plan the way the service does: creates (parents first), then completes."""
        for create in plan.creates:
            assert create.key not in self.records, f"{create.key} created twice"
            assert create.parent_key is None or create.parent_key in self.records, create.key
            self.records[create.key] = NodeRecord(
                key=create.key,
                kind=create.kind,
                state=create.state,
                inputs=create.inputs,
                error=create.error,
                iteration_index=create.iteration_index,
                iteration_count=create.iteration_count,
            )
            if create.reason:
                self.reasons[create.key] = create.reason
            if create.launch is not None:
                assert create.state == NodeState.PENDING
                self.pending[create.key] = create.launch
        for complete in plan.completes:
            record = self.records[complete.key]
            assert not is_terminal(record.state), f"{complete.key} completed twice"
            self.records[complete.key] = dataclasses.replace(
                record, state=complete.state, outputs=complete.outputs, error=complete.error
            )
            self.pending.pop(complete.key, None)
        if plan.run_outcome is not None:
            assert self.outcome is None, "the run finished twice"
            self.outcome = plan.run_outcome

    # -- fake backend ---------------------------------------------------------------------
    def execute(self, key: str) -> None:
        """Run one pending step and record its result."""
        launch = self.pending.pop(key)
        self.launched.append(launch)
        record = self.records[key]
        try:
            outputs = self._run_step(launch)
        except (StepFailed, OutputError) as exc:
            self.records[key] = dataclasses.replace(record, state=NodeState.FAILED, error=str(exc))
            return
        self.records[key] = dataclasses.replace(record, state=NodeState.SUCCEEDED, outputs=outputs)

    def succeed(self, key: str, outputs: NodeIO) -> None:
        """Record a step that ran elsewhere as SUCCEEDED with these outputs (artifact ids assigned)."""
        self.pending.pop(key, None)
        record = self.records[key]
        self.records[key] = dataclasses.replace(
            record, state=NodeState.SUCCEEDED, outputs=self._with_ids(outputs)
        )

    def _run_step(self, launch: StepLaunch) -> NodeIO:
        if launch.kind == NodeKind.IMPORTER:
            imported = resolve_importer(launch).outputs
            return self._with_ids(imported)
        uris = {name: f"mem://{self.ctx.run_id}/{launch.key}/{name}" for name in launch.output_artifacts}
        files = default_parameter_files(launch)
        executor_input = build_executor_input(launch, uris, files, "/tmp/kfp_outputs/output_metadata.json")
        assert launch.container is not None
        self.argv[launch.key] = render_command(launch.container, executor_input, launch.placeholder_context)
        behaviour = self.behaviours.get(launch.display_name) or self.behaviours.get(launch.component_name)
        result = (behaviour or self.default)(launch)
        if result is None:
            # "Don't care": typed placeholder values for the declared outputs.
            result = dummy_outputs(launch)
        if isinstance(result, dict):
            result = StepResult(result)
        executor_output = {
            "parameterValues": result.parameters,
            "artifacts": {
                name: {"artifacts": [{"name": name, "uri": uris[name], "metadata": meta}]}
                for name, meta in result.artifact_metadata.items()
            },
        }
        return self._with_ids(collect_outputs(launch, executor_output, {}, uris))

    def _with_ids(self, io: NodeIO) -> NodeIO:
        artifacts = {
            name: [dataclasses.replace(ref, id=f"art-{next(self._ids)}") for ref in refs]
            for name, refs in io.artifacts.items()
        }
        return NodeIO(io.parameters, artifacts)

    def run(
        self,
        *,
        batch: bool = False,
        pick: Callable[[list[str]], list[str]] | None = None,
        max_rounds: int = 10_000,
    ) -> RunOutcome:
        """Plan, execute pending steps (one at a time, all at once with ``batch``, or as ``pick`` chooses)."""
        for _ in range(max_rounds):
            plan = self.plan()
            # Idempotence: a second plan() right after applying one decides nothing new.
            again = ActiveExecution(self.spec, self.ctx, list(self.records.values())).plan()
            assert not again.creates, [c.key for c in again.creates]
            assert not again.completes, [c.key for c in again.completes]
            assert again.run_outcome is None
            if self.outcome is not None:
                assert not self.pending
                return self.outcome
            self.max_pending_seen = max(self.max_pending_seen, len(self.pending))
            if not self.pending:
                raise AssertionError(f"the run is stuck: {self.non_terminal()}")
            if pick is not None:
                keys = pick(list(self.pending))
            else:
                keys = list(self.pending) if batch else [next(iter(self.pending))]
            del plan
            self.on_round(self)
            for key in keys:
                self.execute(key)
        raise AssertionError("the run did not finish")

    # -- inspection -----------------------------------------------------------------------
    def non_terminal(self) -> list[str]:
        """Keys of records that are not finished."""
        return [k for k, r in self.records.items() if not is_terminal(r.state)]

    def state(self, key: str) -> str:
        """The recorded state of a node."""
        return str(self.records[key].state)

    def states(self) -> dict[str, str]:
        """Every node's state by key."""
        return {k: str(r.state) for k, r in self.records.items()}

    def launched_names(self) -> list[str]:
        """Display names of the steps run, in order."""
        return [launch.display_name for launch in self.launched]

    def outputs(self, key: str) -> NodeIO:
        """A node's recorded outputs."""
        return self.records[key].outputs

    def artifact(self, key: str, name: str) -> ArtifactRef:
        """The first artifact of an output."""
        return self.records[key].outputs.artifacts[name][0]


def _plan_difference(incremental: Plan, rebuilt: Plan) -> str:
    """Where a kept execution's plan differs from the rebuilt one (for assertion messages)."""
    return (
        "the kept execution planned differently: "
        f"creates {[c.key for c in incremental.creates]} vs {[c.key for c in rebuilt.creates]}, "
        f"completes {[c.key for c in incremental.completes]} vs {[c.key for c in rebuilt.completes]}, "
        f"outcome {incremental.run_outcome} vs {rebuilt.run_outcome}, "
        f"terminate {incremental.to_terminate} vs {rebuilt.to_terminate}"
    )
