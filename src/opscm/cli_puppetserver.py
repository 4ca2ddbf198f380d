"""``opscm puppetserver-bundle``: what a puppetserver needs to run with its CA service off and a
server's built-in opscm CA as its CA: its own certificate and key, the CA certificate, the
current CRL, and the configuration lines to use. Opens the data dir as ``opscm credentials``
does (also while ``opscm serve`` runs on it)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

CONFIG_FILE = "puppetserver.conf"


def add_puppetserver_parser(commands) -> None:
    bundle = commands.add_parser(
        "puppetserver-bundle", help="certificate, key, CA and CRL for a puppetserver that trusts a server's opscm CA"
    )
    bundle.add_argument("--data-dir", type=Path, default=Path("opscm-data"), help="state directory (default ./opscm-data)")
    bundle.add_argument("--database-url", help="SQLAlchemy URL instead of the SQLite file in the data dir")
    bundle.add_argument("--server", required=True, help="the opscm Puppet server whose CA signs")
    bundle.add_argument("--account", help="the server's account id, when several accounts have a server of that name")
    bundle.add_argument("--region", help="the server's region, likewise")
    bundle.add_argument("--certname", required=True, help="the puppetserver's certname (the host agents connect to)")
    bundle.add_argument("--alt-names", default="", help="more names agents use, e.g. DNS:puppet,IP:10.0.0.5")
    bundle.add_argument("--out", type=Path, required=True, help="directory to write into (made if missing; must hold no key)")
    bundle.add_argument("--key-bits", type=int, default=4096, choices=(2048, 3072, 4096), help="RSA size of the key")
    bundle.add_argument(
        "--public-url",
        default="http://127.0.0.1:4580",
        help="opscm's public URL as `opscm serve --public-url` has it (for the CRL URL to sync from)",
    )
    bundle.set_defaults(run=_bundle)


def _bundle(args: argparse.Namespace) -> int:
    from .app.composition import Application, Settings
    from .domain.errors import DomainError
    from .pki import PkiError, check_certname, generate_rsa_key
    from .pki.alt_names import parse_alt_names
    from .service.server_certificates import find_server, issue_server_certificate

    alt_names = [entry.strip() for entry in args.alt_names.split(",") if entry.strip()]
    try:
        check_certname(args.certname)
        parse_alt_names(alt_names)
    except PkiError as error:
        return _fail(error, 2)
    out: Path = args.out
    if (out / "key.pem").exists():
        return _fail(f"{out} already holds a key.pem: give an empty or new directory", 2)
    database_url = args.database_url or os.environ.get("OPSCM_DATABASE_URL")
    if not args.data_dir.is_dir() and not (database_url and os.environ.get("OPSCM_MASTER_KEY")):
        return _fail(f"there is no data dir {args.data_dir}", 1)
    app = Application(Settings(data_dir=args.data_dir, database_url=database_url, public_url=args.public_url))
    try:
        server = find_server(app.deps, args.server, args.account, args.region)
        private_key, public_key = generate_rsa_key(args.key_bits)
        issued = issue_server_certificate(
            app.deps, server, certname=args.certname, alt_names=alt_names, public_key_pem=public_key
        )
    except DomainError as error:
        return _fail(error.message, 1)
    finally:
        app.close()
    _write_bundle(out.resolve(), args.certname, private_key, issued)
    print(f"opscm: puppetserver bundle for {args.certname} (serial {issued.serial}) written to {out}", file=sys.stderr)
    print(f"opscm: configuration lines in {out / CONFIG_FILE}", file=sys.stderr)
    return 0


def _write_bundle(out: Path, certname: str, private_key: str, issued) -> None:
    from .app.files import write_private_file

    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private_file(out / "key.pem", private_key.encode("ascii"))
    for name, text in (("cert.pem", issued.cert_pem), ("ca.pem", issued.ca_cert_pem), ("crl.pem", issued.crl_pem)):
        (out / name).write_text(text)
        (out / name).chmod(0o644)
    (out / CONFIG_FILE).write_text(_configuration(out, certname, issued.crl_url))


def _configuration(out: Path, certname: str, crl_url: str) -> str:
    return f"""# puppetserver with its CA service off, trusting opscm's CA (written by opscm puppetserver-bundle).

# 1. conf.d/webserver.conf, in the `webserver` section:
ssl-host: 0.0.0.0
ssl-port: 8140
client-auth: want
ssl-cert: "{out}/cert.pem"
ssl-key: "{out}/key.pem"
ssl-ca-cert: "{out}/ca.pem"
ssl-crl-path: "{out}/crl.pem"

# 2. services.d/ca.cfg: the CA service off, the file watcher on (it reloads the CRL when it changes):
puppetlabs.services.ca.certificate-authority-disabled-service/certificate-authority-disabled-service
puppetlabs.trapperkeeper.services.watcher.filesystem-watch-service/filesystem-watch-service

# 3. puppet.conf, [server] section:
#   certname = {certname}

# 4. Keep the CRL current (run on the puppetserver host, e.g. as a systemd service):
#   opscm crl-sync --url {crl_url} --out {out}/crl.pem --interval 60
"""


def _fail(message, status: int) -> int:
    print(f"opscm puppetserver-bundle: {message}", file=sys.stderr)
    return status
