"""errors and the public surface: one root, unique stable codes, a complete status map, a sorted __all__."""

from __future__ import annotations

import importlib

import tokenbank
from tokenbank import errors
from tokenbank.errors import STATUS_MESSAGES, STATUS_TO_ERROR, TokenBankError, error_for
from tokenbank.status import Status


def error_classes() -> list[type[TokenBankError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, TokenBankError) and obj is not TokenBankError
    ]


def test_every_error_class_has_its_own_code() -> None:
    classes = error_classes()
    assert len(classes) >= 15
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes), codes
    assert TokenBankError.code not in codes
    assert all(code and code == code.lower() and " " not in code for code in codes)


def test_every_error_is_exported_and_has_an_http_status() -> None:
    for cls in error_classes():
        assert getattr(tokenbank, cls.__name__) is cls
        assert cls.__name__ in tokenbank.__all__
        assert 400 <= cls.http_status < 600


def test_errors_carry_their_message() -> None:
    error = tokenbank.InsufficientBalanceError("not enough")
    assert (error.message, str(error), error.code) == ("not enough", "not enough", "insufficient_balance")
    assert isinstance(error, TokenBankError) and isinstance(error, Exception)
    assert issubclass(tokenbank.StorageUnavailableError, tokenbank.StorageError)


def test_every_failure_status_maps_to_an_error() -> None:
    failures = [s for s in Status if not s.ok]
    assert set(STATUS_TO_ERROR) == set(failures) == set(STATUS_MESSAGES)
    for status in failures:
        error = error_for(status, "ctx")
        assert isinstance(error, STATUS_TO_ERROR[status])
        assert str(error).endswith(": ctx")
    assert {s for s in Status if s.ok} == {Status.OK, Status.REPLAYED}


def test_all_is_sorted_unique_and_importable() -> None:
    names = tokenbank.__all__
    assert list(names) == sorted(names)
    assert len(set(names)) == len(names)
    module = importlib.import_module("tokenbank")
    for name in names:
        assert hasattr(module, name), name
    namespace: dict[str, object] = {}
    exec("from tokenbank import *", namespace)
    assert set(names) <= set(namespace)
