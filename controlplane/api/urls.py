"""``/api/v1/``: each app registers its viewsets on this one router (see ``<app>/api/urls.py``)."""

from rest_framework.routers import DefaultRouter

import controlplane.api.schema  # noqa: F401  (registers the OpenAPI extensions)
from catalog.api.urls import register as register_catalog
from compute_pools.api.urls import register as register_compute_pools
from gateways.api.urls import register as register_gateways
from inference_jobs.api.urls import register as register_inference_jobs
from reflow.api.urls import register as register_reflow
from reflow.api.urls import urlpatterns as reflow_urls
from telemetry.api.urls import register as register_telemetry
from telemetry.api.urls import urlpatterns as telemetry_urls
from tenancy.api.urls import register as register_tenancy

router = DefaultRouter()
for register in (
    register_tenancy,
    register_compute_pools,
    register_gateways,
    register_catalog,
    register_inference_jobs,
    register_telemetry,
    register_reflow,
):
    register(router)

urlpatterns = [*router.urls, *telemetry_urls, *reflow_urls]
