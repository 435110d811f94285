"""The ``sagascope`` console script: one subcommand per job, each in ``sagascope.commands``.

:data:`COMMANDS` names each subcommand's module and one-line help. The module defines
``add_arguments(parser)`` and ``run(args, settings) -> int``; it is imported only when its
subcommand runs, so the base install (instrumentation only) still answers ``--help`` and names
missing extras clearly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from sagascope import __version__
from sagascope.commands._flags import setting_flag
from sagascope.exceptions import ConfigError, SagascopeError
from sagascope.settings import load_settings, secret_values

log = logging.getLogger(__name__)

#: subcommand -> (module under sagascope.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "watch your Kafka on one machine: collector, alerter, metrics, dashboard"),
    "demo": ("demo", "serve plus demo traffic, on an embedded broker unless --bootstrap-servers"),
    "collect": ("collect", "consume Kafka topics into the store"),
    "verify": ("verify", "prove the stored audit trail complete and unedited"),
    "alert": ("alert", "evaluate stalled-saga rules and send alerts"),
    "alerts": ("alerts", "list open and recent alerts"),
    "dashboard": ("dashboard", "serve the Streamlit dashboard"),
    "flow": ("flow", "print the flow of one saga (by saga id, trace id or message id)"),
    "stalled": ("stalled", "list stalled sagas (not finished, silent past their threshold)"),
    "discover": ("discover", "propose correlation rules for topics whose messages carry no saga headers"),
    "replay": ("replay", "replay a CSV or XES event log into Kafka with the contract headers"),
    "bench": ("bench", "run the benchmarks in bench/"),
}


def _common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="path of sagascope.toml (env SAGASCOPE_CONFIG)")
    for flag, setting, metavar, help_text in (
        ("--bootstrap-servers", "broker.bootstrap_servers", "HOST:PORT", "Kafka bootstrap servers"),
        ("--clickhouse-url", "store.url", "URL", "ClickHouse server URL; default is embedded chDB"),
        ("--store-path", "store.path", "DIR", "chDB data directory"),
        ("--database", "store.database", None, "database name"),
    ):
        setting_flag(parser, flag, setting=setting, metavar=metavar, help=help_text)
    _security_flags(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")


def _security_flags(parser: argparse.ArgumentParser) -> None:
    """TLS and SASL flags, named as kafka-python names them; secrets only as files or env."""
    kafka = parser.add_argument_group(
        "Kafka security", "passwords only via SAGASCOPE_BROKER_SASL_PASSWORD or a file, never a flag"
    )
    flags = (
        ("--security-protocol", "security_protocol", "PROTOCOL",
         "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
        ("--ssl-cafile", "ssl_cafile", "PEM", "CA file that signed the broker's certificate"),
        ("--ssl-certfile", "ssl_certfile", "PEM", "client certificate (mutual TLS)"),
        ("--ssl-keyfile", "ssl_keyfile", "PEM", "client key (mutual TLS)"),
        ("--ssl-key-password-file", "ssl_key_password_file", "FILE",
         "file holding the client key's password"),
        ("--sasl-mechanism", "sasl_mechanism", "MECHANISM",
         "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
        ("--sasl-username", "sasl_username", "USER", "SASL user"),
        ("--sasl-password-file", "sasl_password_file", "FILE", "file holding the SASL password"),
        ("--sasl-oauth-token-provider", "sasl_oauth_token_provider", "MODULE:CALLABLE",
         "OAUTHBEARER token provider"),
    )
    for flag, name, metavar, help_text in flags:
        setting_flag(kafka, flag, setting=f"broker.{name}", metavar=metavar, help=help_text)
    kafka.add_argument(
        "--no-ssl-check-hostname", dest="broker.ssl_check_hostname", action="store_const",
        const=False, help="do not check that the broker's certificate names its host",
    )
    store = parser.add_argument_group("ClickHouse server", "password via SAGASCOPE_STORE_PASSWORD or a file")
    for flag, setting, metavar, help_text in (
        ("--clickhouse-user", "store.username", "USER", "ClickHouse user"),
        ("--clickhouse-password-file", "store.password_file", "FILE",
         "file holding the ClickHouse password"),
        ("--clickhouse-ca-file", "store.ca_file", "PEM", "CA file of an https:// ClickHouse server"),
    ):
        setting_flag(store, flag, setting=setting, metavar=metavar, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagascope", description="Tracing and audit observatory for sagas over Kafka."
    )
    parser.add_argument("--version", action="version", version=f"sagascope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        _common_flags(sp)
        sp.set_defaults(_command=name)
    return parser


def _load_command(name: str) -> Any:
    module_name = f"sagascope.commands.{COMMANDS[name][0]}"
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if (exc.name or "").startswith("sagascope"):
            raise
        raise SagascopeError(
            f"'sagascope {name}' needs packages that are not installed ({exc.name}); "
            'install them with: pip install "sagascope[all]"'
        ) from exc


class _MaskingFormatter(logging.Formatter):
    """Replaces each secret in a formatted record (message, arguments and traceback alike).

    Our code never logs a secret; this also covers the libraries underneath, e.g.
    kafka-python's debug log of a SASL PLAIN request, which carries the password.
    """

    def __init__(self, inner: logging.Formatter | None, secrets: Sequence[str]) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return _masked(self._inner.format(record), self._secrets)


def _masked(text: str, secrets: Sequence[str]) -> str:
    for value in secrets:
        text = text.replace(value, "***")
    return text


def _mask_logged_secrets(secrets: Sequence[str]) -> None:
    if not secrets:
        return
    for handler in logging.getLogger().handlers:
        if not isinstance(handler.formatter, _MaskingFormatter):
            handler.setFormatter(_MaskingFormatter(handler.formatter, secrets))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    secrets: list[str] = []
    # Subcommand flags are added only for the chosen command, so that `sagascope --help`
    # works on the base install.
    name = next((a for a in argv if not a.startswith("-")), None)
    if name is not None and name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose from: {', '.join(COMMANDS)}")
    try:
        if name is not None:
            module = _load_command(name)
            subparsers = next(
                a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            )
            module.add_arguments(subparsers.choices[name])
        args = parser.parse_args(argv)
        if name is None:
            parser.print_help()
            return 2
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        overrides = {k: v for k, v in vars(args).items() if "." in k}
        settings = load_settings(args.config, overrides)
        secrets.extend(secret_values(settings))
        _mask_logged_secrets(secrets)
        return int(module.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"sagascope: configuration error: {_masked(str(exc), secrets)}", file=sys.stderr)
        return 2
    except SagascopeError as exc:
        print(f"sagascope: {_masked(str(exc), secrets)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:
        # Unexpected: the traceback helps, but a library's message may quote a secret.
        import traceback

        print(_masked(traceback.format_exc(), secrets), file=sys.stderr, end="")
        return 1
