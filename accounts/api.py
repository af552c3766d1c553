"""Accounts over REST: register, exchange a password for a token, and who am I."""

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.throttles import AuthThrottle
from config.api import StrictSerializer
from projects.permissions import projects_for_user


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AuthThrottle]

    class InputSerializer(StrictSerializer):
        username = serializers.CharField(max_length=150)
        email = serializers.EmailField()
        password = serializers.CharField(write_only=True)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        email = serializers.EmailField()
        token = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        if not settings.SIGHTLINE_ALLOW_REGISTRATION:
            raise Http404("Registration is turned off on this server.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        token = services.token_get_or_create(user=user)
        body = {"id": user.id, "username": user.username, "email": user.email, "token": token.key}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class TokenApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AuthThrottle]

    class InputSerializer(StrictSerializer):
        username = serializers.CharField()
        password = serializers.CharField(write_only=True)

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None:
            return Response(
                {"non_field_errors": ["Unable to log in with these credentials."]}, status=status.HTTP_400_BAD_REQUEST
            )
        return Response({"token": services.token_get_or_create(user=user).key})


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        email = serializers.EmailField()
        project_ids = serializers.ListField(child=serializers.IntegerField())

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request):
        user = request.user
        body = {
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "project_ids": sorted(projects_for_user(user).values_list("id", flat=True)),
        }
        return Response(self.OutputSerializer(body).data)
