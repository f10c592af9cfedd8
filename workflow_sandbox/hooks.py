"""Every change the simulator makes to moto, made and undone together by `MotoPatches`: ECS answers from the
Simulation, CloudWatch Logs pages as AWS pages them, RDS snapshots that take time, API faults on the request path,
moto's own speed-ups (speedups.py) and, given a Registry, ECR as registry.py makes it behave.

They reach into moto's internals, so they hold only for the moto they were written against: `MotoPatches`
refuses any other version before it changes anything.
"""

from contextlib import ExitStack
from functools import wraps
from unittest import mock

import moto
from moto.core.responses import BaseResponse
from moto.ecs import models, responses
from moto.ecs.exceptions import InvalidParameterException, ServiceNotFoundException
from moto.logs.models import LogsBackend
from moto.rds.models import RDSBackend

from .simulator import SimTask, Simulation
from .speedups import faster_moto

MOTO_VERSION = "5.2.5"  # setup.py and the Pipfile pin moto[server] to exactly this


class MotoVersionError(RuntimeError):
    """moto is not the version the patches were written against."""


def _synced(sim: Simulation, original):
    """Bring the model up to the clock before moto answers, so every answer shows the present."""

    @wraps(original)
    def call(backend, *args, **kwargs):
        with sim.lock:
            sim.advance()
            return original(backend, *args, **kwargs)

    return call


class MotoPatches:
    """`with MotoPatches(sim[, registry]):` moto behaves as the simulated cluster (and registry) for the block."""

    def __init__(self, sim: Simulation, registry=None):
        self.sim = sim
        self.registry = registry
        self._stack: ExitStack | None = None

    @staticmethod
    def check(version: str | None = None) -> None:
        found = version or moto.__version__
        if found != MOTO_VERSION:
            raise MotoVersionError(
                f"the simulator patches moto's internals as moto {MOTO_VERSION} has them, and this environment has "
                f"moto {found}; install the pinned version (`pipenv install --dev` in a checkout, or "
                f"`pip install '.[sandbox]'` there)")

    def __enter__(self) -> Simulation:
        self.check()
        stack = ExitStack()
        try:
            stack.enter_context(faster_moto())
            for target, name, replacement in self._patches():
                stack.enter_context(mock.patch.object(target, name, replacement))
            if self.registry is not None:
                from .registry import simulated_ecr

                stack.enter_context(simulated_ecr(self.registry))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self.sim

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def _patches(self) -> list[tuple[object, str, object]]:
        sim = self.sim
        backend_cls = models.EC2ContainerServiceBackend
        response_cls = responses.EC2ContainerServiceResponse
        original = {name: getattr(backend_cls, name) for name in (
            "create_service", "update_service", "describe_services", "list_tasks", "describe_tasks",
            "run_task", "stop_task", "tag_resource", "list_tags_for_resource",
        )}

        def create_service(backend, *args, **kwargs):
            service = original["create_service"](backend, *args, **kwargs)
            sim.service_created(service)
            return service

        def update_service(backend, properties):
            force = bool(properties.get("force_new_deployment"))
            try:
                current = backend._get_service(properties.get("cluster", "default"), properties["service"].split("/")[-1])
            except ServiceNotFoundException:
                current = None  # moto answers it
            if current is not None:
                sim.check_update(current, properties)
                sim.service_updating(current)
                # ECS merges a partial deploymentConfiguration into the service's; moto replaces it.
                if properties.get("deployment_configuration"):
                    merged = {**(getattr(current, "deployment_configuration", None) or {}),
                              **properties["deployment_configuration"]}
                    properties["deployment_configuration"] = merged
            service = original["update_service"](backend, properties)
            sim.service_updated(service, force=force)
            return service

        def describe_services(backend, *args, **kwargs):
            services, failures = original["describe_services"](backend, *args, **kwargs)
            return sim.described_services(services), failures

        def list_tasks(backend, cluster_str=None, container_instance=None, family=None, started_by=None,
                       service_name=None, desiredStatus=None):
            # ListTasks' reference: "When you specify startedBy as the filter, it must be the only filter that you
            # use." moto filters by all of them.
            if started_by and (container_instance or family or service_name or desiredStatus):
                raise InvalidParameterException("startedBy must be the only filter of ListTasks")
            tasks = original["list_tasks"](backend, cluster_str, container_instance, family, started_by)
            return sim.list_filter(tasks, service_name, desiredStatus)

        def describe_tasks(backend, cluster_str, tasks):
            return [t for t in original["describe_tasks"](backend, cluster_str, tasks) if sim.visible(t)]

        def run_task(backend, *args, **kwargs):
            tasks = original["run_task"](backend, *args, **kwargs)
            sim.tasks_run(tasks)
            return tasks

        def stop_task(backend, cluster_str, task_str, reason):
            task = backend.tasks.get(cluster_str.rsplit("/", 1)[-1], {}).get(task_str) or next(
                (t for t in backend.tasks.get(cluster_str.rsplit("/", 1)[-1], {}).values()
                 if t.task_arn.endswith(task_str.rsplit("/", 1)[-1])),
                None,
            )
            if task is None:
                return original["stop_task"](backend, cluster_str, task_str, reason)
            sim.task_stopped(task, reason)
            return task

        def tag_resource(backend, arn, tags):
            if sim.validate_tags:
                resource = backend._get_resource(arn, backend._parse_resource_arn(arn))
                sim.check_tags(getattr(resource, "tags", None), tags)
            return original["tag_resource"](backend, arn, tags)

        def list_tags_for_resource(backend, arn):
            """ECS answers an untagged resource with an empty list; moto leaves `tags` out."""
            return original["list_tags_for_resource"](backend, arn) or []

        def create_service_response(response):
            """moto drops deploymentConfiguration on CreateService; the simulated scheduler needs it."""
            result = original_create_response(response)
            config = response._get_param("deploymentConfiguration")
            if config:
                service = result.result["service"]
                service.deployment_configuration = config
            return result

        def run_task_response(response):
            """ECS runs a RunTask once per clientToken, answering a repeat with the tasks it started; moto runs each."""
            token = response._get_param("clientToken")
            if token and token in sim.run_task_answers:
                return sim.run_task_answers[token]
            result = original_run_task_response(response)
            if token:
                sim.run_task_answers[token] = result
            return result

        def describe_tasks_response(response):
            """ECS names each task it does not know (yet, or any more) in `failures` as MISSING; moto leaves them out."""
            result = original_describe_tasks_response(response)
            found = {task.short_id for task in result.result["tasks"]}
            for wanted in response._get_param("tasks", []):
                if wanted.rsplit("/", 1)[-1] not in found:
                    result.result["failures"].append({"arn": wanted, "reason": "MISSING"})
            return result

        def get_log_events(backend, *args, **kwargs):
            events, backward, forward = original_get_log_events(backend, *args, **kwargs)
            return sim.log_page(events, backward, forward, kwargs.get("next_token"))

        def create_db_snapshot(backend, *args, **kwargs):
            """RDS answers a new snapshot `creating` (moto: available at once); it takes `db_snapshot_seconds`."""
            snapshot = original_create_db_snapshot(backend, *args, **kwargs)
            snapshot.sim_created = sim.clock.now()
            snapshot.status, snapshot.percent_progress = "creating", 0
            _snapshot_progress(sim, backend)
            return snapshot

        def rds_synced(original_method):
            @wraps(original_method)
            def call(backend, *args, **kwargs):
                with sim.lock:
                    _snapshot_progress(sim, backend)
                    return original_method(backend, *args, **kwargs)

            return call

        def call_action(response):
            """Fail the attempt before moto handles it, or lose moto's answer after it has acted."""
            service, operation = response.service_name, response._get_action()
            fault = sim.faults.draw(service, operation, after=False)
            if fault:
                return fault.answer(getattr(response, "uri", ""))
            answer = original_call_action(response)
            fault = sim.faults.draw(service, operation, after=True)
            return fault.answer(getattr(response, "uri", "")) if fault else answer

        original_create_response = response_cls.create_service
        original_describe_tasks_response = response_cls.describe_tasks
        original_run_task_response = response_cls.run_task
        original_get_log_events = LogsBackend.get_log_events
        original_call_action = BaseResponse.call_action
        original_create_db_snapshot = RDSBackend.create_db_snapshot
        replacements = {
            "create_service": create_service,
            "update_service": update_service,
            "describe_services": describe_services,
            "list_tasks": list_tasks,
            "describe_tasks": describe_tasks,
            "run_task": run_task,
            "stop_task": stop_task,
            "tag_resource": tag_resource,
            "list_tags_for_resource": list_tags_for_resource,
        }
        return [
            (models, "Task", SimTask),
            (response_cls, "create_service", create_service_response),
            (response_cls, "describe_tasks", describe_tasks_response),
            (response_cls, "run_task", run_task_response),
            (LogsBackend, "get_log_events", _synced(sim, get_log_events)),
            (BaseResponse, "call_action", call_action),
            (RDSBackend, "create_db_snapshot", rds_synced(create_db_snapshot)),
            *((RDSBackend, name, rds_synced(getattr(RDSBackend, name)))
              for name in ("describe_db_snapshots", "describe_db_instances", "delete_db_snapshot")),
            *((backend_cls, name, _synced(sim, function)) for name, function in replacements.items()),
        ]


def _snapshot_progress(sim: Simulation, backend) -> None:
    """Snapshots being created move on with the clock; their instance is `backing-up` meanwhile, as in RDS."""
    now = sim.clock.now()
    creating = set()
    for snapshot in backend.database_snapshots.values():
        started = getattr(snapshot, "sim_created", None)
        if started is None or snapshot.status != "creating":
            continue
        seconds = sim.db_snapshot_seconds
        if not seconds or now - started >= seconds:
            snapshot.status, snapshot.percent_progress = "available", 100
        else:
            snapshot.percent_progress = int(100 * (now - started) / seconds)
            creating.add(snapshot.db_instance_identifier)
    for name, database in backend.databases.items():
        if database.status in ("available", "backing-up"):
            database.status = "backing-up" if name in creating else "available"


def simulated_ecs(sim: Simulation) -> MotoPatches:
    """The simulated cluster in moto for as long as a `with simulated_ecs(sim):` block lasts."""
    return MotoPatches(sim)
