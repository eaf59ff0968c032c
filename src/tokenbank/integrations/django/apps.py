"""The Django app of the integration: the ``tokenbank`` management command, and a fresh bank when
``settings.TOKENBANK`` changes (as Django's ``override_settings`` does in tests)."""

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


class TokenBankConfig(AppConfig):  # type: ignore[misc]
    name = "tokenbank.integrations.django"
    label = "tokenbank"
    verbose_name = "tokenbank"

    def ready(self) -> None:
        setting_changed.connect(_reset, dispatch_uid="tokenbank-setting-changed")


def _reset(*, setting: str, **_: Any) -> None:
    from tokenbank.integrations.django import SETTING, close_bank

    if setting == SETTING:
        close_bank()
