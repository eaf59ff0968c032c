"""Django integration: ``get_bank()``, one blocking bank per process configured by ``settings.TOKENBANK`` (a dict
of :class:`~tokenbank.Settings` fields), and the management command ``tokenbank``. Needs
``pip install 'tokenbank[django]'``; add ``"tokenbank.integrations.django"`` to ``INSTALLED_APPS`` for the command.

::

    from tokenbank.integrations.django import get_bank

    def balance(request, user_id):
        return JsonResponse({"balance": str(get_bank().get_balance(user_id))})
"""

from tokenbank.errors import ConfigurationError

try:
    import django as _django  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    raise ConfigurationError("the Django integration needs Django: pip install 'tokenbank[django]'") from None

from django.conf import settings as _django_settings

from tokenbank.blocking import TokenBank
from tokenbank.integrations._shared import LazyBank, settings_from
from tokenbank.settings import Settings

__all__ = ["SETTING", "bank_settings", "close_bank", "get_bank"]

SETTING = "TOKENBANK"
"""The Django setting read: a dict of tokenbank Settings fields."""


def bank_settings() -> Settings:
    """``Settings`` from ``settings.TOKENBANK`` (missing fields from the environment, then the defaults).
    Raises ConfigurationError naming the bad field."""
    return settings_from(getattr(_django_settings, SETTING, None), f"settings.{SETTING}")


_bank = LazyBank(bank_settings)


def get_bank() -> TokenBank:
    """The process-wide blocking bank, opened on first use (thread-safe: views, management commands and task
    workers share it) and closed at exit. Raises what :meth:`TokenBank.open` raises."""
    return _bank.get()


def close_bank() -> None:
    """Close the process-wide bank now; the next :func:`get_bank` opens a new one (tests, changed settings)."""
    _bank.close()
