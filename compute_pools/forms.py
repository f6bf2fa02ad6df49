"""Console forms of compute pools. Shape only: capacity below use, a second grant of a pool to the same
tenant, a share below use are the services' refusals."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from compute_pools.models import AcceleratorType
from tenancy.models import Tenant


class NodeLabelsField(forms.CharField):
    """Node labels written one per line as ``key=value``; cleaned to a dict, the API's ``node_selector``."""

    widget = forms.Textarea(attrs={"rows": 3, "class": "mono", "placeholder": "aicp.io/pool=a100"})

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(f"{key}={label}" for key, label in value.items())
        return value

    def to_python(self, value) -> dict[str, str]:
        labels: dict[str, str] = {}
        for number, line in enumerate(super().to_python(value).splitlines(), start=1):
            if not line.strip():
                continue
            key, equals, label = line.partition("=")
            if not equals or not key.strip():
                raise ValidationError(f"Line {number}: write each label as key=value.", code="invalid")
            labels[key.strip()] = label.strip()
        return labels


class ComputePoolUpdateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    accelerator_type = forms.ModelChoiceField(
        queryset=AcceleratorType.objects.order_by("name"),
        to_field_name="slug",
        label="Accelerator",
        help_text="The kind of card of every node in the pool; it decides which modes the pool runs. "
        "Fixed once tasks run on the pool.",
    )
    capacity_compute_units = forms.IntegerField(
        min_value=1,
        label="Capacity (compute units)",
        help_text="Cards the pool's tasks may hold together. It cannot drop below what its tasks hold now.",
    )
    memory_per_card_gib = forms.IntegerField(
        min_value=1,
        label="Memory per card (GiB)",
        help_text="The sizing advisor uses it to recommend cards per instance.",
    )
    node_selector = NodeLabelsField(
        required=False,
        label="Node labels",
        help_text="One label per line, key=value: the pool's tasks run only on nodes that carry all of them.",
    )
    tolerations = forms.JSONField(
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text="Kubernetes tolerations for the nodes' taints, as a JSON list, e.g. "
        '[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]. Leave empty for none.',
    )

    def clean_tolerations(self) -> list[dict]:
        tolerations = self.cleaned_data["tolerations"] or []
        if not (isinstance(tolerations, list) and all(isinstance(item, dict) for item in tolerations)):
            raise ValidationError('Write a JSON list of objects, e.g. [{"key": "gpu"}].', code="invalid")
        return tolerations


class ComputePoolCreateForm(ComputePoolUpdateForm):
    slug = forms.SlugField(
        max_length=63, label="ID", help_text="Lower-case letters, digits and hyphens; it cannot change."
    )
    memory_per_card_gib = forms.IntegerField(
        min_value=1,
        required=False,
        label="Memory per card (GiB)",
        help_text="Leave empty for the accelerator's typical card.",
    )

    field_order = ["slug", "name"]


class PoolGrantShareForm(forms.Form):
    max_compute_units = forms.IntegerField(
        min_value=0,
        required=False,
        label="Share (compute units)",
        help_text="The most this tenant's tasks may hold in the pool. "
        "Leave empty for no cap beyond the pool's capacity.",
    )


class PoolGrantForm(PoolGrantShareForm):
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.order_by("name"), to_field_name="slug", help_text="The tenant that may use the pool."
    )

    field_order = ["tenant", "max_compute_units"]
