"""Console forms of inference tasks. They check the shape of the input only: every platform rule is the
service's (``inference_jobs.services``), whose refusal the views put on the field it names."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

from catalog.choices import ModelStatus
from catalog.models import Model
from compute_pools.choices import Mode
from compute_pools.selectors import compute_pool_list_queryset
from controlplane.console.forms import TenantChoiceField
from gateways.selectors import gateway_list_queryset
from inference_jobs.choices import SamplingPolicy
from inference_jobs.constants import (
    DEFAULT_REPETITION_PENALTY,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    DEFAULT_TPOT_SLO_MS,
    DEFAULT_TTFT_SLO_MS,
    MAX_COMPUTE_UNITS_PER_INSTANCE,
    MAX_INSTANCES,
)
from inference_jobs.models import validate_top_p
from inference_jobs.services import MUTABLE_FIELDS
from tenancy.choices import Action

API_KEY_SHAPE = re.compile(r"[A-Za-z0-9_\-.~+/=]{1,512}")
# What admission needs to give a verdict; the dry-run panel asks for these before it can answer.
ADMISSION_FIELDS = ("tenant", "name", "model", "mode", "compute_pool", "gateway")

TEMPERATURE_HELP = (
    "Randomness of sampling, 0–2 (0 = always the most likely token). Near 0: precise answers; "
    "1.5 and above: creative writing; legal or medical use: below 0.5."
)
TOP_P_HELP = (
    "Diversity: sample only from the most likely tokens whose probabilities add up to this, (0, 1]. "
    "0.1–0.3 precise, 0.3–0.5 balanced, 0.5–0.8 creative."
)
PENALTY_HELP = (
    "Repetition penalty on tokens already generated, 1.0–2.0 (1.0 = off; vLLM's repetition_penalty). "
    "Start small and raise it only if answers repeat themselves."
)


def _parameters(count: int | None) -> str:
    if not count:
        return "size unknown"
    return f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M"


class ModelField(forms.ModelChoiceField):
    def label_from_instance(self, model: Model) -> str:
        flags = [flag for flag, on in (("encrypted", model.encrypted), ("compressed", model.compressed)) if on]
        details = [_parameters(model.parameter_count), model.dtype or "dtype unknown", *flags]
        return f"{model.name} ({', '.join(details)})"


class PoolField(forms.ModelChoiceField):
    def label_from_instance(self, pool) -> str:
        return (
            f"{pool.name} — {pool.accelerator_type.name}, {pool.free_compute_units} of "
            f"{pool.capacity_compute_units} cards free, {pool.memory_per_card_gib} GiB each"
        )


class GatewayField(forms.ModelChoiceField):
    def label_from_instance(self, gateway) -> str:
        state = "" if gateway.is_active else ", takes no new tasks"
        return f"{gateway.name} — {gateway.address}, {gateway.ports_free} of {gateway.port_count} ports free{state}"


class TaskCreateForm(forms.Form):
    """SPEC's create form: basic, resources and advanced sections, with the API's names and defaults
    (``InferenceTaskCreateSerializer``), so that the same input means the same task in both."""

    fieldsets = (
        ("Basic", "", ("tenant", "name", "model", "mode", "description")),
        ("Resources", "", ("compute_pool", "gateway", "compute_units_per_instance", "instances")),
        (
            "Advanced",
            "Sensible defaults; change them when you know why.",
            ("async_batching", "reflow_enabled", "temperature", "top_p", "repetition_penalty", "sampling_policy",
             "system_prompt", "served_model_name", "ttft_slo_ms", "tpot_slo_ms"),
        ),
    )  # fmt: skip

    name = forms.SlugField(
        max_length=63,
        help_text="Unique within the tenant; lower case letters, digits and dashes. Callers use it as the model "
        "name unless you set a served model name.",
    )
    mode = forms.ChoiceField(
        choices=Mode.choices,
        initial=Mode.NORMAL,
        help_text="Normal runs the PyTorch runtime and serves neither encrypted nor compressed models. "
        "High-performance runs vLLM: on NVIDIA or Iluvatar MR-V100 cards, and on CPU pools where vLLM's CPU "
        "runtime is installed.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    compute_units_per_instance = forms.IntegerField(
        label="Compute per instance (cards)",
        required=False,
        min_value=1,
        max_value=MAX_COMPUTE_UNITS_PER_INSTANCE,
        help_text="Cards per replica. Leave empty for the sizing advisor's recommendation. By model size: "
        "under 30B → 2; 30–70B → 4–8; over 70B → 8–16.",
    )
    instances = forms.IntegerField(
        min_value=1,
        max_value=MAX_INSTANCES,
        initial=1,
        help_text="Replicas of the model: more instances, more throughput (and more cards).",
    )
    async_batching = forms.BooleanField(
        label="Asynchronous batch inference",
        required=False,
        initial=True,
        help_text="Merge concurrent requests into batches on the accelerator. Recommended: on.",
    )
    reflow_enabled = forms.BooleanField(
        label="Data reflow",
        required=False,
        initial=False,
        help_text="Capture every request/response pair for later training. Off by default; turn it on only "
        "when callers know their data is kept.",
    )
    temperature = forms.FloatField(
        min_value=0.0, max_value=2.0, initial=DEFAULT_TEMPERATURE, help_text=TEMPERATURE_HELP
    )
    top_p = forms.FloatField(label="Top p", initial=DEFAULT_TOP_P, validators=[validate_top_p], help_text=TOP_P_HELP)
    repetition_penalty = forms.FloatField(
        label="Penalty score",
        min_value=1.0,
        max_value=2.0,
        initial=DEFAULT_REPETITION_PENALTY,
        help_text=PENALTY_HELP,
    )
    sampling_policy = forms.ChoiceField(
        choices=SamplingPolicy.choices,
        initial=SamplingPolicy.DEFAULTS,
        help_text="Defaults: a caller's explicit value wins. Locked: the task's values (and system prompt) "
        "always apply.",
    )
    system_prompt = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Sent to the model when a caller sends none (or always, when the policy is locked).",
    )
    served_model_name = forms.CharField(
        required=False,
        max_length=200,
        help_text="The model name callers send; defaults to the task name.",
    )
    ttft_slo_ms = forms.IntegerField(
        label="Time-to-first-token target (ms)",
        min_value=1,
        initial=DEFAULT_TTFT_SLO_MS,
        help_text="Requests slower than this to their first token do not count as goodput. E.g. 2000 ms.",
    )
    tpot_slo_ms = forms.IntegerField(
        label="Time-per-output-token target (ms)",
        min_value=1,
        initial=DEFAULT_TPOT_SLO_MS,
        help_text="Requests slower than this per token after the first do not count as goodput. E.g. 100 ms.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["tenant"] = TenantChoiceField(user, Action.OPERATE, help_text="Who owns the task.")
        models = (
            Model.objects.restrict(user, Action.OPERATE)
            .filter(status=ModelStatus.READY)
            .select_related("tenant")
            .defer("config", "description", "status_message")
            .order_by("tenant__name", "name")
        )
        self.fields["model"] = ModelField(
            queryset=models,
            help_text="A ready model of the tenant. Normal mode refuses encrypted or compressed models.",
        )
        self.fields["compute_pool"] = PoolField(
            queryset=compute_pool_list_queryset().restrict(user, Action.VIEW).order_by("name"),
            to_field_name="slug",
            help_text="Where the instances run: a pool granted to the tenant, with enough free cards.",
        )
        self.fields["gateway"] = GatewayField(
            queryset=gateway_list_queryset().restrict(user, Action.VIEW).order_by("name"),
            to_field_name="slug",
            help_text="Publishes the task on one of its ports (at most 16 per gateway); the address and port "
            "make the task's access URL.",
        )
        self._group_models_by_tenant(models)
        self.order_fields([name for _, _, names in self.fieldsets for name in names])

    def _group_models_by_tenant(self, models) -> None:
        """With models of several tenants on offer, list them under their tenant's name."""
        rows = list(models)
        tenants = {model.tenant_id for model in rows}
        if len(tenants) < 2:
            return
        groups: dict[str, list] = {}
        for model in rows:
            groups.setdefault(model.tenant.name, []).append((model.pk, self.fields["model"].label_from_instance(model)))
        self.fields["model"].choices = [("", "---------"), *groups.items()]

    def clean(self):
        cleaned = super().clean()
        tenant, model = cleaned.get("tenant"), cleaned.get("model")
        if tenant is not None and model is not None and model.tenant_id != tenant.pk:
            self.add_error("model", ValidationError(f"Choose a model of tenant '{tenant.slug}'.", code="invalid"))
        return cleaned

    def sections(self):
        """``(legend, intro, bound fields, has errors)`` per fieldset, for the template."""
        for legend, intro, names in self.fieldsets:
            bound = [self[name] for name in names]
            yield legend, intro, bound, any(field.errors for field in bound)

    def admission_fields(self) -> dict[str, Any]:
        """What ``services.task_dry_run`` takes; empty compute per instance asks the sizing advisor."""
        fields = {name: self.cleaned_data[name] for name in ADMISSION_FIELDS}
        fields["instances"] = self.cleaned_data.get("instances") or 1
        if self.cleaned_data.get("compute_units_per_instance"):
            fields["compute_units_per_instance"] = self.cleaned_data["compute_units_per_instance"]
        return fields

    def service_fields(self) -> dict[str, Any]:
        """Keyword arguments of ``services.task_create`` besides the actor: those of the API's create, tenant
        included."""
        fields = self.admission_fields()
        fields["instances"] = self.cleaned_data["instances"]
        fields.update({name: self.cleaned_data[name] for name in MUTABLE_FIELDS})
        return fields


class TaskScaleForm(forms.Form):
    instances = forms.IntegerField(min_value=1, max_value=MAX_INSTANCES)
    compute_units_per_instance = forms.IntegerField(
        label="Cards per instance", required=False, min_value=1, max_value=MAX_COMPUTE_UNITS_PER_INSTANCE
    )


class PlaygroundForm(forms.Form):
    """One turn of a playground chat. The API key is forwarded to the task's adapter and never kept."""

    api_key = forms.CharField(
        label="API key",
        widget=forms.PasswordInput(attrs={"id": "api-key", "autocomplete": "off", "spellcheck": "false"}),
        help_text="A tenant API key (aicp_sk_…). The adapter checks it; this browser tab remembers it, the "
        "console never stores it.",
    )
    system_prompt = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Sent first in the conversation; starts as the task's own.",
    )
    temperature = forms.FloatField(min_value=0.0, max_value=2.0, help_text=TEMPERATURE_HELP)
    top_p = forms.FloatField(label="Top p", validators=[validate_top_p], help_text=TOP_P_HELP)
    repetition_penalty = forms.FloatField(
        label="Penalty score", validators=[MinValueValidator(1.0), MaxValueValidator(2.0)], help_text=PENALTY_HELP
    )
    max_tokens = forms.IntegerField(
        label="Max tokens", min_value=1, max_value=32_768, initial=512, help_text="The longest answer to generate."
    )
    message = forms.CharField(
        widget=forms.Textarea(attrs={"id": "message", "rows": 3, "placeholder": "Ask the model something…"})
    )
    history = forms.CharField(required=False, widget=forms.HiddenInput(attrs={"id": "history"}))

    MAX_HISTORY = 100

    def clean_api_key(self) -> str:
        """One word of URL-safe characters, as AICP issues them: anything else could not travel in a header."""
        key = self.cleaned_data["api_key"].strip()
        if not API_KEY_SHAPE.fullmatch(key):
            raise ValidationError("This does not look like an API key; paste the whole aicp_sk_… key.", code="invalid")
        return key

    def clean_history(self) -> list[dict[str, str]]:
        """The conversation so far (user and assistant turns) as the page sent it back."""
        raw = self.cleaned_data.get("history") or "[]"
        try:
            turns = json.loads(raw)
        except ValueError:
            raise ValidationError("The conversation could not be read; start a new one.", code="invalid") from None
        if not isinstance(turns, list) or len(turns) > self.MAX_HISTORY:
            raise ValidationError("The conversation could not be read; start a new one.", code="invalid")
        clean = []
        for turn in turns:
            if not (isinstance(turn, dict) and turn.get("role") in ("user", "assistant")):
                raise ValidationError("The conversation could not be read; start a new one.", code="invalid")
            clean.append({"role": turn["role"], "content": str(turn.get("content", ""))})
        return clean

    def messages(self) -> list[dict[str, str]]:
        """The chat messages to send: the system prompt, the history, and the new user message."""
        system = self.cleaned_data.get("system_prompt", "").strip()
        head = [{"role": "system", "content": system}] if system else []
        return [*head, *self.cleaned_data["history"], {"role": "user", "content": self.cleaned_data["message"]}]

    def sampling(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in ("temperature", "top_p", "repetition_penalty", "max_tokens")}
