"""The tag keys this tool reads and writes on AWS resources, named once (iam-policy grants exactly these)."""

ROLE_TAG = "airflow-role"  # on a service: its Airflow role, when its name does not say it
LEASE_PREFIX = "workflow-lease-"  # on the cluster and the production repository: one per command holding it
SCHEMA_TAG = "workflow-airflow-schema"  # on the cluster: the Airflow version the database was last migrated to
ROLLBACK_TAG = "workflow-rollback"  # on the cluster: <repository>@<digest> of the rollback under way
STOPPED_COUNT_TAG = "workflow-stopped-count"  # on a service this tool stopped: its desired count, when not 1
