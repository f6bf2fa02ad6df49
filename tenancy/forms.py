"""Console forms of tenancy. They check the shape of the input only; every rule (quotas below use, the last
tenant admin, a taken username, an expiry in the past) is the services' to refuse."""

from __future__ import annotations

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError

from controlplane.console.forms import TenantChoiceField
from reflow.constants import DEFAULT_REFLOW_RETENTION_DAYS, MAX_REFLOW_RETENTION_DAYS
from tenancy.choices import Action, Role
from tenancy.constants import DEFAULT_MAX_COMPUTE_UNITS, DEFAULT_MAX_TASKS, DEFAULT_MAX_TOKENS_PER_MINUTE
from tenancy.models import User


class TenantUpdateForm(forms.Form):
    """A tenant's name and quotas; its id is fixed once created."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    max_tasks = forms.IntegerField(
        min_value=0,
        initial=DEFAULT_MAX_TASKS,
        label="Maximum inference tasks",
        help_text="Tasks the tenant may have at once, stopped ones included.",
    )
    max_compute_units = forms.IntegerField(
        min_value=0,
        initial=DEFAULT_MAX_COMPUTE_UNITS,
        label="Maximum compute units",
        help_text="Cards the tenant's tasks may hold together: compute per instance × instances. "
        "Stopped tasks hold none.",
    )
    max_tokens_per_minute = forms.IntegerField(
        min_value=0,
        initial=DEFAULT_MAX_TOKENS_PER_MINUTE,
        label="Maximum tokens per minute",
        help_text="Input plus output tokens per minute over all the tenant's tasks, enforced at the access URL.",
    )
    reflow_retention_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_REFLOW_RETENTION_DAYS,
        initial=DEFAULT_REFLOW_RETENTION_DAYS,
        label="Keep captured reflow data for (days)",
        help_text="Captured request/response pairs older than this are deleted.",
    )


class TenantCreateForm(TenantUpdateForm):
    slug = forms.SlugField(
        max_length=63,
        label="ID",
        help_text="Lower-case letters, digits and hyphens. Names the tenant's Kubernetes namespace; it cannot change.",
    )

    field_order = ["slug", "name"]


ROLE_HELP = (
    "Tenant admin: everything in the tenant, members and API keys included. Member: models and tasks. "
    "Viewer: read only."
)


class ManagedTenantFormMixin:
    """Adds ``tenant``: a choice among the tenants the signed-in user manages (every tenant for a platform
    admin). Another tenant is not a choice at all, so it reads as an invalid choice, never as a refusal."""

    field_order: list[str] = []

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"] = TenantChoiceField(user, Action.MANAGE)
        self.order_fields(self.field_order)


class MemberAddForm(ManagedTenantFormMixin, forms.Form):
    """Add an existing account to a tenant."""

    # Named as the API names it, so that the service's ``membership_exists`` lands on this field.
    user = forms.CharField(max_length=150, label="Username", help_text="The account must exist and be active.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, help_text=ROLE_HELP)

    field_order = ["tenant", "user", "role"]

    def clean_user(self) -> User:
        username = self.cleaned_data["user"]
        try:
            return User.objects.get(username=username, is_active=True)
        except User.DoesNotExist:
            raise ValidationError(f"There is no active user named '{username}'.", code="does_not_exist") from None


class NewUserForm(ManagedTenantFormMixin, forms.Form):
    """A platform admin creates an account and makes it a member of a tenant in one step."""

    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField(required=False, max_length=254)
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        strip=False,
        help_text="Checked by the platform's password rules. Tell the person; it is never shown again.",
    )
    password_again = forms.CharField(
        widget=forms.PasswordInput(render_value=False), strip=False, label="Password again"
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, help_text=ROLE_HELP)

    field_order = ["username", "email", "password", "password_again", "tenant", "role"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") and cleaned.get("password_again") not in (None, cleaned["password"]):
            self.add_error("password_again", ValidationError("The two passwords differ.", code="password_mismatch"))
        return cleaned


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, help_text=ROLE_HELP)


class ApiKeyCreateForm(ManagedTenantFormMixin, forms.Form):
    name = forms.CharField(max_length=100, help_text="Say who or what will use the key, e.g. “support bot”.")
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty for a key that works until it is revoked.",
    )

    field_order = ["tenant", "name", "expires_at"]
