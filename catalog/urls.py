"""Console pages of this app (the REST API's routes are in api/urls.py)."""

from django.urls import path

from catalog import views

urlpatterns = [
    path("models/", views.ModelListView.as_view(), name="model-list"),
    path("models/upload/", views.ModelUploadView.as_view(), name="model-upload"),
    path("models/<int:pk>/", views.ModelDetailView.as_view(), name="model-detail"),
    path("models/<int:pk>/delete/", views.ModelDeleteView.as_view(), name="model-delete"),
    path("images/", views.RuntimeImageListView.as_view(), name="image-list"),
    path("images/new/", views.RuntimeImageCreateView.as_view(), name="image-create"),
    path("images/<slug:slug>/publish/", views.RuntimeImagePublishView.as_view(), name="image-publish"),
]
