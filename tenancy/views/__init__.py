"""Console pages of tenancy: tenants and their quotas (platform admins), members, API keys and the audit log
(tenant admins, for the tenants they admin; platform admins, for all).

Who may open what follows the API: tenants are a platform page (404 for anyone else); members, API keys and
the audit log need the tenant-admin role somewhere (403 otherwise, as the API's ``RoleReadPermission``).
"""

from tenancy.views.api_keys import ApiKeyCreateView, ApiKeyListView, ApiKeyRevokeView
from tenancy.views.audit import AuditListView
from tenancy.views.members import MemberAddView, MemberEditView, MemberListView, MemberRemoveView, NewUserView
from tenancy.views.tenants import TenantCreateView, TenantEditView, TenantListView

__all__ = [
    "ApiKeyCreateView", "ApiKeyListView", "ApiKeyRevokeView", "AuditListView", "MemberAddView", "MemberEditView",
    "MemberListView", "MemberRemoveView", "NewUserView", "TenantCreateView", "TenantEditView", "TenantListView",
]  # fmt: skip
