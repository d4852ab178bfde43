"""Who may do what: API keys' principals and their scopes (the storage floor's view of callers)."""

from facegate.security.principal import (
    ANONYMOUS,
    KEY_PREFIX,
    ROLE_SCOPES,
    SCOPES,
    SYSTEM,
    CsrfError,
    Principal,
    authorize,
    caller,
    hash_secret,
)

__all__ = [
    "ANONYMOUS", "KEY_PREFIX", "ROLE_SCOPES", "SCOPES", "SYSTEM", "CsrfError", "Principal", "authorize", "caller",
    "hash_secret",
]
