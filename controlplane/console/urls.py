"""The console's URLs: sign-in, the dashboard, and each app's pages (``<app>/urls.py``), all in the ``console``
namespace so that templates name pages as ``console:task-detail``."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from controlplane.console.views import DashboardView

app_name = "console"

urlpatterns = [
    path("", DashboardView.as_view(), name="dashboard"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("tenancy.urls")),
    path("", include("compute_pools.urls")),
    path("", include("gateways.urls")),
    path("", include("catalog.urls")),
    path("", include("inference_jobs.urls")),
    path("", include("reflow.urls")),
]
