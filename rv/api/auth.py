"""API tokens (CONTRACT.md, issue 12), kept by django-rest-knox: stored as digests, expiring.

POST /api/v1/auth/token/ {"username", "password"} -> {"token": "...", "expiry": "..."}
POST /api/v1/auth/logout/      revokes the token the request carries (204)
POST /api/v1/auth/logout-all/  revokes every token of its user (204)
Clients send "Authorization: Token <token>". Logins go through django-axes (throttled)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema, inline_serializer
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rv.services.users import auth_event_record, token_revoke_all


class _Credentials(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        request=_Credentials,
        responses=inline_serializer("TokenResponse", {"token": serializers.CharField(),
                                                      "expiry": serializers.DateTimeField()}),
    )
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationError("Send a JSON object with username and password.")
        creds = _Credentials(data=request.data)
        creds.is_valid(raise_exception=True)
        # The Django request, so django-axes marks it: its middleware answers 429 when the
        # user name is locked out from this address.
        user = authenticate(request._request, username=creds.validated_data["username"],
                            password=creds.validated_data["password"])
        if getattr(request._request, "axes_locked_out", False):
            from rv.throttle import locked_message

            return Response({"message": locked_message()}, status=429)
        if user is None or not user.is_active:
            raise ValidationError("Unable to log in with the given user name and password.")
        instance, token = AuthToken.objects.create(user=user, expiry=knox_settings.TOKEN_TTL)
        # A login like the form's: audited (auth.login), last_login set, axes's count reset.
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        auth_event_record(action="token", user=user, ip=_ip(request))
        return Response({"token": token, "expiry": instance.expiry})


def _ip(request: Request) -> str:
    from rv.throttle import client_ip

    return client_ip(request._request)


class LogoutView(APIView):
    """Revoke the token this request is authenticated with."""
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        if request.auth is None:  # logged in some other way: no token to revoke
            return Response({"message": "This request carries no API token to revoke."},
                            status=status.HTTP_400_BAD_REQUEST)
        request.auth.delete()
        auth_event_record(action="token_revoke", user=request.user, ip=_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(APIView):
    """Revoke every token of the requesting user."""
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        token_revoke_all(user=request.user, reason="logout-all")
        return Response(status=status.HTTP_204_NO_CONTENT)
