from setuptools import find_packages, setup

setup(
    name="airflow-ecs-workflow",
    version="0.1.0",
    description="Operate an Apache Airflow cluster on AWS ECS Fargate",
    packages=find_packages(include=["workflow", "workflow.*"]),
    python_requires=">=3.11",
    install_requires=["click>=8.1", "boto3>=1.34", "botocore>=1.34", "tabulate>=0.9"],
    extras_require={"sandbox": ["moto[server]~=5.2.0"]},
    entry_points={"console_scripts": ["workflow=workflow.cli:main"]},
)
