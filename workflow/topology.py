"""The cluster's Airflow components: which service plays which role, and the order an upgrade moves them in.

A service's role comes from, in this order: the command line (`--scheduler`, `--worker`, `--web`,
`--service ROLE=NAME`), its ECS tag `airflow-role`, then its name (`<cluster>-scheduler`, `<cluster>-worker-<queue>`,
...). A service with none of them is not managed: it is listed by `status` and otherwise left alone.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import Refused
from .tag_keys import ROLE_TAG

SCHEDULER, DAG_PROCESSOR, TRIGGERER, API_SERVER, WEBSERVER, WORKER = (
    "scheduler", "dag-processor", "triggerer", "api-server", "webserver", "worker")
ROLES = (SCHEDULER, DAG_PROCESSOR, TRIGGERER, API_SERVER, WEBSERVER, WORKER)
# `--web` and the seed's `<cluster>-web` name the web server of either major version.
WEB = "web"
ROLE_ALIASES = {WEB: WEBSERVER}
# Components that exit with "Database migration required" when their image and the schema disagree
# (Airflow's `[database] check_migrations`, on by default); Celery workers do not check.
CHECKS_MIGRATIONS = frozenset({SCHEDULER, DAG_PROCESSOR, TRIGGERER, API_SERVER, WEBSERVER})


@dataclass(frozen=True)
class Step:
    action: str  # stop, drain, migrate, roll, start
    roles: tuple[str, ...]
    why: str
    after: tuple[str, ...] = ()  # roles whose new deployments must have succeeded before this step begins


# The order redeploy, redeploy --migrate and rollback move the components in: `operations.redeploy` carries out this
# table step by step, so the order lives here and only here. docs/airflow.md ("The upgrade order") is generated from it.
UPGRADE_ORDER = (
    Step("stop", (SCHEDULER, DAG_PROCESSOR),
         "nothing new is queued or parsed from here on, and no process that checks the schema runs while it moves; "
         "the old scheduler never meets a new schema, and never runs beside a new scheduler"),
    Step("drain", (WORKER,),
         "with the scheduler stopped no new task instance is queued: the running ones finish before anything that "
         "runs them rolls (ECS stops a worker with SIGTERM, then SIGKILL after its stopTimeout, at most 120 s on "
         "Fargate) and before the schema moves under them"),
    Step("migrate", (),
         "the schema moves while nothing that checks it starts: a component started on the new image before the "
         "migration, or on the old one after it, exits with 'Database migration required'"),
    Step("roll", (API_SERVER,),
         "Airflow 3 workers reach the database only through the api-server's Execution API, which serves older "
         "workers but not newer ones: the new api-server serves before the first new worker starts"),
    Step("roll", (WEBSERVER, WORKER, TRIGGERER),
         "together, once the new api-server is stable: an Airflow 2 webserver serves only people; the triggerer "
         "checks the schema, so it comes after the migration, and it queues nothing (a fired trigger waits for the "
         "scheduler)", after=(API_SERVER,)),
    Step("start", (DAG_PROCESSOR,),
         "on the new image, with the count it had, before the scheduler needs freshly parsed DAGs"),
    Step("start", (SCHEDULER,),
         "once the new workers are stable and no old worker runs: nothing it queues lands on an old image",
         after=(WORKER,)),
)


@dataclass(frozen=True)
class Component:
    role: str
    service: str
    how: str  # how its role was found: flag, tag or name


@dataclass(frozen=True)
class Topology:
    cluster: str
    components: tuple[Component, ...]
    unmanaged: tuple[str, ...] = ()  # services with no role, left alone

    def services(self, *roles: str) -> list[str]:
        """The services of the given roles (every managed one when none), in the order of the roles given."""
        wanted = roles or ROLES
        return [c.service for role in wanted for c in self.components if c.role == role]

    def role(self, service: str) -> str | None:
        return next((c.role for c in self.components if c.service == service), None)

    @property
    def name(self) -> str:
        return cluster_name(self.cluster)

    @property
    def is_airflow3(self) -> bool:
        """Airflow 3's parts are there: an api-server or a standalone dag-processor with no webserver."""
        roles = {c.role for c in self.components}
        return API_SERVER in roles or (DAG_PROCESSOR in roles and WEBSERVER not in roles)

    @property
    def by_role(self) -> dict[str, list[str]]:
        return {role: self.services(role) for role in ROLES if self.services(role)}


def cluster_name(cluster: str) -> str:
    """The cluster's name, also when it is given as an ARN."""
    return cluster.rsplit("/", 1)[-1]


def role_by_name(cluster: str, service: str) -> str | None:
    """The role the naming convention gives a service: <cluster>-scheduler, -dag-processor, -triggerer,
    -api-server, -web or -webserver, -worker and -worker-<queue>."""
    prefix = cluster_name(cluster) + "-"
    name = service.rsplit("/", 1)[-1]
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    if rest in (SCHEDULER, DAG_PROCESSOR, TRIGGERER, API_SERVER, WEBSERVER):
        return rest
    if rest == WEB:
        return WEBSERVER
    if rest == WORKER or re.fullmatch(r"worker-[a-z0-9][a-z0-9_-]*", rest):
        return WORKER
    return None


def _found(cluster: str, name: str, tags: Mapping[str, str]) -> "Component | None":
    """The role a service's own tag, else its name, gives it."""
    tagged = tags.get(ROLE_TAG)
    if tagged is not None and ROLE_ALIASES.get(tagged, tagged) in ROLES:
        return Component(ROLE_ALIASES.get(tagged, tagged), name, "tag")
    by_name = role_by_name(cluster, name)
    return Component(by_name, name, "name") if by_name is not None else None


def _web(role: str) -> str:
    """`--web` names the api-server or the webserver, whichever the cluster runs: for a flag they are one."""
    return WEBSERVER if role == API_SERVER else role


def _and_or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def role_of(text: str) -> str:
    """A role as the operator types it (`web` is the web server); ValueError names the roles for anything else."""
    role = ROLE_ALIASES.get(text, text)
    if role not in ROLES:
        raise ValueError(f"{text!r} is not a role; roles are {', '.join(ROLES)} (and web)")
    return role


def assign(cluster: str, listed: Mapping[str, Mapping[str, str]], explicit: Iterable[tuple[str, str]] = ()) -> Topology:
    """Each service's role: `explicit` (role, service) pairs first, then the `airflow-role` tag, then the name.

    `listed` maps every service name in the cluster to its tags. A name given explicitly that the cluster does not
    list is still given its role: describing it will say it is missing.
    """
    found = {name: _found(cluster, name, tags) for name, tags in listed.items()}
    chosen: dict[str, Component] = {}
    for role, service in explicit:
        name = service.rsplit("/", 1)[-1]
        if name in chosen and chosen[name].role != role:
            raise Refused(f"{name} is named as both the {chosen[name].role} and the {role}; nothing was changed")
        chosen[name] = Component(role, name, "flag")
        # A flag is trusted over the cluster's own word only where that word is silent: `--scheduler <the worker>`
        # would have stop-scheduler scale the worker fleet to zero.
        said = found.get(name)
        if said is not None and _web(said.role) != _web(role):
            others = [c.service for c in found.values() if c is not None and _web(c.role) == _web(role)]
            hint = f"the {role} service is {_and_or(others)}" if others else f"name the {role} service"
            if said.how == "tag":
                how, fix = f"its tag {ROLE_TAG}={listed[name][ROLE_TAG]}", "if the tag is wrong, correct it first"
            else:
                how, fix = "its name", f"if it really is the {role}, tag it {ROLE_TAG}={role}"
            raise Refused(f"{name} was named as the {role}, but {how} makes it the {said.role}; nothing was "
                          f"changed: {hint} ({fix})")
    unmanaged = []
    for name in listed:
        if name in chosen:
            continue
        own = found[name]
        if own is not None:
            chosen[name] = own
        else:
            unmanaged.append(name)
    ordered = sorted(chosen.values(), key=lambda c: (ROLES.index(c.role), c.service))
    return Topology(cluster, tuple(ordered), tuple(sorted(unmanaged)))
