"""The cluster's services by role: which service runs the scheduler, the workers and the web server."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    cluster: str
    scheduler: str
    worker: str
    web: str

    @property
    def services(self) -> dict[str, str]:
        """Each role's service name."""
        return {"scheduler": self.scheduler, "worker": self.worker, "web": self.web}


def default_services(cluster: str) -> tuple[str, str, str]:
    """<cluster>-scheduler, -worker and -web, from the cluster's name even when it is given as an ARN."""
    name = cluster.rsplit("/", 1)[-1]
    return f"{name}-scheduler", f"{name}-worker", f"{name}-web"
