"""schemathesis hooks of the API fuzz (loaded through ``SCHEMATHESIS_HOOKS=tests.fuzz.hooks``).

One rule: the fuzz never changes its own sign-in. A DELETE of the token it sends, or a PATCH or DELETE of its own
membership or user, would turn every later request into a 401 or 403 and leave the rest of the run testing
nothing. Such a request goes to id 0 instead, which no row has (it answers 404). ``AICP_FUZZ_PROTECTED`` holds
the ids, as JSON: ``{"tokens": [...], "memberships": [...], "users": [...]}``.
"""

from __future__ import annotations

import json
import os

import schemathesis

PROTECTED: dict[str, set] = {
    resource: {str(pk) for pk in ids} for resource, ids in json.loads(os.environ["AICP_FUZZ_PROTECTED"]).items()
}
UNUSED_ID = 0


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() not in ("PATCH", "PUT", "DELETE") or not case.path_parameters:
        return
    resource = case.path.removeprefix("/api/v1/").split("/", 1)[0]
    if str(case.path_parameters.get("id")) in PROTECTED.get(resource, ()):
        case.path_parameters["id"] = UNUSED_ID
