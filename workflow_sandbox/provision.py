"""Creates, through the AWS APIs, what Terraform creates for an Airflow cluster: network, cluster and services in
one of two shapes, and for Airflow 3 the api-server's load balancer and the metadata database's RDS instance.

Airflow 2 is the seed's three services, found by their names only; Airflow 3 is the parts Airflow 3 runs,
each tagged `airflow-role` but the triggerer, which only its name says.
"""

from dataclasses import dataclass, field

ROLES = ("scheduler", "worker", "web")  # the Airflow 2 shape's services, <cluster>-<role>
CONTAINERS = {"scheduler": "scheduler", "worker": "celery-worker", "web": "webserver"}
DEFAULT_COUNTS = {"scheduler": 1, "worker": 3, "web": 1}
ROLE_TAG = "airflow-role"
API_PORT = 8080


@dataclass(frozen=True)
class Component:
    """One service: `<cluster>-<name>`, running `command` in its essential container."""

    name: str
    container: str
    command: tuple[str, ...]
    count: int  # tasks when the cluster runs (DEFAULT_COUNTS for the Airflow 2 shape)
    role: str | None = None  # the airflow-role tag; None: found by its name
    port: int | None = None  # served behind the load balancer


SHAPES: dict[int, tuple[Component, ...]] = {
    2: (
        Component("scheduler", "scheduler", ("airflow", "scheduler"), 1),
        Component("worker", "celery-worker", ("airflow", "celery", "worker"), 3),
        Component("web", "webserver", ("airflow", "webserver"), 1),
    ),
    3: (
        Component("scheduler", "scheduler", ("airflow", "scheduler"), 1, "scheduler"),
        Component("dag-processor", "dag-processor", ("airflow", "dag-processor"), 1, "dag-processor"),
        Component("api-server", "api-server", ("airflow", "api-server", "--port", str(API_PORT)), 1, "api-server",
                  API_PORT),
        Component("triggerer", "triggerer", ("airflow", "triggerer"), 1),
        Component("worker", "celery-worker", ("airflow", "celery", "worker", "--queues", "default"), 3, "worker"),
        Component("worker-reports", "celery-worker", ("airflow", "celery", "worker", "--queues", "reports"), 1,
                  "worker"),
    ),
}


def running_counts(airflow: int = 2) -> dict[str, int]:
    """Each service's desired count in a cluster that runs, by the name after `<cluster>-`."""
    return {c.name: c.count for c in SHAPES[airflow]}


@dataclass
class Provisioned:
    cluster: str
    subnets: list[str]
    security_group: str
    log_group: str
    services: dict[str, str] = field(default_factory=dict)  # name after `<cluster>-` -> service ARN
    task_definitions: dict[str, str] = field(default_factory=dict)
    airflow: int = 2
    load_balancer: str | None = None
    target_group: str | None = None
    listener: str | None = None
    db_instance: str | None = None


def provision_cluster(
    clients,
    cluster: str = "airflow-prod",
    counts: dict[str, int] | None = None,
    image: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/airflow-prod:latest",
    deployment_configuration: dict | None = None,
    deployment_controllers: dict[str, str] | None = None,
    airflow: int = 2,
    db_instance: bool | None = None,
) -> Provisioned:
    """`clients(name)` returns a boto3 client; counts default to none running, as after `terraform apply`.

    `deployment_controllers` maps a service's name after `<cluster>-` (scheduler, worker, web...) or its full name
    to ECS, CODE_DEPLOY or EXTERNAL (default ECS). `airflow` picks the shape (2: the seed's three services; 3: see
    SHAPES); `db_instance` creates the RDS instance `<cluster>-db` (default: for Airflow 3).
    """
    if airflow not in SHAPES:
        raise ValueError(f"no Airflow {airflow} shape; expected one of {', '.join(map(str, SHAPES))}")
    components = SHAPES[airflow]
    controllers = deployment_controllers or {}
    counts = counts if counts is not None else {c.name: 0 for c in components}
    ec2, ecs, logs = clients("ec2"), clients("ecs"), clients("logs")

    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto's RunTask with awsvpc networking needs DNS hostnames, as Fargate does.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    # A load balancer needs subnets in two availability zones.
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2] if airflow == 3 else []
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", **({"AvailabilityZone": zones[i - 1]} if zones else {})
                          )["Subnet"]["SubnetId"]
        for i in (1, 2)
    ]
    group = ec2.create_security_group(GroupName=f"{cluster}-tasks", Description="Airflow tasks", VpcId=vpc)
    log_group = f"/ecs/{cluster}"
    logs.create_log_group(logGroupName=log_group)
    ecs.create_cluster(clusterName=cluster)

    result = Provisioned(cluster, subnets, group["GroupId"], log_group, airflow=airflow)
    if any(c.port for c in components):
        _load_balancer(clients("elbv2"), result, vpc)
    network = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [group["GroupId"]], "assignPublicIp": "DISABLED"}}
    for component in components:
        name = f"{cluster}-{component.name}"
        containers = [_container(component, image, log_group)]
        if component.container == "celery-worker":
            containers.append(_sidecar("log-router", "fluent-bit:latest", log_group, component.name))
        definition = ecs.register_task_definition(
            family=name,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="1024",
            memory="2048",
            containerDefinitions=containers,
        )["taskDefinition"]["taskDefinitionArn"]
        extra: dict = {}
        if component.role:
            extra["tags"] = [{"key": ROLE_TAG, "value": component.role}]
        if component.port:
            extra["loadBalancers"] = [{"targetGroupArn": result.target_group, "containerName": component.container,
                                       "containerPort": component.port}]
            extra["healthCheckGracePeriodSeconds"] = 60
        service = ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=definition,
            desiredCount=counts.get(component.name, 0),
            launchType="FARGATE",
            platformVersion="1.4.0",
            networkConfiguration=network,
            deploymentConfiguration=deployment_configuration
            or {"maximumPercent": 200, "minimumHealthyPercent": 100},
            deploymentController={"type": controllers.get(component.name) or controllers.get(name) or "ECS"},
            **extra,
        )["service"]["serviceArn"]
        result.services[component.name], result.task_definitions[component.name] = service, definition
    if db_instance if db_instance is not None else airflow == 3:
        result.db_instance = _database(clients("rds"), cluster, group["GroupId"])
    return result


def _load_balancer(elbv2, result: Provisioned, vpc: str) -> None:
    """An internal application load balancer whose HTTP listener forwards to the api-server's target group."""
    name = result.cluster[:28]
    result.target_group = elbv2.create_target_group(
        Name=f"{name}-api"[:32], Protocol="HTTP", Port=API_PORT, VpcId=vpc, TargetType="ip",
        HealthCheckPath="/api/v2/monitor/health",
    )["TargetGroups"][0]["TargetGroupArn"]
    result.load_balancer = elbv2.create_load_balancer(
        Name=name, Subnets=result.subnets, SecurityGroups=[result.security_group], Scheme="internal",
        Type="application",
    )["LoadBalancers"][0]["LoadBalancerArn"]
    result.listener = elbv2.create_listener(
        LoadBalancerArn=result.load_balancer, Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": result.target_group}],
    )["Listeners"][0]["ListenerArn"]


def _database(rds, cluster: str, security_group: str) -> str:
    """The metadata database: a Postgres RDS instance `<cluster>-db`."""
    identifier = f"{cluster}-db"
    rds.create_db_instance(
        DBInstanceIdentifier=identifier, Engine="postgres", EngineVersion="16.4", DBInstanceClass="db.t4g.medium",
        AllocatedStorage=20, DBName="airflow", MasterUsername="airflow", MasterUserPassword="airflow-sandbox",
        VpcSecurityGroupIds=[security_group],
    )
    return identifier


def _logging(log_group: str, prefix: str) -> dict:
    return {
        "logDriver": "awslogs",
        "options": {"awslogs-group": log_group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": prefix},
    }


def _container(component: Component, image: str, log_group: str) -> dict:
    spec = {
        "name": component.container,
        "image": image,
        "essential": True,
        # moto sums container-level cpu and memory when it places a task.
        "cpu": 512,
        "memory": 1024,
        "command": list(component.command),
        "logConfiguration": _logging(log_group, component.name),
    }
    if component.port:
        spec["portMappings"] = [{"containerPort": component.port, "protocol": "tcp"}]
    return spec


def _sidecar(name: str, image: str, log_group: str, prefix: str) -> dict:
    return {"name": name, "image": image, "essential": False, "cpu": 64, "memory": 128,
            "logConfiguration": _logging(log_group, prefix)}
