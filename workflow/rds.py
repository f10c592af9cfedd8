"""The RDS calls a migration needs: a snapshot of the Airflow database before its schema moves."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import NotFound, WorkflowError, translated


@dataclass(frozen=True)
class Snapshot:
    name: str
    instance: str
    status: str
    arn: str = ""


def snapshot_name(cluster: str, now: datetime) -> str:
    """`<cluster>-YYYYMMDD-HHMMSS` (UTC) as RDS allows it: letters, digits and single hyphens, a letter first."""
    base = re.sub(r"[^a-z0-9]+", "-", cluster.rsplit("/", 1)[-1].lower()).strip("-") or "airflow"
    if not base[0].isalpha():
        base = "airflow-" + base
    return f"{base[:230]}-{now:%Y%m%d-%H%M%S}"


class Rds:
    """The only code here that calls boto3's RDS client."""

    def __init__(self, client: Any):
        self.client = client

    def require_instance(self, instance: str) -> None:
        """NotFound unless the instance exists: asked before anything changes."""
        missing = NotFound(f"RDS instance {instance} not found in region {self.client.meta.region_name} (--snapshot); "
                           "nothing was changed")
        with translated({"DBInstanceNotFound": missing, "DBInstanceNotFoundFault": missing}):
            self.client.describe_db_instances(DBInstanceIdentifier=instance)

    def create_snapshot(self, instance: str, name: str) -> Snapshot:
        missing = NotFound(f"RDS instance {instance} not found in region {self.client.meta.region_name}")
        with translated({"DBInstanceNotFound": missing, "DBInstanceNotFoundFault": missing}):
            raw = self.client.create_db_snapshot(DBSnapshotIdentifier=name, DBInstanceIdentifier=instance)
        return _snapshot(raw.get("DBSnapshot") or {}, name, instance)

    def snapshot(self, name: str, instance: str) -> Snapshot | None:
        """The snapshot, or None while RDS does not show it yet (right after CreateDBSnapshot)."""
        try:
            with translated():
                found = self.client.describe_db_snapshots(DBSnapshotIdentifier=name).get("DBSnapshots") or []
        except WorkflowError as error:
            if getattr(error, "code", "") in ("DBSnapshotNotFound", "DBSnapshotNotFoundFault"):
                return None
            raise
        return _snapshot(found[0], name, instance) if found else None


def _snapshot(raw: dict, name: str, instance: str) -> Snapshot:
    return Snapshot(str(raw.get("DBSnapshotIdentifier") or name), str(raw.get("DBInstanceIdentifier") or instance),
                    str(raw.get("Status") or "creating"), str(raw.get("DBSnapshotArn") or ""))
