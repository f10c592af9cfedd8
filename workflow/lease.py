"""Who is changing the cluster now: a lease every operator can see, kept as tags on the ECS cluster (and, for the
commands that move or deploy `latest`, on the ECR repository it names, so a promote never moves it under a redeploy).

Each holder writes its own tag, `workflow-lease-<id>` = `owner=… command=… since=… expires=…`, once it has
read that no other live lease exists, then reads all lease tags again, and again before each change it makes:
whenever another live lease is there beside its own, it withdraws (removes its tag and stops), whoever came
first. Two operators who write at once may therefore both withdraw, and both say so; neither ever changes the
cluster beside the other. A lease broken by `--break-lease` stops the old holder at its next change. A crashed
holder's lease expires on its own; `--break-lease` removes it sooner.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from .errors import BUSY, WorkflowError
from .tag_keys import LEASE_PREFIX as TAG_PREFIX

STAMP = "%Y-%m-%dT%H:%M:%SZ"


# What a holder's command does next, for the operator it refuses: never a success for a state about to be undone.
NEXT = {
    "redeploy": "it starts the scheduler again once the new workers are stable",
    "rollback": "it redeploys onto the earlier release (a re-run of rollback finishes the rollback it began)",
    "start-scheduler": "it starts the scheduler",
    "stop-scheduler": "it stops the scheduler",
    "promote": "it moves latest and writes a release stamp",
    "initialize": "its one-off task moves the database's schema",
    "run": "its one-off task runs",
}


class LeaseHeld(WorkflowError):
    """Another operator's command holds the cluster: nothing was changed by this one."""

    exit_code = BUSY
    refusal = True


class Place(Protocol):
    """Where leases live: the tags of one resource."""

    name: str  # in the operator's words: "cluster airflow-prod", "repository airflow-prod"

    def tags(self) -> dict[str, str]: ...

    def tag(self, tags: list[dict]) -> None: ...  # [{"key": ..., "value": ...}]

    def untag(self, keys: list[str]) -> None: ...


class ClusterPlace:
    """The ECS cluster's tags."""

    def __init__(self, ecs):
        self.ecs, self.name = ecs, f"cluster {ecs.cluster}"

    def tags(self) -> dict[str, str]:
        return self.ecs.cluster_tags()

    def tag(self, tags: list[dict]) -> None:
        self.ecs.tag_cluster(tags)

    def untag(self, keys: list[str]) -> None:
        self.ecs.untag_cluster(keys)


@dataclass(frozen=True)
class Holder:
    id: str
    owner: str
    command: str
    since: datetime
    expires: datetime

    @property
    def tag(self) -> dict:
        # ECS tag values allow only letters, digits, spaces and _ . : / = + - @
        owner = re.sub(r"[^\w.:/=+@-]", "-", self.owner)
        value = f"owner={owner} command={self.command} since={self.since:{STAMP}} expires={self.expires:{STAMP}}"
        return {"key": TAG_PREFIX + self.id, "value": value[:256]}

    @classmethod
    def parse(cls, key: str, value: str) -> "Holder | None":
        fields = dict(part.partition("=")[::2] for part in value.split())
        try:
            since, expires = (datetime.strptime(fields[name], STAMP).replace(tzinfo=UTC) for name in ("since", "expires"))
            return cls(key[len(TAG_PREFIX):], fields["owner"], fields["command"], since, expires)
        except (KeyError, ValueError):
            return None  # not ours to understand: never block on it

    def describe(self) -> str:
        return f"{self.owner} ({self.command}) since {self.since:%Y-%m-%d %H:%M:%SZ}, until {self.expires:%H:%M:%SZ}"


def holders(tags: dict) -> list[Holder]:
    """The leases among a cluster's tags; a tag that only looks like one is ignored."""
    found = (Holder.parse(k, v) for k, v in tags.items() if k.startswith(TAG_PREFIX))
    return [h for h in found if h is not None]


def live_holders(place, now: datetime) -> list[Holder]:
    """The leases on the cluster (an Ecs, or any Place) that have not expired, oldest first."""
    tags = place.cluster_tags() if hasattr(place, "cluster_tags") else place.tags()
    return sorted((h for h in holders(tags) if h.expires > now), key=lambda h: h.since)


class Lease:
    def __init__(self, place, owner: str, command: str, ttl: float, now: Callable[[], datetime], report,
                 break_others: bool = False):
        """`place` is where the lease lives: a Place, or an Ecs (its cluster)."""
        self.place: Place = ClusterPlace(place) if hasattr(place, "cluster_tags") else place
        self.now, self.report = now, report
        self.break_others = break_others
        self.ttl = timedelta(seconds=ttl)
        started = now().replace(microsecond=0)
        self.me = Holder(uuid.uuid4().hex[:12], owner, command, started, started + self.ttl)
        self.held = False
        self.changed = False

    def before_change(self) -> None:
        """Taken at the first change (reads need no lease), re-checked before every later one."""
        if self.held:
            self.check()
        else:
            self.acquire()
        self.changed = True  # from here on, a refusal comes after this command changed something

    def refuse_if_held(self) -> None:
        """Another operator's live lease refuses this command now, before it waits on that operator's work (a
        redeploy resuming what it finds under way) only to be refused at its first change. Takes nothing."""
        if self.held or self.break_others or not getattr(self.place, "exists", lambda: True)():
            return
        live = [h for h in self._others() if h.expires > self.now()]
        if live:
            raise self._held(live[0])

    def acquire(self) -> None:
        if not getattr(self.place, "exists", lambda: True)():  # a repository that is not there guards nothing
            return
        others = self._others()
        if self.break_others and others:
            self.place.untag([TAG_PREFIX + h.id for h in others])
            for holder in others:
                self.report.line(f"broke the lease of {holder.describe()}")
            others = []
        live = [h for h in others if h.expires > self.now()]
        if live:
            raise self._held(live[0])
        self.held = True  # before the call: if its answer is lost, the tag may exist, and release must remove it
        self.place.tag([self.me.tag])
        self.check(just_taken=True)  # two operators who wrote at once both see both: both withdraw

    def check(self, just_taken: bool = False) -> None:
        """Before each change: still ours, and no other live lease beside it.

        Any other live lease makes this one withdraw, whoever came first: a holder that already passed its
        check is never pushed out by one that read the tags before it wrote them (if both write at once,
        both withdraw, and both say so).
        """
        tags = self.place.tags()
        if TAG_PREFIX + self.me.id not in tags:
            self.held = False
            raise LeaseHeld(f"this command's lease on {self.place.name} was broken by another operator; "
                            + ("it stopped before its next change" if self.changed else "nothing was changed"))
        other = next((h for h in self._live(tags) if h.id != self.me.id), None)
        if other is not None:
            self.release()
            if just_taken:  # it wrote between this one's read and write: it may have withdrawn as well
                raise LeaseHeld(f"{self.place.name} was taken at the same moment by {other.describe()}: this "
                                "command withdrew, and nothing was changed. Two commands that take it at once both "
                                "withdraw, and both say so: if that one did too, run this command again")
            raise self._held(other)
        if self.me.expires - self.now() < self.ttl / 2:
            renewed = self.now().replace(microsecond=0) + self.ttl
            self.me = Holder(self.me.id, self.me.owner, self.me.command, self.me.since, renewed)
            self.place.tag([self.me.tag])

    def release(self) -> None:
        if self.held:
            self.held = False
            self.place.untag([TAG_PREFIX + self.me.id])

    def _others(self) -> list[Holder]:
        return [h for h in holders(self.place.tags()) if h.id != self.me.id]

    def _live(self, tags: dict) -> list[Holder]:
        return [h for h in holders(tags) if h.expires > self.now() or h.id == self.me.id]

    def _held(self, holder: Holder) -> LeaseHeld:
        done = "this command stopped before its next change" if self.changed else "nothing was changed"
        then = f" ({NEXT[holder.command]})" if holder.command in NEXT else ""
        return LeaseHeld(
            f"{self.place.name} is held by {holder.describe()}{then}; {done}. "
            "Wait for it, or, if that command is no longer running, pass --break-lease"
        )


class Leases:
    """The leases one command holds (its cluster's, then its repository's), taken and released together."""

    def __init__(self, leases: list[Lease]):
        self.leases = leases

    def before_change(self) -> None:
        for lease in self.leases:
            lease.before_change()

    def refuse_if_held(self) -> None:
        for lease in self.leases:
            lease.refuse_if_held()

    def release(self) -> None:
        for lease in reversed(self.leases):
            lease.release()
