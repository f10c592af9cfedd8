from setuptools import find_packages, setup

MOTO = "moto[server]==5.2.5"  # workflow_sandbox patches moto's internals: exactly the version it was checked against

setup(
    name="airflow-ecs-workflow",
    version="0.1.0",
    description="Operate an Apache Airflow cluster on AWS ECS Fargate",
    packages=find_packages(include=["workflow", "workflow.*", "workflow_sandbox", "workflow_sandbox.*"]),
    python_requires=">=3.11",
    install_requires=["click>=8.1", "boto3>=1.34", "botocore>=1.34", "tabulate>=0.9"],
    extras_require={"sandbox": [MOTO]},
    entry_points={
        "console_scripts": ["workflow=workflow.cli:main"],
        # `workflow sandbox`: registered from outside the product, which imports nothing of the simulator.
        "workflow.commands": ["sandbox=workflow_sandbox.command:sandbox"],
    },
)
