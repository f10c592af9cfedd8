"""Domain errors in the operator's terms, each with the exit code it means, and the one mapping from botocore."""

from contextlib import contextmanager
from typing import Any

# Exit codes, documented in README.md.
OK, FAILED, USAGE, TIMED_OUT, BUSY, INTERRUPTED = 0, 1, 2, 3, 4, 130


class WorkflowError(Exception):
    """An expected failure: reported in one message, never with a traceback."""

    refusal = False  # raised before this command changed anything, whatever state the cluster is in

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
    """Throttling, a server error or a broken connection: worth another try while a wait has time left.

    A request that failed this way may still have been carried out (a 5xx, an answer lost on its way back),
    unless it is a NotApplied one.
    """


class NotApplied(Transient):
    """AWS did not act on the request: it never reached AWS (no connection), or AWS refused it for now."""


class Throttled(NotApplied):
    """AWS's rate limit refused the request (ThrottlingException, 429): nothing was done, and the shared
    bucket refills with time."""


class Malformed(Transient):
    """An answer that is not what the API promises (a proxy's error page, a truncated or corrupted body,
    fields of the wrong type): as uncertain as a lost one, since the request may have been carried out."""

    def __init__(self, detail: str, operation: str = ""):
        to = f" to {operation}" if operation else ""
        super().__init__(f"AWS answered something unreadable{to}: {detail}", "Malformed")


class Refused(WorkflowError):
    """The request cannot work on this cluster as it is; refused before anything was changed."""

    exit_code = USAGE
    refusal = True


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
# outlast botocore's retries; these codes mean "not now", never "no", and that nothing was done.
THROTTLING_CODES = frozenset({
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
})
THROTTLING_STATUS = 429
# These, and any 5xx, mean "not now" too, but the request may have been carried out.
_TRANSIENT_CODES = THROTTLING_CODES | {
    "ServerException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
}
# Set by the retry handler (workflow/aws.py) on a final answer when an earlier attempt of the same call may
# have been carried out (a 5xx, a dropped connection): a throttled last attempt then proves nothing.
EARLIER_ATTEMPT_UNSURE = "WorkflowEarlierAttemptUnsure"


def is_throttling(code: str, status: int) -> bool:
    return code in THROTTLING_CODES or status == THROTTLING_STATUS


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
        # Read defensively: a proxy's answer to an error may lack any of these, or hold something else.
        response: Any = error.response if isinstance(error.response, dict) else {}
        details: Any = response.get("Error") if isinstance(response.get("Error"), dict) else {}
        metadata: Any = response.get("ResponseMetadata") if isinstance(response.get("ResponseMetadata"), dict) else {}
        code = str(details.get("Code") or "")
        message = str(details.get("Message") or "") or code
        status: int = metadata.get("HTTPStatusCode") if isinstance(metadata.get("HTTPStatusCode"), int) else 0
        if not_found and code in not_found:
            raise not_found[code] from None
        # A 403 is a denial whatever the body's format (some endpoints answer ECS denials in XML).
        if code in _ACCESS_CODES or status == 403:
            raise AccessDenied(error.operation_name, message) from None
        text = f"{error.operation_name} failed: {code or status}: {message}"
        if is_throttling(code, status) and not metadata.get(EARLIER_ATTEMPT_UNSURE):
            raise Throttled(text, code) from None
        if code in _TRANSIENT_CODES or status >= 500:
            raise Transient(text, code) from None
        raise AwsError(f"{error.operation_name} failed: {code}: {message}", code) from None
    except boto.BotoCoreError as error:
        hint = next((h for kind, h in _configuration_hints().items() if isinstance(error, kind)), None)
        if hint:
            raise ConfigurationError(f"{error}\n  hint: {hint}") from None
        if isinstance(error, boto.EndpointConnectionError | boto.ConnectTimeoutError) and not getattr(
                error, EARLIER_ATTEMPT_UNSURE, False):
            # The connection never opened: the request was not sent.
            raise NotApplied(f"cannot reach AWS: {error}", type(error).__name__) from None
        if isinstance(error, boto.ConnectionError | boto.HTTPClientError):
            # Timeouts, resets and closed connections, after botocore's own retries.
            raise Transient(f"cannot reach AWS: {error}", type(error).__name__) from None
        raise AwsError(f"AWS request failed: {error}", type(error).__name__) from None
    except ResponseParserError as error:
        raise Malformed(str(error).split("\n")[0]) from None
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as error:
        # botocore's parsers assume the body has the shape the model gives: a proxy's page, a list, a truncated
        # or undecodable body makes them fail with these. Raised anywhere else, they are bugs and stay so.
        if not _raised_while_parsing(error):
            raise
        raise Malformed(f"{type(error).__name__}: {error}") from None


def _raised_while_parsing(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__") == "botocore.parsers":
            return True
        traceback = traceback.tb_next
    return False
