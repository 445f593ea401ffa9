"""Which Dagster executor runs the steps of the lakehouse's jobs, chosen by the environment.

| ``LAKEHOUSE_EXECUTOR`` | executor                                                                        |
|------------------------|---------------------------------------------------------------------------------|
| unset or ``in_process`` | ``dg.in_process_executor``: every step in the run's own process (the embedded profile) |
| ``dask``               | dagster-dask's ``dask_executor`` on the existing Dask scheduler named by            |
|                        | ``LAKEHOUSE_DASK_SCHEDULER`` (``tcp://host:port``): one Dask task per step, run by  |
|                        | whichever worker Dask picks (the distributed profile, docs/distributed.md)          |

The executor applies to runs launched by the webserver, the daemon (schedules, sensors, automation) and
``dg launch``; ``lakehouse run`` executes its three runs with ``execute_in_process``, which always runs in-process.

What dagster-dask 0.29.27 needs (``dagster_dask/executor.py``, read for this): a persistent instance (it refuses an
ephemeral one; each worker opens the instance from the run's ``InstanceRef``, so the workers need the same
``DAGSTER_PG_*`` variables as ``docker/dagster.yaml`` reads), a reconstructable job (each worker imports
``lakehouse.definitions`` itself, so the workers need the lakehouse installed and the same ``LAKEHOUSE_*`` and
``AWS_*`` variables), and storage every worker can reach for what steps pass each other (this project's assets
return ``MaterializeResult`` only, outputs of type ``Nothing``: nothing goes through an IO manager; the data is
the Delta lake itself). It orders steps by their inputs and runs them without retries and without claiming
concurrency-pool slots.

**dagster-dask 0.29.27's executor fails on this project with dask 2026.8** (read in ``dask/_task_spec.py`` and
``dagster/_core/storage/dagster_run.py``): it passes the ``DagsterRun`` to ``Client.submit``, and dask's
``parse_input`` walks every tuple argument looking for futures. ``DagsterRun`` is a NamedTuple; since this
project's assets declare concurrency pools, its ``run_op_concurrency`` field holds a ``RunOpConcurrency``, a
dagster ``@record`` that is a tuple too but raises ``Exception: Iteration is not allowed on `@record`
RunOpConcurrency`` when iterated, so every step fails before it is sent. :class:`DaskExecutor` below is dagster-dask's
executor (the same worker function, ``dagster_dask.executor.query_on_dask_worker``, the same ordering of steps by
their inputs' futures, the same ``dagster-dask/resource_requirements`` tag) with that one difference: the step's
arguments travel inside an opaque object (:class:`_StepArguments`), which dask does not walk; and the Dask key of a
step names its run (dagster-dask's ``<job>.<step>`` makes Dask take a step of a concurrent run of the same job for
one it already has, so it is skipped: dagster issue #21418). Only an existing scheduler is supported (the
deployment's ``dask scheduler``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.errors import raise_execution_interrupts
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.plan.state import KnownExecutionState
from dagster._core.execution.retries import RetryMode
from dagster._core.instance.ref import InstanceRef
from dagster._utils import iterate_with_context

EXECUTOR_VARIABLE = "LAKEHOUSE_EXECUTOR"
SCHEDULER_VARIABLE = "LAKEHOUSE_DASK_SCHEDULER"
IN_PROCESS = "in_process"
DASK = "dask"
SUPPORTED = (IN_PROCESS, DASK)


class ExecutorConfigError(ValueError):
    """``LAKEHOUSE_EXECUTOR`` names no supported executor, or the Dask executor lacks its scheduler address."""


def executor_from_env(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor chosen by ``LAKEHOUSE_EXECUTOR`` (module docstring), read from ``environ`` (default
    ``os.environ``).

    Raises:
        ExecutorConfigError: an unsupported value, or ``dask`` without a ``LAKEHOUSE_DASK_SCHEDULER`` of the form
            ``tcp://host:port`` (the message is one line and names the variable).
    """
    env = os.environ if environ is None else environ
    name = env.get(EXECUTOR_VARIABLE, "").strip() or IN_PROCESS
    if name == IN_PROCESS:
        return dg.in_process_executor
    if name == DASK:
        address = env.get(SCHEDULER_VARIABLE, "").strip()
        if not address.startswith(("tcp://", "tls://")):
            raise ExecutorConfigError(
                f"{EXECUTOR_VARIABLE}=dask needs {SCHEDULER_VARIABLE}=tcp://<host>:<port> (the Dask scheduler), "
                f"got {address!r}"
            )
        return dask_executor.configured({"address": address}, name="dask")
    raise ExecutorConfigError(
        f"{EXECUTOR_VARIABLE}={name!r} is not supported: use one of {', '.join(SUPPORTED)} (unset means {IN_PROCESS})"
    )


@dataclass(frozen=True)
class _StepArguments:
    """What a Dask worker needs to run one step, in an object Dask passes through untouched (module docstring)."""

    recon_job: ReconstructableJob
    dagster_run: dg.DagsterRun
    run_config: Mapping[str, object]
    step_keys: Sequence[str]
    instance_ref: InstanceRef
    known_state: KnownExecutionState | None


def _run_step_on_worker(dependencies: list[Any], arguments: _StepArguments) -> Sequence[dg.DagsterEvent]:
    """Runs on a Dask worker: dagster-dask's own worker function. ``dependencies`` (the futures of the step's
    upstream steps, resolved by Dask before this runs) only orders the steps."""
    from dagster_dask.executor import query_on_dask_worker

    return query_on_dask_worker(
        dependencies,
        arguments.recon_job,
        arguments.dagster_run,
        arguments.run_config,
        arguments.step_keys,
        arguments.instance_ref,
        arguments.known_state,
    )


class DaskExecutor(dg.Executor):
    """Runs each step of a plan as one task on an existing Dask cluster (dagster-dask's ``DaskExecutor`` for an
    ``existing`` cluster, with the step's arguments wrapped: module docstring)."""

    def __init__(self, address: str):
        self.address = address

    @property
    def retries(self) -> RetryMode:
        return RetryMode.DISABLED

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[dg.DagsterEvent]:
        import dask.distributed
        from dagster_dask.executor import get_dask_resource_requirements

        if not plan_context.instance.is_persistent:
            raise dg.DagsterInvariantViolationError("Dask execution requires a persistent DagsterInstance")
        instance_ref = plan_context.instance.get_ref()
        with dask.distributed.Client(self.address) as client:
            futures: list[Any] = []
            by_step: dict[str, Any] = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    dependencies = [by_step[key] for i in step.step_inputs for key in i.dependency_keys]
                    arguments = _StepArguments(
                        plan_context.reconstructable_job,
                        plan_context.dagster_run,
                        plan_context.run_config,
                        [step.key],
                        instance_ref,
                        execution_plan.known_state,
                    )
                    future = client.submit(
                        _run_step_on_worker,
                        dependencies,
                        arguments,
                        # the run id in the key: Dask treats equal keys as the same task, so two runs of one job
                        # would share (and skip) steps with dagster-dask's "<job>.<step>" (dagster issue #21418)
                        key=f"{plan_context.job_name}.{step.key}.{plan_context.dagster_run.run_id}",
                        resources=get_dask_resource_requirements(step.tags),
                    )
                    futures.append(future)
                    by_step[step.key] = future
            results = dask.distributed.as_completed(futures, with_results=True)
            for _future, events in iterate_with_context(raise_execution_interrupts, results):
                yield from events


@dg.executor(
    name="dask",
    requirements=dg.multiple_process_executor_requirements(),
    config_schema={"address": dg.Field(dg.StringSource, description="The Dask scheduler, tcp://<host>:<port>.")},
)
def dask_executor(init_context: dg.InitExecutorContext) -> DaskExecutor:
    """Each step one task on the existing Dask scheduler at ``address`` (:class:`DaskExecutor`)."""
    return DaskExecutor(str(init_context.executor_config["address"]))
