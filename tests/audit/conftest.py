from __future__ import annotations

from tests.adminapi.conftest import alice, api, pete, readonly_api, rita  # noqa: F401  (the personas)
