"""Installs a Simulation into moto's ECS backend for as long as a `with simulated_ecs(sim)` block lasts."""

from contextlib import ExitStack, contextmanager
from functools import wraps
from unittest import mock

from moto.ecs import models, responses

from .simulator import SimTask, Simulation


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
        "run_task", "stop_task",
    )}

    def create_service(backend, *args, **kwargs):
        service = original["create_service"](backend, *args, **kwargs)
        sim.service_created(service)
        return service

    def update_service(backend, properties):
        force = bool(properties.get("force_new_deployment"))
        service = original["update_service"](backend, properties)
        sim.service_updated(service, force=force)
        return service

    def list_tasks(backend, cluster_str=None, container_instance=None, family=None, started_by=None,
                   service_name=None, desiredStatus=None):
        tasks = original["list_tasks"](backend, cluster_str, container_instance, family, started_by)
        return sim.list_filter(tasks, service_name, desiredStatus)

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

    def create_service_response(response):
        """moto drops deploymentConfiguration on CreateService; the simulated scheduler needs it."""
        result = original_create_response(response)
        config = response._get_param("deploymentConfiguration")
        if config:
            service = result.result["service"]
            service.deployment_configuration = config
        return result

    original_create_response = response_cls.create_service
    replacements = {
        "create_service": create_service,
        "update_service": update_service,
        "describe_services": original["describe_services"],
        "list_tasks": list_tasks,
        "describe_tasks": original["describe_tasks"],
        "run_task": run_task,
        "stop_task": stop_task,
    }
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(models, "Task", SimTask))
        stack.enter_context(mock.patch.object(response_cls, "create_service", create_service_response))
        for name, function in replacements.items():
            stack.enter_context(mock.patch.object(backend_cls, name, _synced(sim, function)))
        yield sim
