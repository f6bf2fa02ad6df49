"""Console pages of this app (the REST API's routes are in api/urls.py)."""

from django.urls import path

from tenancy import views

urlpatterns = [
    path("tenants/", views.TenantListView.as_view(), name="tenant-list"),
    path("tenants/new/", views.TenantCreateView.as_view(), name="tenant-create"),
    path("tenants/<slug:slug>/edit/", views.TenantEditView.as_view(), name="tenant-edit"),
    path("members/", views.MemberListView.as_view(), name="member-list"),
    path("members/add/", views.MemberAddView.as_view(), name="member-create"),
    path("members/new-user/", views.NewUserView.as_view(), name="member-user-create"),
    path("members/<int:pk>/", views.MemberEditView.as_view(), name="member-edit"),
    path("members/<int:pk>/remove/", views.MemberRemoveView.as_view(), name="member-delete"),
    path("api-keys/", views.ApiKeyListView.as_view(), name="api-key-list"),
    path("api-keys/new/", views.ApiKeyCreateView.as_view(), name="api-key-create"),
    path("api-keys/<int:pk>/revoke/", views.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("audit/", views.AuditListView.as_view(), name="audit-list"),
]
