"""What an operation on a cluster works with: its ECS API, the poller, progress, recovery state and the lease."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .deployments import WatchPolicy
from .ecs import Ecs
from .poller import Poller
from .progress import Reporter
from .recovery import Recovery

if TYPE_CHECKING:  # Airflow's API client brings urllib3, which a command's --help need not load
    from .airflow_view import AirflowView


class Lease(Protocol):
    def before_change(self) -> None: ...

    def refuse_if_held(self) -> None: ...


@dataclass
class Env:
    ecs: Ecs
    poller: Poller
    report: Reporter
    logs: Callable[[str | None], Any] | None = None  # builds a Logs client for a Region, only when one is read
    policy: WatchPolicy = field(default_factory=WatchPolicy)
    lease: Lease | None = None  # the operator lease this command holds, re-checked before each change
    ecr: Callable[[str | None], Any] | None = None  # builds an ECR client for a Region, only when images are looked up
    recovery: Recovery = field(default_factory=Recovery)
    rds: Callable[[], Any] | None = None  # builds the RDS client, only when a snapshot is taken
    airflow: "AirflowView | None" = None  # Airflow's own view, when it can be had
    # An AWS CLI command as words, with the Region (this one's, or the one given), endpoint and profile in effect:
    # printed for the operator to paste, it acts where this command did (App.aws_words).
    aws_words: Callable[..., list[str]] = field(default=lambda words, region=None: ["aws", *words, *(
        ["--region", region] if region else [])])

    def before_change(self) -> None:
        if self.lease is not None:
            self.lease.before_change()

    def refuse_if_held(self) -> None:
        if self.lease is not None:
            self.lease.refuse_if_held()
