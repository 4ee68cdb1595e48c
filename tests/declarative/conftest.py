from __future__ import annotations

import pytest

from tests.adminapi.conftest import alice, api, pete, readonly_api, rita  # noqa: F401  (the personas)


@pytest.fixture
def configured(db: None) -> None:
    from tests.adminapi.factories import rich_config

    rich_config()
