"""Console pages of this app (the REST API's routes are in api/urls.py)."""

from django.urls import path

from reflow import views

urlpatterns = [
    path("reflow/", views.ReflowListView.as_view(), name="reflow-list"),
    path("reflow/export/", views.ReflowExportView.as_view(), name="reflow-export"),
    path("reflow/bulk-review/", views.ReflowBulkReviewView.as_view(), name="reflow-bulk-review"),
    path("reflow/<uuid:pk>/", views.ReflowDetailView.as_view(), name="reflow-detail"),
    path("reflow/<uuid:pk>/review/", views.ReflowReviewView.as_view(), name="reflow-review"),
]
