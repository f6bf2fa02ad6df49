"""Console pages of this app (the REST API's routes are in api/urls.py)."""

from django.urls import path

from gateways import views

urlpatterns = [
    path("gateways/", views.GatewayListView.as_view(), name="gateway-list"),
    path("gateways/new/", views.GatewayCreateView.as_view(), name="gateway-create"),
    path("gateways/<slug:slug>/", views.GatewayDetailView.as_view(), name="gateway-detail"),
    path("gateways/<slug:slug>/edit/", views.GatewayEditView.as_view(), name="gateway-edit"),
]
