"""The chain operator's key: the account that deploys the DID registry - and so owns it, the only
account allowed to register, pause and unpause - and that replays the registry's state into a
redeployed one. Deployer and operator are one account because the contract makes them one.

Where it comes from, first found wins: the environment (`ROLLBACK_DRILL_DEPLOYER_KEY`), a file
the environment names (`ROLLBACK_DRILL_DEPLOYER_KEY_FILE`, owner-only), or a stack's own key
file - a fresh random key a reference stack writes owner-only into its workdir and funds on its
dev chain. Never from code: anvil's well-known development keys are secrets like any other,
and the harness does not use them at all. The key is a `Secret` (every report and log is run
through `redact`); only the address is ever shown.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_drill.process.errors import KeyProblem
from rollback_drill.process.secrets import Secret

KEY_ENV = "ROLLBACK_DRILL_DEPLOYER_KEY"
KEY_FILE_ENV = "ROLLBACK_DRILL_DEPLOYER_KEY_FILE"
STACK_KEY_FILE = Path("secrets") / "operator-key"
"""Where a stack keeps the key it made, under its workdir."""
_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
# secp256k1's group order: a private key must be in [1, n)
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True, repr=False)
class Signer:
    """Signs transactions with the operator's key; shows only its address and source."""

    key: Secret
    address: str  # 0x..., lower case
    source: str  # which variable or file it came from, or "generated"

    def __repr__(self) -> str:
        return f"Signer({self.address}, from {self.source})"

    __str__ = __repr__

    @classmethod
    def from_hex(cls, value: str, source: str) -> Signer:
        text = value.strip()
        if not _HEX_KEY.match(text) or not 0 < int(text.removeprefix("0x"), 16) < _ORDER:
            raise KeyProblem(f"{source}: expected a 32-byte secp256k1 private key as hex")
        hexed = text.removeprefix("0x").lower()
        key = Secret("0x" + hexed)
        Secret(hexed)  # redact it with or without its prefix
        from eth_account import Account

        return cls(key, str(Account.from_key(key.reveal()).address).lower(), source)

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError as exc:
            raise KeyProblem(f"{path}: cannot read the key file ({exc.strerror})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyProblem(
                f"{path}: the key file is readable by others (mode {stat.filemode(mode)}); "
                "expected owner-only (chmod 600)"
            )
        return cls.from_hex(text, str(path))

    @classmethod
    def generate(cls) -> Signer:
        while True:
            value = secrets.token_bytes(32).hex()
            if 0 < int(value, 16) < _ORDER:
                return cls.from_hex(value, "generated")

    def write(self, path: Path) -> Path:
        """Owner-only from the first byte (never world-readable, not even for a moment)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.key.reveal() + "\n")
        path.chmod(0o600)
        return path

    def sign(self, tx: dict[str, Any]) -> tuple[str, str]:
        """The signed transaction's raw bytes and hash, both 0x-hex."""
        from eth_account import Account

        signed = Account.sign_transaction(tx, self.key.reveal())
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()


def configured() -> Signer | None:
    """The key the environment gives, if any (the variable, then the file it names)."""
    value = os.environ.get(KEY_ENV)
    if value:
        return Signer.from_hex(value, KEY_ENV)
    file = os.environ.get(KEY_FILE_ENV)
    if file:
        return Signer.from_file(Path(file))
    return None


def operator_signer(stack_workdir: Path | None = None) -> Signer:
    """The operator's key: from the environment, else the stack's own key file."""
    found = configured()
    if found is not None:
        return found
    if stack_workdir is not None and (stack_workdir / STACK_KEY_FILE).is_file():
        return Signer.from_file(stack_workdir / STACK_KEY_FILE)
    where = f" nor {stack_workdir / STACK_KEY_FILE}" if stack_workdir is not None else ""
    raise KeyProblem(
        f"no operator key: set {KEY_ENV} (hex) or {KEY_FILE_ENV} (a file, mode 600){where}"
    )
