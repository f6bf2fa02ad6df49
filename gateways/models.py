from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from gateways.choices import Scheme
from gateways.constants import MAX_PORTS_PER_GATEWAY
from tenancy.querysets import PlatformCatalogQuerySet

_PORT_VALIDATORS = [MinValueValidator(1), MaxValueValidator(65535)]


class Gateway(models.Model):
    """A cloud-native gateway behind a load balancer. Each task it publishes takes one port of its range;
    ``address:port`` is that task's access URL. The range holds at most 16 ports (SPEC rule 2)."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    address = models.CharField(max_length=253, help_text="Host name or IP address callers reach the gateway at.")
    scheme = models.CharField(max_length=5, choices=Scheme.choices, default=Scheme.HTTP)
    port_range_start = models.PositiveIntegerField(validators=_PORT_VALIDATORS)
    port_range_end = models.PositiveIntegerField(validators=_PORT_VALIDATORS)
    is_active = models.BooleanField(default=True, help_text="Inactive gateways keep their tasks but take no new ones.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PlatformCatalogQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(port_range_end__gte=models.F("port_range_start"))
                & models.Q(port_range_end__lt=models.F("port_range_start") + MAX_PORTS_PER_GATEWAY),
                name="gateway_port_range_at_most_16",
                violation_error_message=f"A gateway's port range holds 1 to {MAX_PORTS_PER_GATEWAY} ports.",
            )
        ]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        """The range rule as a field error (the check constraint alone would name no field)."""
        super().clean()
        start, end = self.port_range_start, self.port_range_end
        if not (isinstance(start, int) and isinstance(end, int)):
            return
        if end < start:
            raise ValidationError({"port_range_end": "The port range must not end before it starts."})
        if end - start + 1 > MAX_PORTS_PER_GATEWAY:
            raise ValidationError(
                {
                    "port_range_end": f"A gateway has at most {MAX_PORTS_PER_GATEWAY} ports; "
                    f"{start}-{end} would have {end - start + 1}."
                }
            )

    @property
    def port_count(self) -> int:
        return self.port_range_end - self.port_range_start + 1

    def access_url(self, port: int) -> str:
        return f"{self.scheme}://{self.address}:{port}/v1"


class GatewayPort(models.Model):
    """One allocated port: held by its task from creation until the task is gone (stopping keeps it)."""

    gateway = models.ForeignKey(Gateway, on_delete=models.PROTECT, related_name="ports")
    port = models.PositiveIntegerField(validators=_PORT_VALIDATORS)
    task = models.OneToOneField("inference_jobs.InferenceTask", on_delete=models.CASCADE, related_name="gateway_port")
    allocated_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gateway__slug", "port"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "port"],
                name="gateway_port_unique",
                violation_error_message="This port of the gateway is already allocated.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.port}"
