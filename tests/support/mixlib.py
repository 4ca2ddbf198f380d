"""Debian's ``ruby-mixlib-authentication`` (the gem chef-client and knife sign with) as the judge
of opscm's Chef request signer: it signs, and it verifies, through ``ruby -e``."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

from tests.support.requirements import require

# openssl first: the gem's "openssl/digest" alone fails on Debian's Ruby 3.1 ("superclass
# mismatch for class OpenSSL::Digest"); Chef always has openssl loaded by then.
_PRELUDE = """
require "json"
require "base64"
require "openssl"
require "mixlib/authentication/signedheaderauth"
require "mixlib/authentication/signatureverification"
input = JSON.parse($stdin.read)
"""

# SignedHeaderAuth.signing_object(...).sign(key): what Chef::HTTP::Authenticator calls.
_SIGN = """
object = Mixlib::Authentication::SignedHeaderAuth.signing_object(
  http_method: input["method"], path: input["path"], body: Base64.strict_decode64(input["body"]),
  timestamp: input["timestamp"], user_id: input["user_id"], proto_version: "1.3",
  headers: {"X-Ops-Server-API-Version" => input["server_api_version"]})
puts JSON.generate(object.sign(OpenSSL::PKey::RSA.new(input["key"])))
"""

# SignatureVerification#authenticate_user_request, what a Ruby Chef server runs, on a Rack-like
# request built from the headers as a web server would put them in the environment.
_VERIFY = """
Request = Struct.new(:env, :method, :path, :params, :raw_post)
env = {"HTTP_HOST" => "chef.example"}
input["headers"].each { |name, value| env["HTTP_" + name.upcase.tr("-", "_")] = value }
request = Request.new(env, input["method"], input["path"], {}, Base64.strict_decode64(input["body"]))
verifier = Mixlib::Authentication::SignatureVerification.new
begin
  ok = verifier.authenticate_user_request(request, OpenSSL::PKey::RSA.new(input["key"]), input["skew"])
  puts JSON.generate({"valid" => !ok.nil?, "signature" => verifier.valid_signature?,
                      "timestamp" => verifier.valid_timestamp?, "content_hash" => verifier.valid_content_hash?})
rescue Mixlib::Authentication::AuthenticationError => error
  puts JSON.generate({"valid" => false, "error" => error.class.name})
end
"""


def require_mixlib() -> None:
    require(shutil.which("ruby"), "ruby (Debian: ruby-mixlib-authentication)")
    probe = subprocess.run(["ruby", "-e", _PRELUDE], input="{}", capture_output=True, text=True, timeout=60)
    require(probe.returncode == 0, "the mixlib-authentication gem (Debian: ruby-mixlib-authentication)")


def _run(script: str, payload: dict) -> dict:
    done = subprocess.run(
        ["ruby", "-e", _PRELUDE + script], input=json.dumps(payload), capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"ruby failed ({done.returncode}): {done.stderr.strip()[:2000]}")
    return json.loads(done.stdout)


def mixlib_sign(
    *, key_pem: str, method: str, path: str, body: bytes, user_id: str, timestamp: str, server_api_version: str
) -> dict[str, str]:
    """The headers mixlib itself produces (it does not add X-Ops-Server-API-Version: Chef's HTTP
    client sends that one beside them)."""
    return _run(
        _SIGN,
        {
            "key": key_pem,
            "method": method,
            "path": path,
            "body": base64.b64encode(body).decode(),
            "user_id": user_id,
            "timestamp": timestamp,
            "server_api_version": server_api_version,
        },
    )


def mixlib_verify(
    *, public_key_pem: str, method: str, path: str, body: bytes, headers: dict[str, str], skew_seconds: int = 900
) -> dict:
    return _run(
        _VERIFY,
        {
            "key": public_key_pem,
            "method": method,
            "path": path,
            "body": base64.b64encode(body).decode(),
            "headers": headers,
            "skew": skew_seconds,
        },
    )
