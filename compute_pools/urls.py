"""Console pages of this app (the REST API's routes are in api/urls.py)."""

from django.urls import path

from compute_pools import views

urlpatterns = [
    path("pools/", views.PoolListView.as_view(), name="pool-list"),
    path("pools/new/", views.PoolCreateView.as_view(), name="pool-create"),
    path("pools/<slug:slug>/", views.PoolDetailView.as_view(), name="pool-detail"),
    path("pools/<slug:slug>/edit/", views.PoolEditView.as_view(), name="pool-edit"),
    path("pools/<slug:slug>/grants/<int:pk>/", views.PoolGrantEditView.as_view(), name="pool-grant-edit"),
    path("pools/<slug:slug>/grants/<int:pk>/revoke/", views.PoolGrantRevokeView.as_view(), name="pool-grant-delete"),
]
