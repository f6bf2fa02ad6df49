"""OpenAPI descriptions of what drf-spectacular cannot infer on its own."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class APITokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenancy.authentication.APITokenAuthentication"
    name = "personalAPIToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "aicp_pat_<key id>_<secret>",
            "description": "A personal API token (POST /api/v1/tokens/), sent as `Authorization: Bearer <token>`.",
        }
