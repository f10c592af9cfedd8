"""workflow: operate an Apache Airflow cluster on AWS ECS Fargate."""

__version__ = "0.1.0"
