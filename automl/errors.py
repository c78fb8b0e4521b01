"""One error hierarchy for everything a user can get wrong.

Every error is a ``ValueError`` subclass, carries a one-line message that names the key or
column, what was received and the fix, and pickles cleanly so it can cross Ray workers.
"""
from __future__ import annotations


class AutoMLError(ValueError):
    """Base class of automl's user-facing errors (printed on one line by the CLI)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __reduce__(self):  # keep picklable across Ray workers
        return (self.__class__, (self.message,))

    def __str__(self) -> str:
        return " ".join(self.message.split())


class ConfigError(AutoMLError):
    """A config key or value is unknown or invalid."""


class DataError(AutoMLError):
    """The input data cannot be read or cannot be used."""


class ArtifactError(AutoMLError):
    """A run folder is missing, incomplete or tampered with."""


class SearchError(AutoMLError):
    """The search produced no usable model."""


class ExportError(AutoMLError):
    """A model, or one of its steps, cannot be written in the requested format (`automl export`)."""


# Storage-library exceptions that mean a user mistake (credentials, URL, permissions), by class
# name so that automl needs no botocore/gcsfs/adlfs import to recognise them.
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError",
                   "ClientAuthenticationError", "CredentialRetrievalError", "NoAuthTokenError")
_BAD_URL = ("ParamValidationError", "InvalidBucketName", "InvalidS3AddressingStyleError", "InvalidRegionError")
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ServiceRequestError")


def storage_failure(exc: BaseException, url: str, what: str = "storage") -> "AutoMLError | None":
    """A one-line error for a storage or credential failure on ``url``, or None when ``exc`` is not
    one. ``what`` names the config key (``data.path``, ``output_dir``)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    first = " ".join(str(exc).split())
    first = first if len(first) <= 160 else first[:159] + "…"
    where = f"{what}: {url}" if url else what
    if names & set(_NO_CREDENTIALS):
        return DataError(f"{where}: no credentials for this storage ({type(exc).__name__}); set them in the "
                         "environment (e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile) or as "
                         "data.storage_options (key, secret, token)")
    if names & set(_BAD_URL):
        return DataError(f"{where}: invalid storage URL ({type(exc).__name__}: {first}); check the bucket name "
                         "and the path, e.g. s3://bucket/folder/file.csv (no user:password@ in s3 URLs)")
    if "PermissionError" in names:
        return DataError(f"{where}: permission denied ({first or type(exc).__name__}); check the credentials "
                         "and that they may access this bucket or folder")
    if names & set(_UNREACHABLE):
        return DataError(f"{where}: cannot reach the storage endpoint ({type(exc).__name__}: {first}); check "
                         "the URL, the endpoint and the network")
    return None
