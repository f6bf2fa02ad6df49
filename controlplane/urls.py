from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from controlplane.health import healthz, readyz
from controlplane.metrics import metrics_view

urlpatterns = [
    # For the kubelet and Prometheus: open, GET/HEAD only, answered over plain HTTP too (SECURE_REDIRECT_EXEMPT).
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("controlplane.console.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("controlplane.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api-auth/", include("rest_framework.urls")),
]

# JSON for /api/ addresses, the default pages elsewhere (controlplane/api/exceptions.py).
handler400 = "controlplane.api.exceptions.bad_request"
handler404 = "controlplane.api.exceptions.not_found"
handler500 = "controlplane.api.exceptions.server_error"
