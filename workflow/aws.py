"""The only place that builds AWS sessions and clients: profile, region, endpoint and retry mode."""

import os
from dataclasses import dataclass

from . import __version__
from .errors import translated


@dataclass(frozen=True)
class AwsConfig:
    """Unset values fall through to botocore's own chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...)."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None


class Clients:
    """Builds each client once, on first use, so `--help` never pays for importing boto3."""

    def __init__(self, config: AwsConfig):
        self._config = config
        self._session = None
        self._clients: dict = {}

    def __call__(self, service: str):
        if service not in self._clients:
            self._clients[service] = self._build(service)
        return self._clients[service]

    def _build(self, service: str):
        import boto3
        from botocore.config import Config

        with translated():
            if self._session is None:
                # botocore itself reads only AWS_DEFAULT_REGION; other SDKs and the AWS CLI read AWS_REGION first.
                region = self._config.region or os.environ.get("AWS_REGION") or None
                self._session = boto3.session.Session(profile_name=self._config.profile, region_name=region)
            return self._session.client(
                service,
                endpoint_url=self._config.endpoint_url,
                config=Config(retries={"mode": "standard"}, user_agent_extra=f"workflow/{__version__}"),
            )
