"""moto's models, imported under one boto3 session for all of them.

moto lists the Regions through a new boto3 session each time (three as its EC2 models are imported, one for its
backends), each parsing botocore's endpoint data again: a third of a second apiece, at every sandbox start.
Whatever imports moto's models imports this module first: the sandbox's server, and the tests.
"""

from unittest import mock

import boto3
import moto.core.models  # noqa: F401  (adds moto's interceptor to botocore's handlers, which new sessions copy)

SESSION = boto3.session.Session()


def _session(*args, **kwargs):
    """What moto gets for boto3.Session: the shared session when it asks for a default one. Modules that import
    the name while moto's models load keep this function."""
    return boto3.session.Session(*args, **kwargs) if args or kwargs else SESSION


with mock.patch.object(boto3, "Session", _session):
    from moto.core import base_backend
    from moto.ec2.models import ec2_backends
    from moto.ecr.models import ecr_backends
    from moto.ecs.models import ecs_backends
    from moto.elbv2.models import elbv2_backends
    from moto.logs.models import logs_backends
    from moto.rds.models import rds_backends

    with mock.patch.object(base_backend, "Session", _session):  # bound by name there, before this module ran
        base_backend.AccountSpecificBackend.get_session()  # remembered (lru_cache) from now on

__all__ = ["SESSION", "ec2_backends", "ecr_backends", "ecs_backends", "elbv2_backends", "logs_backends", "rds_backends"]
