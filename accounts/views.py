"""Sign-up and the profile page; log-in and log-out are Django's own views."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from rest_framework.authtoken.models import Token

from accounts import services
from accounts.forms import SignupForm
from accounts.throttles import auth_attempt_allowed
from projects.permissions import projects_for_user


def _throttled(wait: int) -> str:
    return f"Too many attempts from your address. Try again in {wait} seconds."


class LoginView(auth_views.LoginView):
    """Django's log-in, with the same brute-force limit as the token API: a refused attempt checks no password."""

    template_name = "accounts/login.html"

    def post(self, request, *args, **kwargs):
        allowed, wait = auth_attempt_allowed(request)
        if allowed:
            return super().post(request, *args, **kwargs)
        form = self.get_form_class()(request)  # unbound: validating it would check the password
        context = self.get_context_data(form=form, throttled=_throttled(wait))
        return self.render_to_response(context, status=429, headers={"Retry-After": str(wait)})


@require_http_methods(["GET", "POST"])
def signup(request):
    if not settings.SIGHTLINE_ALLOW_REGISTRATION:
        raise Http404("Registration is turned off on this server.")
    if request.method == "POST":
        allowed, wait = auth_attempt_allowed(request)
        if not allowed:
            context = {"form": SignupForm(), "throttled": _throttled(wait)}
            response = render(request, "accounts/signup.html", context, status=429)
            response["Retry-After"] = str(wait)
            return response
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_register(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error("password1" if field == "password" else field, errors)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to Sightline, {user.username}.")
            return redirect("projects:list")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
@require_safe
def profile(request):
    token = Token.objects.filter(user=request.user).first()
    projects = projects_for_user(request.user).order_by("id")
    return render(request, "accounts/profile.html", {"token": token, "projects": projects})


@login_required
@require_POST
def token_regenerate(request):
    services.token_regenerate(user=request.user)
    messages.success(request, "A new API token was made; the old one no longer works.")
    return redirect("profile")
