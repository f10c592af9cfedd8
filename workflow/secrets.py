"""Airflow's API credentials from an AWS Secrets Manager secret; the only code calling Secrets Manager.

The secret (ARN or name) holds a SecretString that is a JSON object {"username": ..., "password": ...}. The
secret's value never goes into a message: a malformed secret is described by the names of its keys only.
"""

import json
import re
from typing import Any

from .airflow_api import Credentials
from .errors import ConfigurationError, translated

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,39}")


class SecretNotFound(ConfigurationError):
    def __init__(self, secret_id: str):
        super().__init__(f"secret {secret_id} not found in Secrets Manager (check its name or ARN and the Region)")


class SecretUnusable(ConfigurationError):
    """The secret exists but holds no usable Airflow credentials, or cannot be read as it is."""


def read_airflow_credentials(secretsmanager: Any, secret_id: str) -> Credentials:
    """The username and password stored in the secret's current version (AWSCURRENT)."""
    not_found = {"ResourceNotFoundException": SecretNotFound(secret_id)}
    unusable = {
        "DecryptionFailure": SecretUnusable(f"secret {secret_id} cannot be decrypted: kms:Decrypt on its KMS key "
                                            "is needed as well"),
        "InvalidRequestException": SecretUnusable(f"secret {secret_id} cannot be read now: is it scheduled for "
                                                  "deletion?"),
    }
    with translated(not_found={**not_found, **unusable}):
        answer = secretsmanager.get_secret_value(SecretId=secret_id)
    text = answer.get("SecretString")
    if not isinstance(text, str):
        raise SecretUnusable(f"secret {secret_id} holds binary data, not a JSON SecretString with username and password")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise SecretUnusable(f"secret {secret_id} is not JSON: it must be {{\"username\": ..., \"password\": ...}}") from None
    if not isinstance(doc, dict):
        raise SecretUnusable(f"secret {secret_id} is JSON but not an object: it must be "
                             "{\"username\": ..., \"password\": ...}")
    missing = [key for key in ("username", "password") if not isinstance(doc.get(key), str) or not doc.get(key)]
    if missing:
        # Key names tell the operator what is there; a key that is no plain name could be a value typed in the wrong place.
        names = sorted(doc)
        if all(_KEY.fullmatch(k) for k in names):
            keys = f"its keys: {', '.join(names)}" if names else "it has no keys"
        else:
            keys = f"it has {len(names)} key" + ("s" if len(names) > 1 else "")
        raise SecretUnusable(f"secret {secret_id} lacks a non-empty string {' and '.join(missing)} ({keys})")
    return Credentials(doc["username"], doc["password"])
