"""The user model, custom from the first migration so that it can grow without a data migration."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    email = models.EmailField("email address", unique=True)

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username
