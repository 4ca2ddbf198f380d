"""Drive the real Debian ``puppet-agent`` (Puppet 7.x) offline, for integration tests.

Two things are done with the agent's own code, never re-implemented here:

* ``PuppetAgent.generate_csr`` makes the private key and the CSR exactly like
  ``puppet ssl submit_request`` / the agent's SSL state machine do, minus the
  HTTP upload.  Puppet 7.23 has no offline ``puppet ssl generate_request``, so a
  tiny subclass of Puppet's own ``Puppet::Application::Ssl`` is run with
  ``ruby -e``: it goes through the identical application bootstrap
  (``Puppet.initialize_settings`` -> ``Application#run`` with run_mode agent ->
  ``Puppet.settings.use(:main, :agent)`` -> Puppet OID registration) and then
  performs the agent's key step (``Puppet[:key_type]``/``Puppet[:keylength]``,
  ``CertProvider#save_private_key``) and ``CertProvider#create_request`` /
  ``#save_request``.  Extension requests and custom attributes come from a real
  ``csr_attributes.yaml`` in the temp confdir, encoded by Puppet itself.

* ``PuppetAgent.verify`` runs the stock ``puppet ssl verify`` CLI, which is fully
  offline: ``Puppet::SSL::SSLProvider#load_context`` reads
  ``certs/ca.pem``, ``crl.pem`` (required with certificate_revocation=chain),
  ``private_keys/<certname>.pem`` and ``certs/<certname>.pem``, builds an
  OpenSSL X509 store (PURPOSE_ANY, CRL_CHECK|CRL_CHECK_ALL, CHECK_SS_SIGNATURE),
  verifies the client cert against it (signature, validity dates, revocation,
  CRL signature/dates) and checks that the cert's public key matches the
  private key.

  Two gaps of the stock command (Puppet 7.23) are closed by the default
  ``strict=True`` mode, using only the agent's own output:
  - if the issuer of the client cert is not in ``ca.pem``
    (``V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY``) Puppet only logs
    ``Warning: The issuer ... cannot be found locally`` and exits 0;
  - Puppet never compares the cert's subject with ``certname``.
  Strict mode fails on any ``Warning:`` line and unless the agent reports
  ``Verified client certificate 'CN=<certname>'``.

* ``PuppetAgent.run_agent`` runs a real ``puppet agent --test`` against a
  Puppet server (tests/support/puppetserver.py) with the installed ssldir.

Every invocation gets private confdir/codedir/vardir/publicdir/logdir/rundir/
ssldir/certname on the command line (nothing under /etc/puppet or
/var/lib/puppet is read or written), a server of 127.0.0.1 on a closed port
unless run_agent names one (nothing connects; if something did it would be
refused at once) and a timeout, so agents can run in parallel.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PuppetAgent", "PuppetAgentError", "make_agent", "puppet_available"]

# Port 1 (tcpmux) is closed on any sane test host: an unexpected connection
# attempt fails immediately with ECONNREFUSED instead of hanging.
_CLOSED_PORT = "1"

# Directories a Debian agent would use by default; refuse to point at them.
_SYSTEM_DIRS = tuple(
    Path(p)
    for p in (
        "/etc/puppet",
        "/etc/puppetlabs",
        "/var/lib/puppet",
        "/var/cache/puppet",
        "/var/log/puppet",
        "/run/puppet",
        "/opt/puppetlabs",
    )
)

# Ruby run with `ruby -e`.  `generate_request` is the offline half of the
# agent's `puppet ssl submit_request` (application/ssl.rb#submit_request and
# ssl/state_machine.rb NeedKey/NeedSubmitCSR): same settings bootstrap, same key
# generation, same CertProvider calls, no HTTP.  Any other action (e.g.
# `verify`) falls through to the stock Puppet::Application::Ssl#main.
_RUBY_SSL_HELPER = r"""
require 'puppet'
require 'puppet/util/command_line'
require 'puppet/application/ssl'

class OpscmTestSsl < Puppet::Application::Ssl
  run_mode :agent

  def main
    return super unless command_line.args.first == 'generate_request'

    # What Puppet::Application::Ssl#main does before any action.
    Puppet.settings.use(:main, :agent)
    Puppet::SSL::Oids.register_puppet_oids
    Puppet::SSL::Oids.load_custom_oid_file(Puppet[:trusted_oid_mapping_file])

    certname = Puppet[:certname]
    # ssl/state_machine.rb NeedKey: reuse an existing key, else make one.
    password = @cert_provider.load_private_key_password
    key = @cert_provider.load_private_key(certname, password: password)
    unless key
      key = if Puppet[:key_type] == 'ec'
              OpenSSL::PKey::EC.generate(Puppet[:named_curve])
            else
              OpenSSL::PKey::RSA.new(Puppet[:keylength].to_i)
            end
      @cert_provider.save_private_key(certname, key, password: password)
    end
    # NeedSubmitCSR minus the PUT: build (reads csr_attributes.yaml) and save.
    csr = @cert_provider.create_request(certname, key)
    @cert_provider.save_request(certname, csr)
    Puppet.notice("Generated certificate request for '#{certname}' at #{Puppet[:hostcsr]}")
  end
end

# Same sequence as /usr/bin/puppet -> Puppet::Util::CommandLine#execute.
command_line = Puppet::Util::CommandLine.new('puppet', ['ssl', *ARGV])
Puppet::Util.exit_on_fail('Could not initialize global default settings') do
  Puppet.initialize_settings(command_line.args)
end
OpscmTestSsl.new(command_line).run
"""

_AVAILABILITY_PROBE = r"""
require 'puppet'
require 'puppet/application/ssl'
require 'puppet/x509/cert_provider'
raise 'no CertProvider#create_request' unless Puppet::X509::CertProvider.method_defined?(:create_request)
print Puppet.version
"""


class PuppetAgentError(RuntimeError):
    """A puppet/ruby invocation failed; carries the process for diagnostics."""

    def __init__(self, message: str, process: subprocess.CompletedProcess):
        super().__init__(
            f"{message} (exit {process.returncode})\n"
            f"command: {process.args!r}\nstdout:\n{process.stdout}\nstderr:\n{process.stderr}"
        )
        self.process = process


def _puppet_exe() -> str | None:
    return shutil.which("puppet")


def _ruby_exe() -> str | None:
    """The ruby that runs `puppet` (its shebang), so both load the same Puppet."""
    puppet = _puppet_exe()
    if puppet:
        try:
            with open(puppet, "rb") as fh:
                first = fh.readline().decode("utf-8", "replace").strip()
        except OSError:
            first = ""
        if first.startswith("#!"):
            parts = first[2:].split()
            if parts and os.path.basename(parts[0]) == "env" and len(parts) > 1:
                found = shutil.which(parts[1])
                if found:
                    return found
            elif parts and os.path.basename(parts[0]).startswith("ruby") and os.access(parts[0], os.X_OK):
                return parts[0]
    return shutil.which("ruby")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Untranslated messages (strict mode parses the agent's log lines).
    env["LANG"] = env["LC_ALL"] = "C.UTF-8"
    return env


@functools.lru_cache(maxsize=1)
def puppet_version() -> str | None:
    """Puppet's version as loaded by the ruby behind `puppet`, or None."""
    puppet, ruby = _puppet_exe(), _ruby_exe()
    if not puppet or not ruby:
        return None
    try:
        proc = subprocess.run(
            [ruby, "-e", _AVAILABILITY_PROBE],
            capture_output=True, text=True, timeout=60, env=_env(), stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def puppet_available() -> bool:
    """True if the real puppet agent (with Puppet::X509::CertProvider) is usable."""
    return puppet_version() is not None


def _yaml_str(value: object) -> str:
    # A JSON string is a valid YAML double-quoted scalar (same escapes).
    return json.dumps(str(value), ensure_ascii=False)


def csr_attributes_yaml(csr_attributes: dict) -> str:
    """Render csr_attributes as block-style YAML, the format Puppet documents.

    Keys and values are quoted strings (so OIDs and ``"0123"`` stay strings);
    unknown top-level keys are written as-is so that Puppet's own validation
    ("unexpected attributes") applies.
    """
    lines = ["---"]
    for section, mapping in csr_attributes.items():
        if not isinstance(mapping, dict):
            raise TypeError(f"csr_attributes[{section!r}] must be a dict")
        if not mapping:
            lines.append(f"{_yaml_str(section)}: {{}}")
            continue
        lines.append(f"{_yaml_str(section)}:")
        for key, value in mapping.items():
            if isinstance(value, (list, tuple, dict, set)):
                raise TypeError(f"value for {key!r} must be a scalar, Puppet stringifies it")
            lines.append(f"  {_yaml_str(key)}: {_yaml_str(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class PuppetAgent:
    """A real puppet agent confined to a private directory tree.

    ``ssldir`` is used as Puppet's ssldir; its parent directory holds the other
    private Puppet directories (conf/, code/, var/, public/, log/, run/) and must
    not be shared with anything else.
    """

    ssldir: Path
    certname: str
    # None = Puppet's default (Debian puppet-agent 7.23: RSA, keylength 4096).
    keylength: int | None = None
    timeout: float = 120.0

    def __post_init__(self) -> None:
        self.ssldir = Path(self.ssldir).resolve()
        root = self.root
        for system_dir in _SYSTEM_DIRS:
            if root == system_dir or system_dir in root.parents or root in system_dir.parents:
                raise ValueError(f"refusing to use {self.ssldir}: overlaps system Puppet dir {system_dir}")
        if self.certname != self.certname.lower():
            # Puppet refuses upper-case certnames; fail early and clearly.
            raise ValueError("Puppet certnames must be lower case")
        root.mkdir(parents=True, exist_ok=True)
        self.confdir.mkdir(parents=True, exist_ok=True)

    # ---- directory layout -------------------------------------------------
    @property
    def root(self) -> Path:
        return self.ssldir.parent

    @property
    def confdir(self) -> Path:
        return self.root / "conf"

    @property
    def csr_attributes_path(self) -> Path:
        return self.confdir / "csr_attributes.yaml"

    @property
    def private_key_path(self) -> Path:
        return self.ssldir / "private_keys" / f"{self.certname}.pem"

    @property
    def csr_path(self) -> Path:
        return self.ssldir / "certificate_requests" / f"{self.certname}.pem"

    @property
    def cert_path(self) -> Path:
        return self.ssldir / "certs" / f"{self.certname}.pem"

    @property
    def ca_path(self) -> Path:
        return self.ssldir / "certs" / "ca.pem"

    @property
    def crl_path(self) -> Path:
        return self.ssldir / "crl.pem"

    @property
    def applied_path(self) -> Path:
        """Written by a catalog of the test puppetserver's site manifest (see run_agent)."""
        return self.root / "applied.txt"

    def settings_args(self, server: str = "127.0.0.1", port: int | str = _CLOSED_PORT) -> list[str]:
        """Puppet settings passed to every invocation (all on the command line).

        ``server``/``port``: the Puppet server (and CA) to talk to; by default none.
        """
        r = self.root
        args = [
            # puppet.conf, csr_attributes.yaml and custom_trusted_oid_mapping.yaml
            # are read from here; keeps /etc/puppet/puppet.conf (server=puppet...) out.
            "--confdir", str(r / "conf"),
            # Debian default /etc/puppet/code; `settings.use(:main)` creates it.
            "--codedir", str(r / "code"),
            # state/, lib/, client_data/, locks... are created under it.
            "--vardir", str(r / "var"),
            # Debian default /var/cache/puppet/public is NOT derived from vardir.
            "--publicdir", str(r / "public"),
            # Both are created by `settings.use(:main, :agent)`.
            "--logdir", str(r / "log"),
            "--rundir", str(r / "run"),
            # Keys, CSRs, certs, CA bundle and CRL: the point of the exercise.
            "--ssldir", str(self.ssldir),
            # Otherwise Puppet asks facter for this host's FQDN.
            "--certname", self.certname,
            # The :ca section is never `use`d by agent apps; pinned anyway so
            # /etc/puppet/puppetserver/ca can never be touched.
            "--cadir", str(r / "ca"),
            # Offline by default: should anything try to connect, it gets a
            # closed local port instead of resolving `puppet`.
            "--server", server,
            "--ca_server", server,
            "--serverport", str(port),
            "--ca_port", str(port),
            # Explicit default: crl.pem is mandatory and every CA in the chain
            # is checked against it (OpenSSL CRL_CHECK | CRL_CHECK_ALL).
            "--certificate_revocation", "chain",
            # Explicit default path of the file generate_csr() writes.
            "--csr_attributes", str(self.csr_attributes_path),
            # Plain log lines (no ANSI escapes) for strict-mode parsing.
            "--color", "false",
        ]
        if self.keylength is not None:
            args += ["--keylength", str(self.keylength)]
        return args

    # ---- process helpers --------------------------------------------------
    def _run(self, argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=self.timeout,
            env=_env(), stdin=subprocess.DEVNULL, cwd=self.root,
        )

    def _require_puppet(self) -> tuple[str, str]:
        puppet, ruby = _puppet_exe(), _ruby_exe()
        if not puppet or not ruby:
            raise RuntimeError("puppet agent / ruby not found on PATH")
        return puppet, ruby

    # ---- API ---------------------------------------------------------------
    def generate_csr(self, csr_attributes: dict | None = None) -> str:
        """Make private_keys/<certname>.pem (unless present) and the CSR, offline.

        ``csr_attributes`` (``{"extension_requests": {...}, "custom_attributes":
        {...}}``) is written to ``<confdir>/csr_attributes.yaml`` for the agent
        to read; with ``None`` the file is left as it is (none by default).
        An existing private key is reused, like the agent does.  Returns the
        CSR PEM as saved by the agent in certificate_requests/<certname>.pem.
        """
        _, ruby = self._require_puppet()
        if csr_attributes is not None:
            self.csr_attributes_path.write_text(csr_attributes_yaml(csr_attributes), encoding="utf-8")
        argv = [ruby, "-e", _RUBY_SSL_HELPER, "--", "generate_request", *self.settings_args()]
        proc = self._run(argv)
        if proc.returncode != 0 or not self.csr_path.is_file():
            raise PuppetAgentError("puppet failed to generate a CSR", proc)
        return self.csr_path.read_text()

    def install(self, cert_pem: str, ca_pem: str, crl_pem: str) -> None:
        """Put the issued cert, CA bundle and CRL where the agent looks for them."""
        self.cert_path.parent.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_text(cert_pem)
        self.ca_path.write_text(ca_pem)
        self.crl_path.write_text(crl_pem)

    def verify(self, strict: bool = True) -> subprocess.CompletedProcess:
        """Run ``puppet ssl verify`` offline on this ssldir.

        returncode 0 iff the agent accepts key, cert, CA bundle and CRL.  With
        ``strict`` (default) an exit 0 is turned into 1 when the agent logged a
        warning (e.g. issuer not found in ca.pem) or did not report
        ``Verified client certificate 'CN=<certname>'``; the reason is appended
        to stderr as a line starting ``strict check failed:``.  stdout/stderr
        are otherwise the agent's own.
        """
        puppet, _ = self._require_puppet()
        argv = [puppet, "ssl", "verify", *self.settings_args()]
        proc = self._run(argv)
        if not strict or proc.returncode != 0:
            return proc
        problems = []
        warnings = [ln for ln in proc.stderr.splitlines() + proc.stdout.splitlines() if ln.startswith("Warning:")]
        if warnings:
            problems.append("agent warned: " + " | ".join(warnings))
        subjects = re.findall(r"^Notice: Verified client certificate '(.*)' fingerprint", proc.stdout, re.M)
        expected = f"CN={self.certname}"
        if subjects != [expected]:
            problems.append(f"agent verified client certificate subject(s) {subjects!r}, expected [{expected!r}]")
        if not problems:
            return proc
        extra = "".join(f"strict check failed: {p}\n" for p in problems)
        return subprocess.CompletedProcess(proc.args, 1, proc.stdout, proc.stderr + extra)


    def run_agent(self, server: str, port: int, timeout: float | None = None) -> subprocess.CompletedProcess:
        """One real ``puppet agent --test`` against a Puppet server, with this ssldir.

        The agent must already hold its key, certificate, ``ca.pem`` and ``crl.pem`` (see
        ``install``): it never asks for a certificate (``--waitforcert 0``). ``server`` is
        the name the server's certificate is checked against. Exit status (detailed
        exit codes): 0 or 2 = catalog applied, 1 or 4/6 = failures.

        The agent names its own directory in the fact ``opscm_agent_root`` (an
        environment fact), so the test puppetserver's site manifest writes
        ``applied_path`` there: what the server saw of the agent, proof of the apply.
        """
        puppet, _ = self._require_puppet()
        argv = [
            puppet, "agent", "--test", *self.settings_args(server, port),
            "--waitforcert", "0",
            # Never hang on a stuck server: the run is bounded anyway by the process timeout.
            "--http_connect_timeout", "10", "--http_read_timeout", "60",
        ]
        env = {**_env(), "FACTER_opscm_agent_root": str(self.root)}
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout or self.timeout,
            env=env, stdin=subprocess.DEVNULL, cwd=self.root,
        )

    def applied(self) -> dict[str, str] | None:
        """What the last applied catalog wrote (``certname``, ``authenticated``), or None."""
        try:
            text = self.applied_path.read_text()
        except FileNotFoundError:
            return None
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def make_agent(tmp_path: Path, certname: str, **kwargs) -> PuppetAgent:
    """A PuppetAgent in a fresh private directory under ``tmp_path``."""
    root = Path(tempfile.mkdtemp(prefix=f"puppet-{certname}-", dir=tmp_path))
    return PuppetAgent(ssldir=root / "ssl", certname=certname, **kwargs)
