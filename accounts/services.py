"""Every write to accounts: registration and API tokens."""

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from accounts.models import User


@transaction.atomic
def user_register(*, username: str, email: str, password: str) -> User:
    """Create a user after Django's password validators and uniqueness checks pass."""
    user = User(username=username, email=User.objects.normalize_email(email))
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "A user with that username already exists."})
    if User.objects.filter(email__iexact=user.email).exists():
        raise ValidationError({"email": "A user with that email already exists."})
    user.full_clean(exclude=["password"])
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    user.save()
    return user


def token_get_or_create(*, user: User) -> Token:
    token, _ = Token.objects.get_or_create(user=user)
    return token


@transaction.atomic
def token_regenerate(*, user: User) -> Token:
    """Replace the user's token; the old key stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


def user_names_set(*, user: User, first: str, last: str) -> User:
    """A person's first and last name (the SeeMe SDK's register sends them)."""
    user.first_name, user.last_name = first.strip()[:150], last.strip()[:150]
    user.save(update_fields=["first_name", "last_name"])
    return user
