"""The few named exceptions of itn7. Their messages are French and shown as is to the user."""


class Itn7Error(Exception):
    """Base class: an expected failure, reported as a one-line message and a non-zero exit."""

    exit_code = 1


class ConfigError(Itn7Error):
    """The configuration is missing, unreadable or invalid."""

    exit_code = 2


class AuthError(Itn7Error):
    """The API refused the token (expired, invalid, wrong network or out of scope). Never retried."""

    exit_code = 3


class ApiError(Itn7Error):
    """The API could not be reached or kept failing after the retries."""

    exit_code = 4


class StoreError(Itn7Error):
    """The local database is missing, locked or in a state the command cannot use."""

    exit_code = 5
