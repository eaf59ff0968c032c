"""Configuration from arguments or the environment, under the seed's variable names."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ModelWrapValidatorHandler, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from tokenbank.errors import ConfigurationError, InvalidAmountError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///tokenbank.db"


class StorageMode(StrEnum):
    SQL = "sql"
    REDIS = "redis"
    HYBRID = "hybrid"


_MODE_ALIASES = {"postgres-only": "sql", "postgres": "sql", "redis-only": "redis"}


def _env(name: str, field_name: str) -> Any:
    """A field readable as ``field_name=`` in Python or ``name`` in the environment."""
    return AliasChoices(field_name, name)


class Settings(BaseSettings):
    """Every knob of a TokenBank. Environment names are the ``TOKEN_*`` / ``*_URL`` variables."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    storage_mode: StorageMode = Field(StorageMode.SQL, validation_alias=_env("TOKEN_STORAGE_MODE", "storage_mode"))
    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias=_env("DATABASE_URL", "database_url"))
    database_read_url: str | None = Field(None, validation_alias=_env("DATABASE_READ_URL", "database_read_url"))
    """A PostgreSQL streaming replica of DATABASE_URL serving history, leaderboard, rank, balance_at and analytics
    (a bank still reads its own writes: see docs/deployment.md, "Read replicas")."""
    replica_wait_ms: int = Field(
        200, ge=0, le=60_000, validation_alias=_env("TOKEN_REPLICA_WAIT_MS", "replica_wait_ms")
    )
    """How long a replica read waits for the replica to replay this bank's last write before reading the primary."""
    database_schema: str | None = Field(None, validation_alias=_env("TOKEN_DATABASE_SCHEMA", "database_schema"))
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("REDIS_URL", "redis_url"))
    """One server (``redis://``, ``rediss://``) or a Redis Cluster (``redis+cluster://host:port[,host:port...]``)."""
    redis_wait_replicas: int = Field(
        0, ge=0, le=16, validation_alias=_env("TOKEN_REDIS_WAIT_REPLICAS", "redis_wait_replicas")
    )
    """Each Redis write call waits (WAIT, up to 100 ms) until this many replicas have it, else raises
    StorageUnavailableError: a failover then loses no acknowledged write. 0: no wait (replication is asynchronous)."""
    name: str = Field("Token", min_length=1, max_length=100, validation_alias=_env("TOKEN_NAME", "name"))
    symbol: str = Field("TOKEN", validation_alias=_env("TOKEN_SYMBOL", "symbol"))
    emoji: str | None = Field(None, max_length=16, validation_alias=_env("TOKEN_EMOJI", "emoji"))
    decimals: int = Field(2, ge=0, le=18, validation_alias=_env("TOKEN_DECIMALS", "decimals"))
    initial_supply: Decimal = Field(Decimal(0), ge=0, validation_alias=_env("TOKEN_INITIAL_SUPPLY", "initial_supply"))
    max_supply: Decimal | None = Field(None, gt=0, validation_alias=_env("TOKEN_MAX_SUPPLY", "max_supply"))
    treasury_account: str = Field(
        "treasury", min_length=1, max_length=128, validation_alias=_env("TOKEN_TREASURY_ACCOUNT", "treasury_account")
    )
    breakage_account: str = Field(
        "breakage", min_length=1, max_length=128, validation_alias=_env("TOKEN_BREAKAGE_ACCOUNT", "breakage_account")
    )
    """The account that receives what is left of credit lots when they expire."""
    lot_expiry_warning: float = Field(
        86400.0, ge=0, le=366 * 86400, validation_alias=_env("TOKEN_LOT_EXPIRY_WARNING", "lot_expiry_warning")
    )
    """Seconds before a credit lot expires that the event pass sends its ``lot.expiring`` webhook event (0: none)."""
    leaderboard_exclude: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        None, validation_alias=_env("TOKEN_LEADERBOARD_EXCLUDE", "leaderboard_exclude")
    )
    hot_accounts: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("TOKEN_HOT_ACCOUNTS", "hot_accounts")
    )
    """PostgreSQL: accounts split into slices that concurrent debits lock one each, ``account:slices`` separated by
    commas (``treasury:8``; ``:1`` joins an account back). See docs/hot-accounts.md."""
    auto_create: bool = Field(True, validation_alias=_env("TOKEN_AUTO_CREATE", "auto_create"))
    """Opening a bank creates a missing token (with these settings); off: it raises TokenNotInitializedError."""
    auto_migrate: bool = Field(True, validation_alias=_env("TOKEN_AUTO_MIGRATE", "auto_migrate"))
    """Opening a bank brings the SQL schema to this release's head; off: a schema behind it raises
    ConfigurationError and ``tokenbank migrate`` (a deploy step, run by a role that may change the schema) does it."""
    usd_price: Decimal | None = Field(None, ge=0, validation_alias=_env("TOKEN_USD_PRICE", "usd_price"))
    key_prefix: str = Field("tb", min_length=1, max_length=32, validation_alias=_env("TOKEN_KEY_PREFIX", "key_prefix"))
    ledger_group: str | None = Field(None, validation_alias=_env("TOKEN_LEDGER_GROUP", "ledger_group"))
    """Redis: tokens of one group share one hash tag (one cluster slot), so one script can exchange between them
    (see docs/exchange.md). None: the token's keys are tagged by its own symbol (the default layout)."""
    enable_leaderboard: bool = Field(True, validation_alias=_env("TOKEN_ENABLE_LEADERBOARD", "enable_leaderboard"))
    enable_notifications: bool = Field(
        True, validation_alias=_env("TOKEN_ENABLE_NOTIFICATIONS", "enable_notifications")
    )
    enable_audit_log: bool = Field(True, validation_alias=_env("TOKEN_ENABLE_AUDIT_LOG", "enable_audit_log"))
    enable_synchronization: bool = Field(
        True, validation_alias=_env("TOKEN_ENABLE_SYNCHRONIZATION", "enable_synchronization")
    )
    background: Literal["inline", "none"] = Field("inline", validation_alias=_env("TOKEN_BACKGROUND", "background"))
    """``inline``: the bank runs its background loops (hold sweeper, hybrid sync) in the app's process. ``none``:
    it runs none of them; ``tokenbank worker`` does, in a process of its own."""
    hold_sweep_interval: float = Field(
        1.0, ge=0, le=3600, validation_alias=_env("TOKEN_HOLD_SWEEP_INTERVAL", "hold_sweep_interval")
    )
    history_retention: int = Field(
        10_000, ge=100, le=10_000_000, validation_alias=_env("TOKEN_HISTORY_RETENTION", "history_retention")
    )
    stream_maxlen: int = Field(1_000_000, ge=0, validation_alias=_env("TOKEN_STREAM_MAXLEN", "stream_maxlen"))
    batch_writes: bool = Field(True, validation_alias=_env("TOKEN_BATCH_WRITES", "batch_writes"))
    write_concurrency: int = Field(
        0, ge=0, le=64, validation_alias=_env("TOKEN_WRITE_CONCURRENCY", "write_concurrency")
    )
    sync_lag_degraded_seconds: float = Field(
        30.0, gt=0, validation_alias=_env("TOKEN_SYNC_LAG_DEGRADED_SECONDS", "sync_lag_degraded_seconds")
    )
    max_retries: int = Field(8, ge=0, le=100, validation_alias=_env("TOKEN_MAX_RETRIES", "max_retries"))
    pool_size: int = Field(10, ge=1, le=1000, validation_alias=_env("TOKEN_POOL_SIZE", "pool_size"))
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("TOKEN_LOG_FORMAT", "log_format"))
    """``json``: the ``tokenbank`` logger writes one JSON object per line (see tokenbank/logs.py)."""
    signing_key: str | None = Field(None, validation_alias=_env("TOKEN_SIGNING_KEY", "signing_key"))
    """Path of the PEM PKCS#8 Ed25519 private key that signs chain checkpoints (``tokenbank keys generate``)."""
    webhook_retry_hours: float = Field(
        24.0, gt=0, le=24 * 30, validation_alias=_env("TOKEN_WEBHOOK_RETRY_HOURS", "webhook_retry_hours")
    )
    """How long a failing webhook delivery is retried (with exponential backoff) before it is dead-lettered."""

    @field_validator("storage_mode", mode="before")
    @classmethod
    def _mode_alias(cls, value: Any) -> Any:
        return _MODE_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", value):
            raise ValueError("must be 1-16 letters, digits, '_' or '-'")
        return value

    @field_validator("ledger_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
            raise ValueError("must be 1-32 letters, digits, '_' or '-'")
        return value

    @field_validator("database_schema")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError("must be a lower-case SQL identifier")
        return value

    @field_validator("leaderboard_exclude", mode="before")
    @classmethod
    def _split_exclude(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("hot_accounts", mode="before")
    @classmethod
    def _split_hot(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        accounts: dict[str, str] = {}
        for part in filter(None, (part.strip() for part in value.split(","))):
            account, separator, slices = part.rpartition(":")
            if not separator or not account.strip():
                raise ValueError(f"{part!r}: write account:slices, e.g. treasury:8")
            accounts[account.strip()] = slices.strip()
        return accounts

    @field_validator("hot_accounts")
    @classmethod
    def _hot_in_range(cls, value: dict[str, int]) -> dict[str, int]:
        for account, slices in value.items():
            if not 1 <= len(account) <= 128:
                raise ValueError(f"{account!r}: an account id is 1-128 characters")
            if not 1 <= slices <= 64:
                raise ValueError(f"{account}: {slices} slices; an account has 1 to 64")
        return value

    @model_validator(mode="after")
    def _read_url_is_postgres(self) -> Settings:
        if self.database_read_url is not None:
            if _url_family(self.database_read_url) != "postgresql":
                raise ValueError("database_read_url: must be a PostgreSQL URL (postgresql+asyncpg://...)")
            if _url_family(self.database_url) != "postgresql":
                raise ValueError("database_read_url: a read replica needs DATABASE_URL on PostgreSQL too")
        return self

    @model_validator(mode="after")
    def _amounts_fit(self) -> Settings:
        from tokenbank.amounts import to_base_units

        for field_name in ("initial_supply", "max_supply"):
            value = getattr(self, field_name)
            if value:
                try:
                    to_base_units(value, self.decimals)
                except InvalidAmountError as exc:
                    raise ValueError(f"{field_name}: {exc}") from None
        if self.max_supply is not None and self.initial_supply > self.max_supply:
            raise ValueError("initial_supply: is larger than max_supply")
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _configuration_error(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        # Settings(...) itself, not only Settings.load(), fails with one ConfigurationError naming the variable.
        # Defined after every other model validator so that it wraps them all (pydantic nests them in order).
        try:
            return handler(data)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc)) from None

    @property
    def excluded_accounts(self) -> tuple[str, ...]:
        """The leaderboard exclusions these settings give a token they create (the treasury by default); an open
        bank uses the stored token's own (``TokenInfo.leaderboard_exclude``)."""
        return self.leaderboard_exclude if self.leaderboard_exclude is not None else (self.treasury_account,)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build settings from the environment and ``overrides`` (the same as ``Settings(**overrides)``).
        Raises ConfigurationError naming the variable."""
        return cls(**overrides)

    @classmethod
    def from_arguments(cls, **values: Any) -> Settings:
        """Settings from ``values`` and the defaults alone: no environment variable and no ``.env`` file is read
        (for demos and tests, which must never reach the ledger the environment points at). Raises
        ConfigurationError."""
        return _ArgumentsOnly(**values)


class _ArgumentsOnly(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _url_family(url: str) -> str:
    """The database a URL names, without its driver (``postgresql+asyncpg://`` -> ``postgresql``)."""
    return url.split(":", 1)[0].split("+", 1)[0].lower()


_ENV_NAMES = {
    name: next((a for a in field.validation_alias.choices if isinstance(a, str) and a.isupper()), name)
    for name, field in Settings.model_fields.items()
    if isinstance(field.validation_alias, AliasChoices)
}


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field_name = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if not field_name and ":" in message:
            field_name, message = (part.strip() for part in message.split(":", 1))
        env_name = _ENV_NAMES.get(field_name, field_name or "configuration")
        parts.append(f"{env_name}: {message}")
    return "invalid configuration: " + "; ".join(parts)
