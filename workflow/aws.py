"""The only place that builds AWS sessions and clients: profile, region, endpoint and retry mode."""

import functools
import os
from dataclasses import dataclass

from . import __version__
from .errors import ConfigurationError, translated


@dataclass(frozen=True)
class AwsConfig:
    """Unset values fall through to botocore's own chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...)."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None


# Outside waits a failed call ends the command, so it gets more attempts than botocore's default 3;
# AWS_MAX_ATTEMPTS / AWS_RETRY_MODE or the profile's settings win when set.
DEFAULT_RETRIES = {"mode": "standard", "total_max_attempts": 8}
_CONFIG_NAMES = {"mode": "retry_mode", "total_max_attempts": "max_attempts"}


@functools.cache
def _models():
    """botocore's service models, parsed once per process however many sessions are built (tests build many)."""
    import botocore.session

    return botocore.session.get_session().get_component("data_loader")


class Clients:
    """Builds each client once, on first use, so `--help` never pays for importing boto3."""

    def __init__(self, config: AwsConfig):
        self._config = config
        self._session = None
        self._clients: dict = {}

    def __call__(self, service: str, region: str | None = None, attempts: int | None = None):
        """The client for `service`, in `region` when given (a task's logs may live in another Region).

        `attempts` caps botocore's retries, for a request that must not be repeated blindly.
        """
        key = (service, region, attempts)
        if key not in self._clients:
            self._clients[key] = self._build(service, region, attempts)
        return self._clients[key]

    def _build(self, service: str, region: str | None, attempts: int | None):
        try:
            with translated():
                return self._client(service, region, attempts)
        except ValueError as error:
            # botocore reads the environment and config files as it builds: AWS_MAX_ATTEMPTS=abc, a bad endpoint.
            raise ConfigurationError(f"invalid AWS configuration: {error}") from None

    def _client(self, service: str, region: str | None, attempts: int | None):
        import boto3
        import botocore.session
        from botocore.config import Config

        if self._session is None:
            # botocore itself reads only AWS_DEFAULT_REGION; other SDKs and the AWS CLI read AWS_REGION first.
            default_region = self._config.region or os.environ.get("AWS_REGION") or None
            core = botocore.session.get_session()
            core.register_component("data_loader", _models())
            if self._config.profile:
                core.set_config_variable("profile", self._config.profile)
            # Set last: a configuration error raised above leaves this object as it was.
            self._retries = {
                key: value for key, value in DEFAULT_RETRIES.items() if core.get_config_variable(_CONFIG_NAMES[key]) is None
            }
            self._session = boto3.session.Session(botocore_session=core, region_name=default_region)
        retries = {**self._retries, "total_max_attempts": attempts} if attempts else self._retries
        return self._session.client(
            service,
            region_name=region,
            endpoint_url=self._config.endpoint_url,
            config=Config(retries=retries or None, user_agent_extra=f"workflow/{__version__}"),
        )
