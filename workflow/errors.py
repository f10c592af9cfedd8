"""Domain errors in the operator's terms, each with the exit code it means, and the one mapping from botocore."""

from contextlib import contextmanager

# Exit codes, documented in README.md.
OK, FAILED, USAGE, TIMED_OUT, INTERRUPTED = 0, 1, 2, 3, 130


class WorkflowError(Exception):
    """An expected failure: reported in one message, never with a traceback."""

    exit_code = FAILED


class NotFound(WorkflowError):
    exit_code = USAGE


class ClusterNotFound(NotFound):
    def __init__(self, cluster: str):
        super().__init__(f"cluster {cluster} not found")


class ServicesMissing(NotFound):
    def __init__(self, cluster: str, names: list[str]):
        self.names = names
        super().__init__(f"services not found in cluster {cluster}: {', '.join(names)}")


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


@contextmanager
def translated(not_found: dict[str, WorkflowError] | None = None):
    """Turn botocore's exceptions into domain errors; `not_found` maps error codes the caller can name."""
    from botocore import exceptions as boto

    try:
        yield
    except boto.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "") or code
        if not_found and code in not_found:
            raise not_found[code] from None
        if code in _ACCESS_CODES:
            raise AccessDenied(error.operation_name, message) from None
        raise AwsError(f"{error.operation_name} failed: {code}: {message}", code) from None
    except boto.NoCredentialsError:
        raise ConfigurationError(
            "no AWS credentials found: set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except boto.NoRegionError:
        raise ConfigurationError("no AWS region: pass --region or set AWS_REGION") from None
    except boto.ProfileNotFound as error:
        raise ConfigurationError(str(error)) from None
    except boto.EndpointConnectionError as error:
        raise AwsError(f"cannot reach AWS: {error}") from None
