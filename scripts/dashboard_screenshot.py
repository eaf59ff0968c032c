"""Take docs/images/dashboard.png: a demo economy on a SQLite file, the dashboard served by uvicorn, a headless
Debian chromium (never a downloaded browser) looking at it while transfers arrive.

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/images/dashboard.png] [--chromium /usr/bin/chromium]
                                                     [--hours 24]

The last ``--hours`` of transfers are imported with their own timestamps (so the hourly volume chart has a shape); a few
live transfers are made while the page is open, so the feed shows new rows arriving; one account is looked up.
Exit status 2 when no chromium is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn

from tokenbank import Settings, TokenBank
from tokenbank.integrations.fastapi import create_app

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PLAYERS = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj",
    "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "shop:coffee", "shop:books",
]  # fmt: skip


async def populate(bank: TokenBank, rng: random.Random, hours: int) -> None:
    """Balances for every player, then ``hours`` of imported transfers whose volume follows the hours of a day."""
    for rank, player in enumerate(PLAYERS):
        await bank.mint(player, str(20_000 // (rank + 1) + rng.randint(50, 400)), reason="welcome bonus")
    now = datetime.now(UTC)
    moments = []
    for hours_ago in range(hours - 1, -1, -1):
        start = (now - timedelta(hours=hours_ago)).replace(minute=0, second=0, microsecond=0)
        busy = 0.5 + 0.5 * abs(((start.hour + 12) % 24) - 12) / 12  # quieter at night (UTC)
        for _ in range(int(6 + 18 * busy * rng.random())):
            elapsed = min(3599.0, (now - start).total_seconds() - 5)
            moments.append(start + timedelta(seconds=rng.uniform(0, elapsed)))
    for at in sorted(moments):  # imported in time order, as they would have happened
        sender, receiver = rng.sample(PLAYERS[:12], 2)
        amount = f"{rng.randint(1, 120)}.{rng.randint(0, 99):02d}"
        await bank.transactions.record_transaction(
            {"type": "transfer", "from_user_id": sender, "to_user_id": receiver, "amount": amount, "timestamp": at}
        )


async def shoot(out: Path, chromium: Path, folder: Path, hours: int) -> None:
    from playwright.async_api import async_playwright

    rng = random.Random(7)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder}/demo.db", name="Gems", symbol="GEM",
        initial_supply=1_000_000, max_supply=5_000_000, hold_sweep_interval=0,
    )  # fmt: skip
    async with TokenBank(settings) as bank:
        await populate(bank, rng, hours)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        app = create_app(bank=bank, allow_unauthenticated=True)
        config = uvicorn.Config(app, lifespan="off", log_level="warning", ws="none", timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if serving.done():
                    serving.result()
                    raise RuntimeError("uvicorn stopped during startup")
                await asyncio.sleep(0.02)
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/dashboard"
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=str(chromium), args=LAUNCH_ARGS)
                page = await browser.new_page(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
                await page.goto(url)
                await page.wait_for_selector("#feed-state.live")
                await page.wait_for_selector("#volume-chart svg")
                for sender, receiver, amount in (("alice", "shop:coffee", "4.50"), ("bob", "carol", "25"),
                                                 ("dave", "shop:books", "18.90")):  # fmt: skip
                    await bank.transfer(sender, receiver, amount)
                await page.fill("#lookup-id", "alice")
                await page.click("#lookup-form button")
                await page.wait_for_selector("#history tbody tr")
                await page.wait_for_selector('#feed tbody tr[data-id] >> text="shop:books"')
                await page.wait_for_timeout(600)  # the new rows' highlight, half faded
                out.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(out), full_page=True)
                await browser.close()
        finally:
            server.should_exit = True
            await serving
            sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--hours", type=int, default=24, choices=range(1, 25), metavar="1-24", help="hours of history")
    args = parser.parse_args(argv)
    if not args.chromium.is_file():
        print(f"no chromium at {args.chromium} (scripts/browser.sh installs Debian's)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(shoot(args.out, args.chromium, Path(folder), args.hours))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
