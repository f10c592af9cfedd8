"""Who the credentials belong to: the only code calling the STS client."""

from .errors import translated


def caller_account(client) -> str:
    with translated():
        return client.get_caller_identity()["Account"]
