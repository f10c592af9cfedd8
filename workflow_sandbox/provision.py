"""Creates, through the AWS APIs, what Terraform creates for an Airflow cluster: network, cluster, services."""

from dataclasses import dataclass, field

ROLES = ("scheduler", "worker", "web")
CONTAINERS = {"scheduler": "scheduler", "worker": "celery-worker", "web": "webserver"}
DEFAULT_COUNTS = {"scheduler": 1, "worker": 3, "web": 1}


@dataclass
class Provisioned:
    cluster: str
    subnets: list[str]
    security_group: str
    log_group: str
    services: dict[str, str] = field(default_factory=dict)
    task_definitions: dict[str, str] = field(default_factory=dict)


def provision_cluster(
    clients,
    cluster: str = "airflow-prod",
    counts: dict[str, int] | None = None,
    image: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/airflow-prod:latest",
    deployment_configuration: dict | None = None,
    deployment_controllers: dict[str, str] | None = None,
) -> Provisioned:
    """`clients(name)` returns a boto3 client; counts default to none running, as after `terraform apply`.

    `deployment_controllers` maps a role (scheduler, worker, web) or a service name to ECS, CODE_DEPLOY or EXTERNAL (default ECS).
    """
    controllers = deployment_controllers or {}
    counts = counts if counts is not None else dict.fromkeys(ROLES, 0)
    ec2, ecs, logs = clients("ec2"), clients("ecs"), clients("logs")

    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto's RunTask with awsvpc networking needs DNS hostnames, as Fargate does.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)
    ]
    group = ec2.create_security_group(GroupName=f"{cluster}-tasks", Description="Airflow tasks", VpcId=vpc)
    log_group = f"/ecs/{cluster}"
    logs.create_log_group(logGroupName=log_group)
    ecs.create_cluster(clusterName=cluster)

    result = Provisioned(cluster, subnets, group["GroupId"], log_group)
    network = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [group["GroupId"]], "assignPublicIp": "DISABLED"}}
    for role in ROLES:
        name = f"{cluster}-{role}"
        containers = [_container(CONTAINERS[role], image, log_group, role, essential=True)]
        if role == "worker":
            containers.append(_container("log-router", "fluent-bit:latest", log_group, role, essential=False))
        definition = ecs.register_task_definition(
            family=name,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="1024",
            memory="2048",
            containerDefinitions=containers,
        )["taskDefinition"]["taskDefinitionArn"]
        service = ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=definition,
            desiredCount=counts.get(role, 0),
            launchType="FARGATE",
            platformVersion="1.4.0",
            networkConfiguration=network,
            deploymentConfiguration=deployment_configuration
            or {"maximumPercent": 200, "minimumHealthyPercent": 100},
            deploymentController={"type": controllers.get(role) or controllers.get(name) or "ECS"},
        )["service"]["serviceArn"]
        result.services[role], result.task_definitions[role] = service, definition
    return result


def _container(name: str, image: str, log_group: str, prefix: str, essential: bool) -> dict:
    return {
        "name": name,
        "image": image,
        "essential": essential,
        # moto sums container-level cpu and memory when it places a task.
        "cpu": 512 if essential else 64,
        "memory": 1024 if essential else 128,
        "command": ["airflow", prefix],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": prefix},
        },
    }
