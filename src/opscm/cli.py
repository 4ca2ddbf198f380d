"""The ``opscm`` command: ``serve``, ``credentials`` and ``setup-aws-cli``."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import sys
from datetime import timedelta
from pathlib import Path

from . import spec
from .cli_credentials import add_credentials_parser
from .cli_puppetserver import add_puppetserver_parser
from .domain.regions import OPSWORKS_CM_REGIONS, check_regions
from .crl_sync import add_crl_sync_parser

DEFAULT_PORT = 4580


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opscm", description="Self-hosted AWS OpsWorks CM API.")
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
    serve.set_defaults(run=_serve)

    setup = commands.add_parser("setup-aws-cli", help="install the opsworks-cm model for the aws CLI in ~/.aws/models")
    setup.set_defaults(run=_setup_aws_cli)

    add_credentials_parser(commands)
    add_puppetserver_parser(commands)
    add_crl_sync_parser(commands)

    args = parser.parse_args(argv)
    return args.run(args)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app.composition import Application, Settings
    from .app.throttle import DEFAULT_BURST, DEFAULT_RATE

    from .app.config import Config, ConfigError, load_config
    from .service.retention import Retention

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config) if args.config else Config()
    except ConfigError as error:
        print(f"opscm: {error}", file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"opscm: warning: {warning}", file=sys.stderr)
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    listener = socket.create_server((args.host, args.port), reuse_port=False)
    port = listener.getsockname()[1]
    url = f"http://{_url_host(args.host)}:{port}"
    throttled = args.throttle or args.throttle_rate is not None or args.throttle_burst is not None
    settings = Settings(
        data_dir=data_dir,
        database_url=args.database_url or os.environ.get("OPSCM_DATABASE_URL"),
        endpoint_host=args.endpoint_host or _url_host(args.host),
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
    )
    app = Application(settings)
    created = app.ensure_admin_credentials()
    credentials = (data_dir / "credentials").resolve()
    if created:
        print(f"opscm: admin credentials written to {credentials}", flush=True)
    app.start()

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if not self.should_exit:
                print(f"opscm: serving on {url} (credentials: {credentials})", flush=True)

    config = uvicorn.Config(app.asgi, log_level=args.log_level, lifespan="off", access_log=False)
    # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, to the handler found at start:
    # a handler that ignores it turns a requested stop into a clean exit.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: None)
    try:
        Server(config).run(sockets=[listener])
    finally:
        app.close()
    return 0


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
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
