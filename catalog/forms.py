"""Console forms of the catalogue. They check the shape of the input only, as the API's serializers do; every
rule (a taken name, unsafe paths, a duplicate version) is the service's, shown on the field it names."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from catalog.api.serializers import IMAGE_DIGEST, IMAGE_TAG
from catalog.models import ModelFamily
from compute_pools.choices import Mode, Vendor
from controlplane.console.forms import TenantChoiceField
from tenancy.choices import Action


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files under one name (``<input type=file multiple>``); cleans to a list, empty when none."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class PathListField(forms.Field):
    """The relative path of each uploaded file, in the order of the files. The upload script fills it from a
    folder pick (``tokenizer/vocab.json``); without it each file is stored under its own name."""

    widget = forms.MultipleHiddenInput

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def to_python(self, value) -> list[str]:
        return [str(item) for item in value or []]


class ModelUploadForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="How tasks and people refer to the model, unique in the tenant.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    family = forms.ModelChoiceField(
        queryset=ModelFamily.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="Guess it from config.json",
        help_text="One of the families the platform has validated, if the model belongs to one.",
    )
    encrypted = forms.BooleanField(required=False, label="The weights are encrypted")
    compressed = forms.BooleanField(
        required=False,
        label="The weights are compressed (quantised or packed)",
        help_text="Set automatically when config.json has a quantization_config. Normal mode serves neither "
        "encrypted nor compressed models; high-performance mode does.",
    )
    files = MultipleFileField(
        label="Model files",
        help_text="Pick every file of the model folder: config.json, the tokenizer files and the weights "
        "(*.safetensors or *.bin).",
    )
    folder = MultipleFileField(
        label="…or the whole folder",
        widget=MultipleFileInput(attrs={"webkitdirectory": True, "directory": True}),
        help_text="Every file in the folder you pick is uploaded, keeping sub-folders.",
    )
    archive = forms.FileField(
        required=False,
        label="…or one archive",
        widget=forms.ClearableFileInput(attrs={"accept": ".tar,.tar.gz,.tgz,.zip"}),
        help_text="A .tar, .tar.gz or .zip of the model folder.",
    )
    paths = PathListField()

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        tenant = TenantChoiceField(user, Action.OPERATE, help_text="The tenant that owns the model.")
        self.fields = {"tenant": tenant, **self.fields}

    def clean(self):
        data = super().clean()
        files, folder, archive = data.get("files") or [], data.get("folder") or [], data.get("archive")
        if files and folder:
            self.add_error("folder", "Pick files or a folder, not both.")
        elif (files or folder) and archive:
            self.add_error("archive", "Send either files or an archive, not both.")
        elif not (files or folder or archive) and not self.has_error("files"):
            self.add_error("files", "Send the model's files, or one archive of them.")
        paths = data.get("paths")
        if paths and len(paths) != len(files or folder):
            self.add_error("files", "Give one path per file, in the order of the files.")
        return data

    def named_files(self) -> list[tuple[str, object]]:
        """``(relative path, file)`` pairs, as the API's upload passes them to the service."""
        files = self.cleaned_data["files"] or self.cleaned_data["folder"]
        paths = self.cleaned_data["paths"] or [uploaded.name for uploaded in files]
        return list(zip(paths, files, strict=True))


class RuntimeImageForm(forms.Form):
    slug = forms.SlugField(max_length=63, help_text="Fixed id, e.g. vllm-nvidia.")
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    mode = forms.ChoiceField(choices=Mode.choices)
    vendor = forms.ChoiceField(choices=Vendor.choices, help_text="The accelerators the image runs on.")
    repository = forms.CharField(max_length=300, help_text="Image repository, e.g. registry.example.com/aicp/vllm.")


class RuntimeImagePublishForm(forms.Form):
    version = forms.CharField(
        max_length=128,
        validators=[RegexValidator(IMAGE_TAG, "An image tag: letters, digits, '_', '.' and '-'.")],
        help_text="The image tag, e.g. 0.6.3. New tasks deploy it; running tasks keep their version until "
        "someone updates them.",
    )
    digest = forms.CharField(
        required=False,
        validators=[RegexValidator(IMAGE_DIGEST, "sha256: followed by 64 lowercase hex digits.")],
        help_text="Optional image digest (sha256:…) that pins the exact image.",
    )
    release_notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class SizingQueryForm(forms.Form):
    """What the sizing advice assumes; the same bounds as the API's ``models/{id}/sizing/`` query."""

    context_length = forms.IntegerField(
        required=False, min_value=1, max_value=10_000_000, help_text="Tokens; the model's own context when empty."
    )
    concurrent_sequences = forms.IntegerField(
        required=False, min_value=1, max_value=4096, help_text="Sequences whose KV cache is held at once."
    )
