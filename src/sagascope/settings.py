"""The one settings object: flags over ``SAGASCOPE_*`` environment variables over ``sagascope.toml``.

Every scalar setting ``<section>.<name>`` can be set in the TOML file under ``[<section>]``,
by the environment variable ``SAGASCOPE_<SECTION>_<NAME>`` (upper case), or by a CLI flag.
Lists of rules (correlation, redaction, status and threshold rules) live only in the file.
Applications call :func:`load_settings`; libraries take arguments and never read the environment.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagascope.exceptions import ConfigError

#: Path of the TOML file; default ``./sagascope.toml`` when it exists.
ENV_CONFIG_FILE = "SAGASCOPE_CONFIG"
DEFAULT_CONFIG_FILE = "sagascope.toml"
ENV_PREFIX = "SAGASCOPE_"


@dataclass(frozen=True)
class BrokerSettings:
    #: Kafka bootstrap servers; empty means "start the embedded Tansu broker" (demo only).
    bootstrap_servers: str = ""
    #: Client id prefix used by every sagascope Kafka client.
    client_id: str = "sagascope"
    #: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL`` (Kafka's ``security.protocol``).
    security_protocol: str = "PLAINTEXT"
    #: PEM file of the CA(s) that signed the broker's certificate; empty trusts the system CAs.
    ssl_cafile: str = ""
    #: PEM client certificate (and chain) for mutual TLS; needs ``ssl_keyfile``.
    ssl_certfile: str = ""
    #: PEM private key of ``ssl_certfile``.
    ssl_keyfile: str = ""
    #: Password of an encrypted ``ssl_keyfile`` (secret: prefer ``ssl_key_password_file``).
    ssl_key_password: str = field(default="", repr=False)
    #: File holding ``ssl_key_password`` (as container secrets are mounted).
    ssl_key_password_file: str = ""
    #: Check that the broker's certificate names the host connected to.
    ssl_check_hostname: bool = True
    #: ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512`` or ``OAUTHBEARER`` (with SASL_* protocols).
    sasl_mechanism: str = "PLAIN"
    #: SASL user name (PLAIN, SCRAM).
    sasl_username: str = ""
    #: SASL password (secret: prefer ``SAGASCOPE_BROKER_SASL_PASSWORD`` or ``sasl_password_file``).
    sasl_password: str = field(default="", repr=False)
    #: File holding ``sasl_password``.
    sasl_password_file: str = ""
    #: OAUTHBEARER token provider ``module:callable``; the callable returns an access token (str).
    sasl_oauth_token_provider: str = ""
    #: How long start-up waits for the broker before it names the setting that is wrong.
    connect_timeout_s: float = 15.0


@dataclass(frozen=True)
class StoreSettings:
    #: ClickHouse server URL (``http://user:pass@host:8123/db``); empty means embedded chDB.
    url: str = ""
    #: chDB data directory for the embedded store.
    path: str = ".sagascope/store"
    #: Database holding the sagascope tables.
    database: str = "sagascope"
    #: ClickHouse cluster name; when set, DDL runs ``ON CLUSTER`` with Replicated + Distributed tables.
    cluster: str = ""
    #: ClickHouse user; overrides a user in ``url`` (keep passwords out of the URL: ``ps`` shows it).
    username: str = ""
    #: ClickHouse password (secret: prefer ``SAGASCOPE_STORE_PASSWORD`` or ``password_file``).
    password: str = field(default="", repr=False)
    #: File holding ``password``.
    password_file: str = ""
    #: PEM CA file that signed the server's certificate (``https://`` URLs); empty: system CAs.
    ca_file: str = ""
    #: Verify the server's TLS certificate (``https://`` URLs).
    verify_tls: bool = True
    #: Memory the embedded store's caches may hold together (marks, primary indexes, query
    #: conditions, compiled expressions; uncompressed blocks are not cached).
    chdb_cache_mb: int = 64
    #: The embedded store's total memory limit (a query or insert beyond it fails and is
    #: retried); 0: chDB's own, 90 % of the machine's memory.
    chdb_memory_limit_mb: int = 0


@dataclass(frozen=True)
class TypeMeaning:
    """What a message type means on a rule's topics (one entry of ``types``): its kind, the
    step it belongs to, the saga outcome it marks and the step it undoes."""

    type: str
    #: ``command`` or ``event``.
    kind: str = ""
    step: str = ""
    #: ``completed``, ``failed``, ``compensating`` or ``compensated``.
    status: str = ""
    #: The step this message undoes (as ``ce_compensates``), e.g. ``ProcessPayment``.
    compensates: str = ""


@dataclass(frozen=True)
class OutcomeValue:
    """A value of a rule's ``outcome`` field and the saga status it marks (one ``outcomes`` entry)."""

    value: str
    status: str


@dataclass(frozen=True)
class CorrelationRule:
    """How to tie messages on matching topics to their saga when they lack contract headers.

    Each field is a source: a JSON pointer (``/order/id``) into the JSON payload, a regex
    (``re:order-(\\d+)``) over the raw payload whose first group is the value, a header
    (``header:x-correlation-id``), the Kafka ``key`` or the ``topic`` name.
    """

    topic: str
    saga_id: str = ""
    saga_type: str = ""
    type: str = ""
    event_time: str = ""
    source: str = ""
    #: Constant saga type when the payload does not carry one.
    saga_type_value: str = ""
    #: Use the Kafka key as saga id when ``saga_id`` finds nothing.
    key_fallback: bool = True
    #: Constant message type when no ``type`` source is set or it finds nothing.
    type_value: str = ""
    kind: str = ""
    step: str = ""
    #: Where a message says its outcome (``/success``, ``/status``, ``header:outcome``) ...
    outcome: str = ""
    #: ... and which of its values mark which saga status.
    outcomes: tuple[OutcomeValue, ...] = ()
    #: Where a message names the step it undoes.
    compensates: str = ""
    #: What each message type means on these topics (kind, step, status, compensates).
    types: tuple[TypeMeaning, ...] = ()


@dataclass(frozen=True)
class RedactionRule:
    """Replace a payload value before it is stored: by JSON field path or by value pattern."""

    #: JSON pointer with ``*`` for any key or index, e.g. ``/payment/card/number`` or ``/*/cvv``.
    path: str = ""
    #: Regex over string values (and over non-JSON payload text), e.g. a card number pattern.
    pattern: str = ""
    replacement: str = "[REDACTED]"
    #: Topic regex the rule applies to; empty means every topic.
    topic: str = ""


@dataclass(frozen=True)
class CollectorSettings:
    group_id: str = "sagascope-collector"
    #: Topics to consume (regex, matched against the full name).
    include: str = ".*"
    #: Topics never consumed (regex); sagascope's own alert topic and Kafka internals.
    exclude: str = r"^(__.*|_sagascope\.alerts)$"
    batch_rows: int = 20000
    #: Longest a decoded row waits before its batch is inserted. A record becomes queryable
    #: within about this plus one insert: 0.5 keeps publish-to-queryable p99 under 1 s
    #: (bench/bench_collector.py), at two small inserts a second when traffic is low.
    flush_interval_s: float = 0.5
    #: Payloads above this size are stored truncated (size and SHA-256 of the whole kept).
    payload_cap_bytes: int = 65536
    #: Port of the Prometheus metrics endpoint; 0 disables it.
    metrics_port: int = 0
    #: Topic the instrumentation's span exporter writes to.
    telemetry_topic: str = "_sagascope.spans"
    #: kafka-python's max_poll_interval_ms, which is also the rebalance timeout on join.
    max_poll_interval_ms: int = 10000
    #: Group session timeout (heartbeats every third of it). Joins on Tansu wait about
    #: max(this, max_poll_interval_ms); 6000 is the lowest a stock Kafka broker accepts.
    session_timeout_ms: int = 6000
    #: How often the topic list is re-read to pick up new topics matching ``include``.
    topic_refresh_s: float = 5.0
    #: Child processes that parse the fetched record batches and decode their records (each
    #: partition always in the same one), beside the collector thread's polling and the
    #: store's inserts; 0 decodes in the collector thread. See bench/bench_collector.py.
    decode_workers: int = 2
    correlation: tuple[CorrelationRule, ...] = ()
    redaction: tuple[RedactionRule, ...] = ()
    #: Kafka client the collector consumes with: ``kafka-python`` or ``confluent-kafka``
    #: (librdkafka; needs the ``confluent`` extra).
    client: str = "kafka-python"
    #: Where a partition the store holds nothing of starts: ``earliest`` (the oldest record
    #: Kafka retains) or ``latest`` (only records produced from now on). Partitions the store
    #: holds rows of always resume right after them; committed group offsets never decide.
    start_from: str = "earliest"
    #: How often a progress line (stored, rate, lag) is logged while catching up; 0: never.
    progress_log_s: float = 10.0


@dataclass(frozen=True)
class StatusRule:
    """Derive a saga outcome from a message type, for services that do not send ``ce_sagastatus``."""

    type: str
    status: str
    saga_type: str = ""


@dataclass(frozen=True)
class ThresholdRule:
    """How long a saga of a type may stay silent after a step before it is stalled
    (``*`` matches any): a fixed threshold, a learned one, or learned with a fixed fallback.
    One ``[[alerts.rules]]`` table."""

    saga_type: str = "*"
    step: str = "*"
    #: Fixed threshold in seconds (0: none; then ``learn_percentile`` must be set).
    threshold_s: float = 0.0
    #: Learn the threshold: this percentile of the step's historical transition time ...
    learn_percentile: float = 0.0
    #: ... times this factor ...
    learn_factor: float = 2.0
    #: ... never below this floor ...
    learn_floor_s: float = 1.0
    #: ... and only with at least this many samples (else ``threshold_s`` or the default).
    learn_min_samples: int = 20


@dataclass(frozen=True)
class AlertSettings:
    interval_s: float = 5.0
    #: Threshold (seconds of silence before a saga is stalled) where no rule matches.
    default_threshold_s: float = 300.0
    #: Sinks: any of ``log``, ``webhook``, ``kafka``, ``alertmanager`` (comma separated).
    sinks: str = "log"
    webhook_url: str = ""
    #: Per-attempt timeout of the webhook and Kafka sinks.
    sink_timeout_s: float = 5.0
    #: Retries of the webhook and Kafka sinks after a failed attempt.
    sink_retries: int = 5
    #: First retry delay of the webhook and Kafka sinks; doubles per attempt up to the max.
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 30.0
    kafka_topic: str = "_sagascope.alerts"
    #: How often learned thresholds are recomputed, and over how much history.
    learn_refresh_s: float = 60.0
    learn_window_s: float = 7 * 86400.0
    rules: tuple[ThresholdRule, ...] = ()
    status_rules: tuple[StatusRule, ...] = ()
    #: Alertmanager base URLs (comma separated; every one gets every alert, for HA), used by
    #: the ``alertmanager`` sink: alerts are POSTed to ``<url>/api/v2/alerts``.
    alertmanager_urls: str = ""
    #: The ``severity`` label of alerts sent to Alertmanager.
    alertmanager_severity: str = "warning"
    #: Open alerts are re-sent to Alertmanager this often (Prometheus's default is 60 s);
    #: each carries an ``endsAt`` four intervals ahead, as Prometheus does.
    alertmanager_resend_s: float = 60.0
    #: Port of the saga metrics endpoint (``/metrics``) of ``sagascope alert`` and
    #: ``sagascope demo``; 0 disables it in ``alert`` and picks a free port in ``demo``.
    metrics_port: int = 0
    #: Address the saga metrics endpoint listens on.
    metrics_host: str = "127.0.0.1"


@dataclass(frozen=True)
class DashboardSettings:
    host: str = "127.0.0.1"
    port: int = 8501
    #: Base URL the alerts link to (``<public_url>/flow_explorer?saga=<id>``), as the people
    #: opening them reach the dashboard (e.g. behind a proxy); empty: ``http://host:port``.
    public_url: str = ""
    refresh_s: float = 10.0
    #: Link from a trace id to the team's tracer, ``{trace_id}`` replaced, e.g.
    #: ``http://jaeger:16686/trace/{trace_id}`` or a Grafana Tempo explore URL; empty: no link.
    trace_url: str = ""
    #: Shared password (or token) the login asks for when served beyond loopback (secret:
    #: prefer ``SAGASCOPE_DASHBOARD_PASSWORD`` or ``password_file``).
    password: str = field(default="", repr=False)
    #: File holding ``password``.
    password_file: str = ""
    #: OpenID Connect provider for ``st.login``: its ``.well-known/openid-configuration`` URL.
    oidc_server_metadata_url: str = ""
    oidc_client_id: str = ""
    #: OIDC client secret (secret: prefer ``SAGASCOPE_DASHBOARD_OIDC_CLIENT_SECRET`` or the file).
    oidc_client_secret: str = field(default="", repr=False)
    oidc_client_secret_file: str = ""
    #: Hide message payloads from the flow view (headers and payload size/hash stay).
    hide_payloads: bool = False
    #: Every page, ``flow`` and ``stalled`` warn when the collector's watermark or the newest
    #: message is older than this many seconds.
    stale_after_s: float = 300.0

    @property
    def link_url(self) -> str:
        """Base of every link to the dashboard: ``public_url``, else where it listens (this
        machine's name when it listens on every address)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = socket.gethostname() if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"


@dataclass(frozen=True)
class ServiceFaults:
    """Fault settings of one demo service; unset fields fall back to ``[demo]``."""

    service: str
    drop_rate: float | None = None
    duplicate_rate: float | None = None
    error_rate: float | None = None
    latency_ms: float | None = None
    clock_skew_s: float | None = None


@dataclass(frozen=True)
class DemoSettings:
    #: Sagas started per second across the four saga types.
    rate: float = 2.0
    seed: int = 7
    #: Fraction of sagas that hit an injected failure.
    failure_rate: float = 0.15
    #: Fraction of messages dropped (stalled sagas).
    drop_rate: float = 0.03
    duplicate_rate: float = 0.02
    latency_ms: float = 50.0
    #: A service whose clock runs behind, and by how much.
    skewed_service: str = "inventory"
    clock_skew_s: float = -30.0
    #: The payment flow's "seven days" waiting for a card update, scaled down.
    card_update_wait_s: float = 5.0
    #: Fraction of handler runs that fail transiently (retried; airline/hotel report them).
    error_rate: float = 0.05
    #: Start at most this many sagas, then keep running (0: no limit).
    max_sagas: int = 0
    #: Prefix of every demo topic and consumer group (isolates runs on a shared broker).
    topic_prefix: str = ""
    #: Tag in saga ids; empty picks a random one. Same seed + run_id = same decisions.
    run_id: str = ""
    #: Partitions of each demo topic.
    partitions: int = 2
    #: kafka-python max_poll_interval_ms of the demo services (also their group-join time).
    max_poll_interval_ms: int = 3000
    #: Per-service overrides of the fault settings ([[demo.service_faults]]).
    service_faults: tuple[ServiceFaults, ...] = ()


@dataclass(frozen=True)
class Settings:
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)


def env_name(setting: str) -> str:
    """The environment variable of a setting (``"section.name"``): ``SAGASCOPE_SECTION_NAME``."""
    return f"{ENV_PREFIX}{setting.replace('.', '_')}".upper()


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: file, then environment, then ``overrides`` (``"section.name": value``).

    Raises:
        ConfigError: naming the setting, for unknown keys or values of the wrong type.
    """
    env = os.environ if environ is None else environ
    path = config_file or env.get(ENV_CONFIG_FILE) or None
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(Path(path))
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        data = _read_toml(Path(DEFAULT_CONFIG_FILE))

    sections: dict[str, Any] = {}
    for section in dataclasses.fields(Settings):
        section_type = _resolve_type(Settings, section.name)
        raw = dict(data.pop(section.name, {}) or {})
        for f in dataclasses.fields(section_type):
            variable = env_name(f"{section.name}.{f.name}")
            if variable in env and not _is_rules(section_type, f.name):
                raw[f.name] = env[variable]
        for key, value in (overrides or {}).items():
            sec, _, name = key.partition(".")
            if sec == section.name and value is not None:
                raw[name] = value
        sections[section.name] = _build(section_type, raw, section.name)
    if data:
        raise ConfigError(f"unknown settings section(s): {', '.join(sorted(data))}")
    return Settings(**sections)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _resolve_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _is_rules(cls: type, name: str) -> bool:
    return typing.get_origin(_resolve_type(cls, name)) is tuple


def _build(cls: Any, raw: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown setting(s) in [{where}]: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, f"{where}.{name}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from exc


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"setting {where} must be a list of tables ([[{where}]])")
        items = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise ConfigError(f"setting {where}[{i}] must be a table")
            items.append(_build(item_type, item, f"{where}[{i}]"))
        return tuple(items)
    if origin in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    try:
        if tp is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if tp in (int, float, str):
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return tp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"setting {where} must be {tp.__name__}, got {value!r}"
        ) from exc
    return value


def secret(section: Any, name: str, where: str) -> str:
    """The secret setting ``name`` of a settings section, or the contents of ``<name>_file``.

    Trailing newlines of the file are dropped (``echo pw > file``). The value itself never
    appears in an error.

    Args:
        section: a settings dataclass, e.g. ``settings.broker``.
        name: the secret's field, e.g. ``"sasl_password"``.
        where: the section's name for messages, e.g. ``"broker"``.

    Raises:
        ConfigError: both the value and the file are set, or the file cannot be read.
    """
    value: str = getattr(section, name)
    path: str = getattr(section, f"{name}_file")
    if value and path:
        raise ConfigError(f"set either {where}.{name} or {where}.{name}_file, not both")
    if not path:
        return value
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"setting {where}.{name}_file: cannot read {path}: {type(exc).__name__}"
        ) from None


#: Secret settings as ``(section, name)``; each may also come from ``<name>_file``.
SECRET_SETTINGS = (
    ("broker", "ssl_key_password"),
    ("broker", "sasl_password"),
    ("store", "password"),
    ("dashboard", "password"),
    ("dashboard", "oidc_client_secret"),
)


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold (files read), plus a password in ``store.url``.

    For masking output: the CLI replaces each in everything it logs or prints. Unreadable
    secret files are skipped here; using that setting raises the error that names it.
    """
    from urllib.parse import unquote, urlparse

    values: list[str] = []
    for section_name, name in SECRET_SETTINGS:
        try:
            values.append(secret(getattr(settings, section_name), name, section_name))
        except ConfigError:
            continue
    password = urlparse(settings.store.url).password if settings.store.url else None
    if password:
        values += [password, unquote(password)]
    # Short values would mask ordinary words; a real secret is longer.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)
