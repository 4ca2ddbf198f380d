"""The ``opscm`` command: ``serve``, ``credentials`` and ``setup-aws-cli``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import shutil
import socket
import sys
from datetime import timedelta
from pathlib import Path

from . import spec
from .cli_credentials import add_credentials_parser
from .cli_env import with_environment
from .cli_puppetserver import add_puppetserver_parser
from .domain.regions import OPSWORKS_CM_REGIONS, check_regions
from .crl_sync import add_crl_sync_parser

DEFAULT_PORT = 4580


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    return args.run(args)


def parse_args(argv: list[str], environ) -> argparse.Namespace:
    """The command line; ``serve``'s options not given there come from ``OPSCM_<OPTION>`` variables."""
    parser, serve = _parsers()
    if argv[:1] == ["serve"]:
        argv = ["serve", *with_environment(serve, argv[1:], environ)]
    return parser.parse_args(argv)


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(prog="opscm", description="Self-hosted AWS OpsWorks CM API.")
    parser.add_argument("--version", action="version", version=f"opscm {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the OpsWorks CM API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--data-dir", type=Path, default=Path("opscm-data"), help="state directory (default ./opscm-data)")
    serve.add_argument("--database-url", help="SQLAlchemy URL instead of the SQLite file in the data dir")
    serve.add_argument("--endpoint-host", help="host name reported as servers' Endpoint (default: the host served on)")
    serve.add_argument("--public-url", help="base URL of published CA documents (default: the URL served on)")
    serve.add_argument("--api-url", help="opscm API URL written into user data and starter kits (default: the public URL)")
    serve.add_argument("--ca-key-bits", type=int, default=4096, choices=(2048, 3072, 4096), help="RSA size of new Puppet CAs")
    serve.add_argument("--server-limit", type=int, default=10, help="servers per account and region (default 10)")
    serve.add_argument(
        "--regions",
        type=_regions,
        help="comma-separated regions requests may be scoped to (default: the regions of AWS OpsWorks CM)",
    )
    serve.add_argument(
        "--manual-backup-limit", type=int, default=50, help="manual backups per account and region (default 50)"
    )
    serve.add_argument("--schedule-interval", type=float, default=30.0, help="seconds between window checks (default 30)")
    serve.add_argument("--health-interval", type=float, default=60.0, help="seconds between health checks (default 60)")
    serve.add_argument("--throttle", action="store_true", help="throttle requests per account (ThrottlingException)")
    serve.add_argument("--throttle-rate", type=_positive(float), help="requests a second per account (default 5; implies --throttle)")
    serve.add_argument("--throttle-burst", type=_positive(int), help="burst per account (default 10; implies --throttle)")
    serve.add_argument("--config", type=Path, help="TOML configuration file: engine backends (see README)")
    serve.add_argument(
        "--backend-retry-seconds",
        type=_positive(float),
        default=300.0,
        help="how long a backend's node change is retried before it is FAILED (default 300)",
    )
    serve.add_argument(
        "--token-retention-days", type=_positive(float), default=7.0,
        help="days DescribeNodeAssociationStatus answers a finished association's token (default 7)",
    )
    serve.add_argument(
        "--event-retention-days", type=_positive(float), default=90.0, help="days events are kept (default 90)"
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument(
        "--log-format", default="text", choices=("text", "json"), help="json: one JSON object per line (default text)"
    )
    serve.add_argument("--metrics", default="on", choices=("on", "off"), help="Prometheus metrics at /metrics (default on)")
    serve.add_argument(
        "--metrics-port", type=_port, help="serve /metrics on this port instead of the API's (0 picks a free one)"
    )
    tls = serve.add_mutually_exclusive_group()
    tls.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM; with --tls-key)")
    tls.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="serve HTTPS with a self-signed certificate made once in the data dir (tls-cert.pem)",
    )
    serve.add_argument("--tls-key", type=Path, help="the private key of --tls-cert (PEM)")
    serve.add_argument(
        "--workers", type=_positive(int), default=_cpu_count(), help="worker processes (default: the number of CPUs)"
    )
    serve.add_argument(
        "--max-connections", type=_positive(int), default=1000, help="connections per worker; more get 503 (default 1000)"
    )
    serve.add_argument(
        "--body-timeout",
        type=_positive(float),
        default=30.0,
        help="seconds a request's head, then its body, may take to arrive (default 30)",
    )
    serve.add_argument(
        "--body-buffer-mib",
        type=_positive(int),
        default=32,
        help="MiB of request bodies a worker holds at once; more get 503 (default 32)",
    )
    serve.add_argument("--keep-alive", type=_positive(float), default=5.0, help="seconds an idle connection is kept (default 5)")
    serve.set_defaults(run=_serve)

    setup = commands.add_parser("setup-aws-cli", help="install the opsworks-cm model for the aws CLI in ~/.aws/models")
    setup.set_defaults(run=_setup_aws_cli)

    add_credentials_parser(commands)
    add_puppetserver_parser(commands)
    add_crl_sync_parser(commands)
    return parser, serve


def _serve(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from .app import tls
    from .app.config import Config, ConfigError, load_config
    from .app.data_dir import DataDirError, prepare_data_dir
    from .app.logs import configure_logging, console
    from .app.serving import make_listener, make_listeners

    configure_logging(args.log_level, args.log_format)
    say = console()
    if bool(args.tls_cert) != bool(args.tls_key):
        say.error("--tls-cert and --tls-key go together")
        return 2
    # Everything that can be wrong with the command line is found before the store is opened.
    try:
        config = load_config(args.config) if args.config else Config()
        for warning in config.warnings:
            say.warning(f"warning: {warning}")
        prepare_data_dir(args.data_dir)
        host = _url_host(args.host)
        endpoint_host = args.endpoint_host or host
        if args.tls_self_signed:
            names = [args.host, host, endpoint_host, "localhost", "127.0.0.1"]
            tls_files = tls.self_signed(args.data_dir, names)
        elif args.tls_cert:
            tls_files = tls.operator_files(args.tls_cert, args.tls_key)
        else:
            tls_files = None
    except (ConfigError, DataDirError, tls.TlsError) as error:
        say.error(str(error))
        return 1
    metrics_port = args.metrics_port if args.metrics == "on" else None
    try:
        port = args.port
        api = make_listeners(args.host, port, args.workers)  # one per worker
        port = metrics_port
        metrics = [make_listener(args.host, port)] if port is not None else []  # shared: scrapes are few
    except OSError as error:
        say.error(f"cannot listen on {args.host}:{port}: {(error.strerror or str(error)).lower()}")
        return 1
    scheme = "https" if tls_files else "http"
    urls = [f"{scheme}://{host}:{listener.getsockname()[1]}" for listener in (api[0], *metrics)]
    from .app.secret_box import MasterKeyError

    try:
        return _start_serving(args, config, api, metrics, urls, endpoint_host, tls_files)
    except MasterKeyError as error:
        say.error(str(error))
    except SQLAlchemyError as error:
        # The driver's first line says what is wrong (never SQL parameters: they are hidden).
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        say.error(f"cannot open the database: {reason}")
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        say.error(f"cannot start:{where}: {(error.strerror or str(error)).lower()}")
    return 1


def _start_serving(args: argparse.Namespace, config, api, metrics_listeners, urls: list[str], endpoint_host: str, tls_files) -> int:
    from .app import metrics
    from .app.composition import Application, Settings
    from .app.logs import console
    from .app.connection_shares import ConnectionShares
    from .app.serving import HttpOptions, Supervisor, own_socket, run_worker
    from .app.throttle import DEFAULT_BURST, DEFAULT_RATE
    from .service.retention import Retention

    data_dir: Path = args.data_dir
    url = urls[0]
    throttled = args.throttle or args.throttle_rate is not None or args.throttle_burst is not None
    settings = Settings(
        data_dir=data_dir,
        database_url=args.database_url,
        endpoint_host=endpoint_host,
        public_url=args.public_url or url,
        api_url=args.api_url or args.public_url or url,
        ca_key_bits=args.ca_key_bits,
        server_limit=args.server_limit,
        manual_backup_limit=args.manual_backup_limit,
        schedule_interval=args.schedule_interval,
        health_interval=args.health_interval,
        throttle_rate=(args.throttle_rate or DEFAULT_RATE) if throttled else None,
        throttle_burst=args.throttle_burst or DEFAULT_BURST,
        backends=config.backends,
        remote_retry_seconds=args.backend_retry_seconds,
        retention=Retention(tokens=timedelta(days=args.token_retention_days), events=timedelta(days=args.event_retention_days)),
        regions=args.regions or OPSWORKS_CM_REGIONS,
        api_ca_pem=tls_files.ca_pem() if tls_files else None,
        body_timeout=args.body_timeout,
        body_buffer_bytes=args.body_buffer_mib * 1024 * 1024,
        metrics=args.metrics == "on",
        metrics_apart=bool(metrics_listeners),
        checkpoint_apart=True,
        group_commit=True,
    )
    # Schema, admin key and crash recovery once, before any worker exists (and counts nothing).
    app = Application(dataclasses.replace(settings, metrics=False))
    try:
        created = app.ensure_admin_credentials()
        app.recover_interrupted_work()
    finally:
        app.close()
    say = console()
    credentials = (data_dir / "credentials").resolve()
    if created:
        say.info(f"admin credentials written to {credentials}")
    options = HttpOptions(
        max_connections=args.max_connections,
        keep_alive=args.keep_alive,
        header_timeout=args.body_timeout,
        tls=tls_files,
    )
    # Before the fork: every worker counts into files of one directory, and each scrape sums them.
    shared = metrics.share_between_processes() if settings.metrics else None

    def ready() -> None:
        if tls_files and tls_files.self_signed:
            say.info(f"self-signed TLS certificate: {tls_files.cert.resolve()} (AWS_CA_BUNDLE)")
        if settings.metrics_apart:
            say.info(f"metrics on {urls[1]}/metrics")
        say.info(f"serving on {url} (credentials: {credentials})")

    # Before the fork too: the workers' counts of their connections, to even them out.
    shares = ConnectionShares(args.workers) if args.workers > 1 else None

    def work(index: int, on_ready) -> int:
        share = shares.of_worker(index) if shares else None
        return run_worker(settings, options, [own_socket(api, index), *metrics_listeners], on_ready, share)

    supervisor = Supervisor(
        args.workers,
        work,
        on_worker_exit=shared.worker_ended if shared else None,
    )
    try:
        return supervisor.run(ready)
    finally:
        if shared:
            shared.close()


def _version() -> str:
    try:
        return importlib.metadata.version("opscm")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed: no package metadata)"


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"{text} is not a positive number")
        return value

    return parse


def _regions(text: str) -> tuple[str, ...]:
    try:
        return check_regions(text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def _setup_aws_cli(args: argparse.Namespace) -> int:
    # The aws CLI vendors its own botocore and reads extra models from ~/.aws/models/<command>/<version>/.
    target = Path.home() / ".aws" / "models" / "opsworks-cm" / spec.API_VERSION
    target.mkdir(parents=True, exist_ok=True)
    for name in spec.CLI_MODEL_FILES:
        source = spec.model_file(name)
        if source.suffix == ".gz":
            print(f"opscm: {source} is compressed; install an uncompressed botocore-a-la-carte-opsworkscm", file=sys.stderr)
            return 1
        shutil.copyfile(source, target / f"{name}.json")
    print(f"opscm: aws CLI model installed in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
