"""The body of every error answer of the API, as the schema publishes it (the ``Error`` component).

``controlplane/api/exceptions.py`` writes it; ``controlplane/api/schema.py`` documents it on every operation; a view
whose error answer carries more (an ingest batch's 422) extends it.
"""

from __future__ import annotations

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer of the API."""

    code = serializers.CharField(
        help_text="Stable, for programs: `invalid`, `not_found`, `permission_denied`, or a platform rule's code."
    )
    message = serializers.CharField(help_text="For people: what was wrong, naming the rule or the field.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by request field; a value inside the body is named by its path (`messages[0].content`).",
    )
    request_id = serializers.CharField(required=False, help_text="Only on a 500: the id its traceback is logged under.")

    class Meta:
        ref_name = "Error"
