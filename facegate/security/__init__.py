"""Who may do what: API keys' principals and their scopes (the storage floor's view of callers)."""

from facegate.security.principal import KEY_PREFIX, SCOPES, SYSTEM, Principal, authorize, caller, hash_secret

__all__ = ["KEY_PREFIX", "SCOPES", "SYSTEM", "Principal", "authorize", "caller", "hash_secret"]
