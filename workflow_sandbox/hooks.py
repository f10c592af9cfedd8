"""Installs a Simulation into moto (ECS, CloudWatch Logs, and the request path for API faults) for as
long as a `with simulated_ecs(sim)` block lasts."""

from contextlib import ExitStack, contextmanager
from functools import wraps
from unittest import mock

from moto.core.responses import BaseResponse
from moto.ecs import models, responses
from moto.ecs.exceptions import ServiceNotFoundException
from moto.logs.models import LogsBackend

from .simulator import SimTask, Simulation
from .speedups import faster_moto


def _synced(sim: Simulation, original):
    """Bring the model up to the clock before moto answers, so every answer shows the present."""

    @wraps(original)
    def call(backend, *args, **kwargs):
        with sim.lock:
            sim.advance()
            return original(backend, *args, **kwargs)

    return call


@contextmanager
def simulated_ecs(sim: Simulation):
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
        tasks = original["list_tasks"](backend, cluster_str, container_instance, family, started_by)
        return sim.list_filter(tasks, service_name, desiredStatus)

    def describe_tasks(backend, cluster_str, tasks):
        return [t for t in original["describe_tasks"](backend, cluster_str, tasks) if sim.visible(t)]

    def run_task(backend, *args, **kwargs):
        tasks = original["run_task"](backend, *args, **kwargs)
        sim.tasks_run(tasks)
        return tasks

    def stop_task(backend, cluster_str, task_str, reason):
        task = next(
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

    def describe_tasks_response(response):
        """ECS names each task it does not know (yet) in `failures` as MISSING; moto leaves them out."""
        result = original_describe_tasks_response(response)
        found = {task.short_id for task in result.result["tasks"]}
        for wanted in response._get_param("tasks", []):
            if wanted.rsplit("/", 1)[-1] not in found:
                result.result["failures"].append({"arn": wanted, "reason": "MISSING"})
        return result

    def get_log_events(backend, *args, **kwargs):
        events, backward, forward = original_get_log_events(backend, *args, **kwargs)
        return sim.log_page(events, backward, forward, kwargs.get("next_token"))

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
    original_get_log_events = LogsBackend.get_log_events
    original_call_action = BaseResponse.call_action
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
    with ExitStack() as stack:
        stack.enter_context(faster_moto())
        stack.enter_context(mock.patch.object(models, "Task", SimTask))
        stack.enter_context(mock.patch.object(response_cls, "create_service", create_service_response))
        stack.enter_context(mock.patch.object(response_cls, "describe_tasks", describe_tasks_response))
        stack.enter_context(mock.patch.object(LogsBackend, "get_log_events", _synced(sim, get_log_events)))
        stack.enter_context(mock.patch.object(BaseResponse, "call_action", call_action))
        for name, function in replacements.items():
            stack.enter_context(mock.patch.object(backend_cls, name, _synced(sim, function)))
        yield sim
