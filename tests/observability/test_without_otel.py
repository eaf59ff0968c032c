"""Without opentelemetry-api the bank imports and works, its methods left unwrapped."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tokenbank import tracing


def test_otel_blocked_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    assert tracing.otel_available() is False

    class Plain:
        settings = None

        async def work(self) -> int:
            return 1

    before = Plain.work
    tracing.instrument(Plain)  # type: ignore[arg-type]
    assert Plain.work is before
    tracing.note_batch(3)  # a no-op


def test_bank_works_without_otel(tmp_path: object) -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
        from tokenbank import TokenBank

        assert not hasattr(TokenBank.transfer, "__wrapped__")

        async def main():
            async with TokenBank(database_url="sqlite+aiosqlite:///:memory:", initial_supply=10) as bank:
                await bank.transfer("treasury", "alice", "2")
                await bank.transfer_many([])
                assert await bank.get_balance("alice") == 2

        asyncio.run(main())
        assert not any(name.startswith("opentelemetry.") for name in sys.modules)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
