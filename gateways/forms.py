"""Console forms of gateways. Shape only: the 16-port limit and the ports held by tasks are the service's
(and the database's) to refuse, so the console answers with the API's code."""

from __future__ import annotations

from django import forms

from gateways.choices import Scheme

_PORT = {"min_value": 1, "max_value": 65535}


class GatewayUpdateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    address = forms.CharField(
        max_length=253, help_text="Host name or IP address callers reach the gateway at (its load balancer)."
    )
    scheme = forms.ChoiceField(choices=Scheme.choices, initial=Scheme.HTTP)
    port_range_start = forms.IntegerField(**_PORT, label="First port")
    port_range_end = forms.IntegerField(
        **_PORT,
        label="Last port",
        help_text="Each published task takes one port of the range; a gateway has at most 16 ports.",
    )
    is_active = forms.BooleanField(
        required=False,
        initial=True,
        label="Takes new tasks",
        help_text="An inactive gateway keeps the tasks it publishes but takes no new ones.",
    )


class GatewayCreateForm(GatewayUpdateForm):
    slug = forms.SlugField(
        max_length=63, label="ID", help_text="Lower-case letters, digits and hyphens; it cannot change."
    )

    field_order = ["slug", "name"]
