"""The fake Airflow API's answers follow the simulated cluster: a component heartbeats while one of its tasks runs
(the first beat a moment after RUNNING), and while a scheduler runs it keeps task instances running on the workers,
a new one every so often, each for a set time; once the schedulers stop, the running ones only finish.

Synced as each request arrives, so what Airflow answers is never older than the question.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from .airflow_api import AirflowModel
from .simulator import Simulation

COMPONENTS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
FIRST_BEAT_SECONDS = 2.0  # from RUNNING to the job's first heartbeat in the database
WORK = (("etl", "load"), ("reports", "build"), ("ml", "train"))  # what the scheduler keeps queueing


@dataclass
class Work:
    """While a scheduler runs, a task instance starts every `every` seconds (at most `most` at once) and runs for
    `seconds`; a long `seconds` rehearses task instances that outlast the drain."""

    seconds: float = 20.0
    every: float = 15.0
    most: int = 3


class SimulatedAirflow(AirflowModel):
    def __init__(self, sim: Simulation, services: dict[str, Iterable[str]], workers: Iterable[str], work: Work,
                 **model):
        """`services`: component (scheduler, dag-processor, triggerer) -> its service names."""
        super().__init__(now=lambda: sim.clock.wall(sim.clock.now()), **model)
        self.sim, self.services, self.workers, self.work = sim, services, list(workers), work
        self._running: dict[str, float] = {}  # task instance id -> when it finishes (simulated seconds)
        self._next_start: float | None = None
        self._count = 0

    def health_document(self) -> dict:
        self.sync()
        return super().health_document()

    def task_instances_document(self, *args, **kwargs):
        self.sync()
        return super().task_instances_document(*args, **kwargs)

    def sync(self) -> None:
        sim = self.sim
        with sim.lock:
            sim.advance()
            now = sim.clock.now()
            for role, component in COMPONENTS.items():
                running = [t for name in self.services.get(role, ()) for t in sim.service(name).tasks
                           if t.sim_status == "RUNNING" and t.started_at is not None]
                if not running:
                    if self.components[component].running:
                        self.stop(component)
                    continue
                first = min(t.started_at for t in running) + timedelta(seconds=FIRST_BEAT_SECONDS)
                if sim.clock.wall(now) >= first:
                    self.heartbeat(component)
            self._schedule(now, scheduling=any(
                t.sim_status == "RUNNING" for name in self.services.get("scheduler", ()) for t in sim.service(name).tasks))

    def _schedule(self, now: float, scheduling: bool) -> None:
        for ti, ends in list(self._running.items()):
            if ends <= now:
                self.finish_task(ti)
                del self._running[ti]
        if not scheduling:  # nothing new is queued: the running ones only finish
            self._next_start = None
            return
        if self._next_start is None:
            self._next_start = now
        while self._next_start <= now and len(self._running) < self.work.most:
            dag, task = WORK[self._count % len(WORK)]
            self._count += 1
            hosts = self._hosts()
            ti = self.start_task(dag, task, run_id=f"scheduled__{self._count}",
                                 hostname=hosts[self._count % len(hosts)] if hosts else None)
            self._running[ti] = self._next_start + self.work.seconds
            self._next_start += self.work.every

    def _hosts(self) -> list[str]:
        return [f"ip-10-0-1-{n}.ec2.internal" for n, name in enumerate(self.workers, 10)
                for t in self.sim.service(name).tasks if t.sim_status == "RUNNING"] or ["ip-10-0-1-9.ec2.internal"]
