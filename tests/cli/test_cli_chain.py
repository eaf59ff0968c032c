"""``tokenbank keys generate``, ``chain checkpoint``, ``chain proof``, ``chain verify-proof`` and ``verify --chain``
as a user runs them: the proof checked by a fresh Python process with only the JSON file and the public key."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Cli, assert_one_line_error


def test_keys_checkpoint_proof_and_offline_verification(cli: Cli, tmp_path: Path) -> None:
    generated = cli("keys", "generate", "--out", "signing.pem", "--public-out", "pub.pem")
    assert generated.exit_code == 0, generated.output
    assert generated.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(os.stat(tmp_path / "signing.pem").st_mode) == 0o600
    assert (tmp_path / "pub.pem").read_text() == generated.stdout
    assert cli("keys", "public", "signing.pem").stdout == generated.stdout
    assert_one_line_error(cli("keys", "generate", "--out", "signing.pem"), "configuration_error")

    tx = cli.json("transfer", "treasury", "alice", "12.5")
    env = {"TOKEN_SIGNING_KEY": str(tmp_path / "signing.pem")}
    assert_one_line_error(cli("chain", "proof", tx["id"], **env), "transaction_state")
    checkpoint = cli("chain", "checkpoint", "--json", **env)
    assert checkpoint.exit_code == 0, checkpoint.output
    assert json.loads(checkpoint.stdout)["size"] == 2  # the initial mint and the transfer
    assert_one_line_error(cli("chain", "checkpoint"), "configuration_error")  # no TOKEN_SIGNING_KEY

    proof = cli("chain", "proof", tx["id"], **env)
    assert proof.exit_code == 0, proof.output
    (tmp_path / "proof.json").write_text(proof.stdout)
    checked = cli("chain", "verify-proof", "proof.json", "--public-key", "pub.pem")
    assert checked.exit_code == 0 and "valid" in checked.stdout, checked.output

    code = (
        "import sys; from tokenbank.chain import verify_proof; "
        "print(verify_proof(open(sys.argv[1]).read(), open(sys.argv[2]).read()))"
    )
    fresh = subprocess.run([sys.executable, "-c", code, "proof.json", "pub.pem"], capture_output=True, text=True,
                           cwd=tmp_path, env={"PATH": os.environ.get("PATH", "")}, check=True)  # fmt: skip
    assert fresh.stdout.strip() == "True"

    forged = json.loads(proof.stdout)
    forged["entry"]["to"] = "mallory"
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert_one_line_error(cli("chain", "verify-proof", "forged.json", "--public-key", "pub.pem"), "invalid_proof")
    cli("keys", "generate", "--out", "other.pem", "--public-out", "other-pub.pem")
    assert_one_line_error(cli("chain", "verify-proof", "proof.json", "--public-key", "other-pub.pem"), "invalid_proof")


def test_verify_chain_only(cli: Cli) -> None:
    cli("transfer", "treasury", "alice", "1")
    report = cli.json("verify", "--chain")
    assert report["ok"] and [c["name"] for c in report["checks"]] == ["chain"]
    assert report["checks"][0]["detail"].startswith("2 entries chained")
    full = cli.json("verify")
    assert "chain" in [c["name"] for c in full["checks"]] and len(full["checks"]) > 1
