"""Selecting the executor: in-process by default, ``LAKEHOUSE_EXECUTOR=dask`` with its scheduler's address, anything
else refused in one line. That the Dask executor runs every step of the whole graph on two real workers, with the
same results as in-process, is test_distributed_topology.py."""

import dagster as dg
import pytest

from lakehouse.executors import ExecutorConfigError, executor_from_env


def test_in_process_is_the_default():
    assert executor_from_env({}) is dg.in_process_executor
    assert executor_from_env({"LAKEHOUSE_EXECUTOR": "in_process"}) is dg.in_process_executor


def test_dask_is_selected_with_its_scheduler():
    executor = executor_from_env({"LAKEHOUSE_EXECUTOR": "dask", "LAKEHOUSE_DASK_SCHEDULER": "tcp://10.0.0.5:8786"})
    assert executor.name == "dask"  # that it reaches the scheduler is what test_the_steps_ran_on_both_workers shows
    assert executor is not dg.in_process_executor


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"LAKEHOUSE_EXECUTOR": "celery"}, "LAKEHOUSE_EXECUTOR='celery' is not supported"),
        ({"LAKEHOUSE_EXECUTOR": "dask"}, "LAKEHOUSE_DASK_SCHEDULER"),
        ({"LAKEHOUSE_EXECUTOR": "dask", "LAKEHOUSE_DASK_SCHEDULER": "10.0.0.5:8786"}, "tcp://"),
    ],
)
def test_unsupported_settings_are_refused_in_one_line(environ: dict[str, str], named: str):
    with pytest.raises(ExecutorConfigError, match=named) as error:
        executor_from_env(environ)
    assert "\n" not in str(error.value)
