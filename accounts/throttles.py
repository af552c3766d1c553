"""One brute-force limit for every way to try a password: the token and registration API, and the HTML log-in
and sign-up forms. Counts live in Django's cache, so with REDIS_URL they are shared by every web process;
the client is the connecting address, and X-Forwarded-For is trusted only for SIGHTLINE_NUM_PROXIES proxies."""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle


class AuthThrottle(SimpleRateThrottle):
    scope = "auth"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def auth_attempt_allowed(request) -> tuple[bool, int]:
    """Whether a plain Django view may try this password now, and if not, in how many seconds it may."""
    throttle = AuthThrottle()
    if throttle.allow_request(request, None):
        return True, 0
    return False, int(throttle.wait() or 1)
