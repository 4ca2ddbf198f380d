"""``opscm crl-sync``: keep a local CRL file (e.g. a puppetserver's ``ssl-crl-path``) in step
with the CRL opscm publishes.

    opscm crl-sync --url https://opscm.example.com/.../certificate_revocation_list/ca \\
        --out /etc/puppetlabs/puppet/ssl/crl.pem [--ca-cert CA_FILE] [--interval SECONDS]

Each round fetches the CRL (no credentials; ``--ca-bundle`` to trust an https server), checks
that it is one CRL signed by the CA (``--ca-cert``, default ``ca.pem`` beside ``--out``), and
replaces the file atomically only when its CRL number is greater than the file's: a replayed
or stale CRL never undoes a revocation. puppetserver's filesystem watch reloads the file about
a second later.

``--interval 0`` runs once: exit 0 on success (updated or already current), 1 on failure.
Otherwise it runs until SIGTERM/SIGINT, one log line per change or failure. A missing or
unusable CA certificate is refused before anything is fetched (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .engines.http import BackendError, HttpBackend

OK = 0
FAILED = 1
USAGE_ERROR = 2
DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 10.0
MAX_CRL_BYTES = 64 * 1024 * 1024  # far above any real CRL; bounds memory
CRL_MODE = 0o644  # public document: puppetserver and agents read it

log = logging.getLogger("opscm.crl_sync")


class CrlSyncError(Exception):
    """One round failed; the message is one line, safe to log."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    number: int  # CRL number now in the file
    previous: int  # CRL number the file had (0: none)

    @property
    def changed(self) -> bool:
        return self.number != self.previous


# ---- the pieces (pure but for fetch and replace) ------------------------------------------


def load_ca_certificate(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CrlSyncError(f"no CA certificate at {path}: give --ca-cert (the CA whose CRL this is)") from None
    except OSError as error:
        raise CrlSyncError(f"cannot read the CA certificate {path}: {error.strerror}") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CrlSyncError(f"{path} is not a PEM certificate") from None


def checked_crl(data: bytes, ca: x509.Certificate, now: datetime) -> x509.CertificateRevocationList:
    """The CRL in ``data`` if it is exactly one complete, current CRL signed by ``ca``."""
    if data.count(b"-----BEGIN X509 CRL-----") != 1:
        raise CrlSyncError("the answer is not one PEM CRL")
    try:
        crl = x509.load_pem_x509_crl(data)
    except ValueError:
        raise CrlSyncError("the answer is not a readable PEM CRL") from None
    if crl.issuer != ca.subject or not _signed_by(crl, ca):
        raise CrlSyncError(f"the CRL is not signed by the CA {ca.subject.rfc4514_string()}")
    if _extension(crl, x509.DeltaCRLIndicator) is not None:
        raise CrlSyncError("the CRL is a delta CRL; a complete CRL is needed")
    if _extension(crl, x509.CRLNumber) is None:
        raise CrlSyncError("the CRL has no CRL number")
    next_update = crl.next_update_utc
    if next_update is not None and next_update < now:
        raise CrlSyncError(f"the CRL expired on {next_update:%Y-%m-%d %H:%M:%S} UTC")
    return crl


def crl_number(crl: x509.CertificateRevocationList) -> int:
    number = _extension(crl, x509.CRLNumber)
    return number.crl_number if number is not None else 0


def current_number(path: Path, ca: x509.Certificate) -> int:
    """The CRL number of the file in place: 0 when there is none, or none of this CA's."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    except OSError as error:
        raise CrlSyncError(f"cannot read {path}: {error.strerror}") from None
    try:
        crl = x509.load_pem_x509_crl(data)
    except ValueError:
        return 0  # unreadable: anything valid is better
    if crl.issuer != ca.subject or not _signed_by(crl, ca):
        return 0  # another CA's CRL (e.g. after a CA change): ours replaces it
    return crl_number(crl)


def replace_atomically(path: Path, data: bytes, mode: int = CRL_MODE) -> None:
    """Readers see the old file or the new one, never a part; the new one survives a crash."""
    directory = path.parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    # The rename itself is durable only once the directory is synced.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CrlSource:
    """The published CRL's URL, fetched without credentials."""

    def __init__(self, url: str, ca_bundle: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CrlSyncError(f"--url must be an http or https URL, not {url!r}")
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._http = HttpBackend(
            f"{parts.scheme}://{parts.netloc}", ca_bundle=ca_bundle, read_timeout=timeout
        )

    def fetch(self) -> bytes:
        try:
            reply = self._http.request("GET", self._path, headers={"Accept": "application/pkix-crl, text/plain"})
        except BackendError as error:
            raise CrlSyncError(f"fetching the CRL failed: {error.reason}") from None
        if reply.status != 200:
            raise CrlSyncError(f"fetching the CRL failed: HTTP {reply.status}")
        if len(reply.body) > MAX_CRL_BYTES:
            raise CrlSyncError("the answer is implausibly large for a CRL")
        return reply.body

    def close(self) -> None:
        self._http.close()


def sync_once(source: CrlSource, out: Path, ca: x509.Certificate, now: datetime | None = None) -> Outcome:
    """One round: fetch, check, replace ``out`` if the CRL is newer."""
    crl = checked_crl(source.fetch(), ca, now or datetime.now(timezone.utc))
    number, previous = crl_number(crl), current_number(out, ca)
    if number <= previous:
        return Outcome(previous, previous)
    try:
        replace_atomically(out, crl.public_bytes(serialization.Encoding.PEM))
    except OSError as error:
        raise CrlSyncError(f"cannot write {out}: {error.strerror}") from None
    return Outcome(number, previous)


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(ca.public_key())
    except Exception:  # unsupported key or algorithm: not verifiably ours
        return False


def _extension(crl: x509.CertificateRevocationList, kind):
    try:
        return crl.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


# ---- the command ---------------------------------------------------------------------------


def add_crl_sync_parser(commands) -> None:
    sync = commands.add_parser(
        "crl-sync", help="keep a local CRL file (e.g. a puppetserver's) up to date with a published CRL"
    )
    sync.add_argument("--url", required=True, help="URL of the published CRL (http or https, no credentials)")
    sync.add_argument("--out", required=True, type=Path, help="the CRL file to keep up to date (replaced atomically)")
    sync.add_argument("--ca-cert", type=Path, help="certificate of the CA that signs the CRL (default: ca.pem beside --out)")
    sync.add_argument("--ca-bundle", help="CA bundle to trust an https --url (default: the system's)")
    sync.add_argument(
        "--interval", type=_seconds, default=DEFAULT_INTERVAL,
        help=f"seconds between rounds (default {DEFAULT_INTERVAL:g}); 0: run once, exit 0 on success, 1 on failure",
    )
    sync.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_TIMEOUT, help=f"seconds to wait for an answer (default {DEFAULT_TIMEOUT:g})"
    )
    sync.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    out: Path = args.out
    ca_path: Path = args.ca_cert or out.parent / "ca.pem"
    try:
        if not out.parent.is_dir():
            raise CrlSyncError(f"the directory of --out does not exist: {out.parent}")
        if args.timeout <= 0:
            raise CrlSyncError("--timeout must be more than 0 seconds")
        ca = load_ca_certificate(ca_path)
        source = _source(args.url, args.ca_bundle, args.timeout)
    except CrlSyncError as error:
        log.error("crl-sync: refusing to run: %s", error)
        return USAGE_ERROR
    try:
        if args.interval == 0:
            return OK if _round(source, out, ca, quiet=False) else FAILED
        _loop(source, out, ca, args.interval)
        return OK
    except KeyboardInterrupt:  # Ctrl-C during a single round
        return FAILED
    finally:
        source.close()


def _source(url: str, ca_bundle: str | None, timeout: float) -> CrlSource:
    try:
        return CrlSource(url, ca_bundle, timeout)
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        raise CrlSyncError(f"cannot use --ca-bundle {ca_bundle}: {type(error).__name__}") from None


def _round(source: CrlSource, out: Path, ca: x509.Certificate, quiet: bool) -> bool:
    try:
        outcome = sync_once(source, out, ca)
    except CrlSyncError as error:
        log.error("crl-sync: %s", error)
        return False
    except Exception as error:  # never a traceback in a long-running loop; name the kind only
        log.error("crl-sync: unexpected %s", type(error).__name__)
        return False
    if outcome.changed:
        log.info("crl-sync: %s updated to CRL number %d (was %d)", out, outcome.number, outcome.previous)
    elif not quiet:
        log.info("crl-sync: %s is current (CRL number %d)", out, outcome.number)
    return True


def _loop(source: CrlSource, out: Path, ca: x509.Certificate, interval: float) -> None:
    stop = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.set())
    log.info("crl-sync: keeping %s up to date every %g s", out, interval)
    while not stop.is_set():
        _round(source, out, ca, quiet=True)
        stop.wait(interval)
    log.info("crl-sync: stopped")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds >= 0")
    return value
