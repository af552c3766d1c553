"""Token authentication for the API: `Authorization: Token <key>` and the seed clients' `X-Auth-token: <key>`."""

from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token scheme, also reading the `X-Auth-token` header that SentiSight-style clients send."""

    def authenticate(self, request):
        key = request.META.get("HTTP_X_AUTH_TOKEN")
        if key is None:
            return super().authenticate(request)
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("Empty X-Auth-token header.")
        return self.authenticate_credentials(key)
