"""Domain errors in the operator's terms, each with the exit code it means, and the one mapping from botocore."""

from contextlib import contextmanager

# Exit codes, documented in README.md.
OK, FAILED, USAGE, TIMED_OUT, BUSY, INTERRUPTED = 0, 1, 2, 3, 4, 130


class WorkflowError(Exception):
    """An expected failure: reported in one message, never with a traceback."""

    exit_code = FAILED


class NotFound(WorkflowError):
    exit_code = USAGE


class ClusterNotFound(NotFound):
    def __init__(self, cluster: str, where: str = "", hint: str = ""):
        super().__init__(f"cluster {cluster} not found" + (f" ({where})" if where else "") + hint)


class ServicesMissing(NotFound):
    def __init__(self, cluster: str, names: list[str], hint: str = ""):
        self.names = names
        super().__init__(f"services not found in cluster {cluster}: {', '.join(names)}{hint}")


class ConfigurationError(WorkflowError):
    """Credentials, region, profile or permissions: nothing a re-run fixes without a change."""

    exit_code = USAGE


class AccessDenied(ConfigurationError):
    def __init__(self, action: str, detail: str):
        self.action = action
        super().__init__(f"access denied to {action}: {detail}")


class AwsError(WorkflowError):
    """An AWS API call failed for a reason botocore's retries could not cure."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class Transient(AwsError):
    """Throttling, a server error or a broken connection: worth another try while a wait has time left."""


class Refused(WorkflowError):
    """The request cannot work on this cluster as it is; refused before anything was changed."""

    exit_code = USAGE


class OperationFailed(WorkflowError):
    """The cluster did not do what was asked: a deployment rolled back, a task failed."""


class TaskFailed(OperationFailed):
    def __init__(self, message: str, result):
        self.result = result
        super().__init__(message)


class WaitTimedOut(WorkflowError):
    exit_code = TIMED_OUT


_ACCESS_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
}


# Throttling shares buckets per account and Region with the console, Terraform and autoscaling, so it can
# outlast botocore's retries; these codes and any 5xx mean "not now", never "no".
_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServerException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
}


def _configuration_hints() -> dict:
    """botocore's configuration and credential failures, each with what the operator can do about it."""
    from botocore import exceptions as boto

    return {
        boto.NoCredentialsError: "set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        boto.PartialCredentialsError: "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither",
        boto.SSOError: "run `aws sso login` for this profile",
        boto.TokenRetrievalError: "run `aws sso login` for this profile",
        boto.CredentialRetrievalError: "check the profile's credential_process",
        boto.UnknownCredentialError: "check the profile's credential settings",
        boto.ProfileNotFound: "check AWS_PROFILE / --profile and ~/.aws/config",
        boto.ConfigParseError: "fix the syntax of the AWS config file",
        boto.InvalidConfigError: "check the profile's source_profile and role settings",
        boto.InvalidRetryConfigurationError: "AWS_MAX_ATTEMPTS takes a whole number; AWS_RETRY_MODE standard or adaptive",
        boto.NoRegionError: "pass --region or set AWS_REGION",
        boto.InvalidRegionError: "pass a valid --region or AWS_REGION",
        boto.SSLError: "check AWS_CA_BUNDLE and any TLS-intercepting proxy",
        boto.ProxyConnectionError: "check HTTPS_PROXY / NO_PROXY",
    }


@contextmanager
def translated(not_found: dict[str, WorkflowError] | None = None):
    """Turn botocore's exceptions into domain errors; `not_found` maps error codes the caller can name."""
    from botocore import exceptions as boto
    from botocore.parsers import ResponseParserError

    try:
        yield
    except boto.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "") or code
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if not_found and code in not_found:
            raise not_found[code] from None
        # A 403 is a denial whatever the body's format (some endpoints answer ECS denials in XML).
        if code in _ACCESS_CODES or status == 403:
            raise AccessDenied(error.operation_name, message) from None
        if code in _TRANSIENT_CODES or status >= 500:
            raise Transient(f"{error.operation_name} failed: {code or status}: {message}", code) from None
        raise AwsError(f"{error.operation_name} failed: {code}: {message}", code) from None
    except boto.BotoCoreError as error:
        hint = next((h for kind, h in _configuration_hints().items() if isinstance(error, kind)), None)
        if hint:
            raise ConfigurationError(f"{error}\n  hint: {hint}") from None
        if isinstance(error, boto.ConnectionError | boto.HTTPClientError):
            # Timeouts, resets and refused connections, after botocore's own retries.
            raise Transient(f"cannot reach AWS: {error}", type(error).__name__) from None
        raise AwsError(f"AWS request failed: {error}", type(error).__name__) from None
    except ResponseParserError as error:
        raise Transient(f"AWS answered something unreadable: {error}", "ResponseParserError") from None
