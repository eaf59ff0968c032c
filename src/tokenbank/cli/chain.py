"""``tokenbank keys generate|public`` and ``tokenbank chain checkpoint|proof|verify-proof``: the signing key, signed
checkpoints, and inclusion proofs that anyone checks offline with the public key (see docs/chain.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from tokenbank.chain import InclusionProof, SigningKey, verify_proof
from tokenbank.cli import render
from tokenbank.cli.runtime import state_of

keys_app = typer.Typer(name="keys", help="The Ed25519 key that signs chain checkpoints.", no_args_is_help=True)
chain_app = typer.Typer(
    name="chain",
    help="The journal's hash chain: signed checkpoints and inclusion proofs verifiable offline.",
    no_args_is_help=True,
)

_DEFAULT = Path("tokenbank-signing.pem")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@keys_app.command("generate")
def generate(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the private key (PEM PKCS#8, mode 0600).")
    ] = Path("tokenbank-signing.pem"),
    public_out: Annotated[
        Path | None, typer.Option("--public-out", help="Also write the public key (PEM) there.", show_default=False)
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key file.")] = False,
) -> None:
    """Create a signing key; set TOKEN_SIGNING_KEY to its path. Prints the public key, which verifiers need."""
    state = state_of(ctx)
    with state.handled():
        key = SigningKey.generate()
        key.write(out, overwrite=force)
        if public_out is not None:
            public_out.write_text(key.public_pem())
    state.err.print(Text(f"wrote {out} (key id {key.key_id}); set TOKEN_SIGNING_KEY={out}"))
    typer.echo(key.public_pem(), nl=False)


@keys_app.command("public")
def public(ctx: typer.Context, path: Annotated[Path, typer.Argument(help="A private key file (PEM PKCS#8).")]) -> None:
    """Print the public key (PEM) of a private key file."""
    state = state_of(ctx)
    with state.handled():
        typer.echo(SigningKey.from_file(path).public_pem(), nl=False)


@chain_app.command("checkpoint")
def checkpoint(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Seal the chain and sign a checkpoint over the entries since the last one (TOKEN_SIGNING_KEY)."""
    state = state_of(ctx)
    cp = state.run(lambda bank: bank.chain.checkpoint())
    if as_json:
        render.emit_json(cp.as_dict())
        return
    state.out.print(
        Text(
            f"checkpoint {cp.token} seq {cp.first_seq}..{cp.seq} ({cp.size} entries)\nroot {cp.root}\n"
            f"head {cp.head}\nsigned by key {cp.key_id}: {cp.signature}"
        )
    )


@chain_app.command("proof")
def proof(ctx: typer.Context, tx_id: Annotated[str, typer.Argument(help="The transaction id.")]) -> None:
    """Print the inclusion proof (JSON) of a transaction in the checkpoint that covers it."""
    state = state_of(ctx)
    found = state.run(lambda bank: bank.chain.proof(tx_id))
    typer.echo(found.to_json())


@chain_app.command("verify-proof")
def verify_proof_command(
    ctx: typer.Context,
    proof_file: Annotated[Path, typer.Argument(help="A proof written by `tokenbank chain proof`.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The signer's public key (PEM).")],
) -> None:
    """Check a proof offline (no store is opened); exit 1 if it does not hold."""
    state = state_of(ctx)
    with state.handled():
        text = proof_file.read_text()
        ok = verify_proof(text, public_key.read_bytes())
    if not ok:
        state.fail("invalid_proof", f"{proof_file} does not prove its transaction under {public_key}")
    entry = InclusionProof.from_json(text).entry
    state.out.print(
        Text(f"valid: transaction {entry.id} (seq {entry.seq}) of {entry.token} is in the signed checkpoint")
    )


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app)
    app.add_typer(chain_app)
