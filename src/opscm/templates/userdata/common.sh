#!/bin/bash
# opscm user data: associates this node with an OpsWorks CM server served by opscm.
#
# Made by ExportServerEngineAttribute (Userdata). Run it as root on a new node (EC2 user
# data, cloud-init, or by hand); it needs the node's AWS credentials (an instance profile, or
# AWS_SHARED_CREDENTIALS_FILE) with opsworks-cm:AssociateNode, DescribeNodeAssociationStatus
# and DescribeServers. Every OPSCM_* variable read below may be set in the environment
# beforehand; the opscm README ("User data and starter kits") lists them.
set -euo pipefail

# ---- filled in by opscm ----------------------------------------------------------------
OPSCM_SERVER_NAME=@SERVER_NAME@
OPSCM_REGION=@REGION@
opscm_default_api_url=@API_URL@
opscm_default_endpoint=@ENDPOINT@
# opscm's self-signed API certificate (empty when a public CA signed it): the aws CLI and the
# downloads from opscm trust this certificate and no other.
opscm_api_certificate=@API_CA_PEM@

# ---- overridable ------------------------------------------------------------------------
export AWS_ENDPOINT_URL="${OPSCM_API_URL:-$opscm_default_api_url}"
export AWS_PAGER=""
OPSCM_AWS_CLI="${OPSCM_AWS_CLI:-aws}"
OPSCM_AWS_CLI_DIR="${OPSCM_AWS_CLI_DIR:-/opt/opscm-awscli}"
OPSCM_SKIP_INSTALL="${OPSCM_SKIP_INSTALL:-0}"
OPSCM_FIRST_RUN="${OPSCM_FIRST_RUN:-1}"
OPSCM_RETRY_SECONDS="${OPSCM_RETRY_SECONDS:-600}"

# ---- helpers ----------------------------------------------------------------------------
log() { printf 'opscm-userdata: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
skip_install() { [ "$OPSCM_SKIP_INSTALL" = 1 ]; }

case "$OPSCM_RETRY_SECONDS" in
  '' | *[!0-9]*) die "OPSCM_RETRY_SECONDS must be a whole number of seconds, not '$OPSCM_RETRY_SECONDS'" ;;
esac
# Downloads and checks are made here; nothing of it stays.
opscm_work="$(mktemp -d)"
trap 'rm -rf "$opscm_work"' EXIT

# The bundle that opscm's API certificate must verify against: OPSCM_API_CA_FILE, else the
# certificate this script carries, else the system's (empty).
if [ -n "${OPSCM_API_CA_FILE:-}" ]; then
  opscm_ca_file="$OPSCM_API_CA_FILE"
elif [ -n "$opscm_api_certificate" ]; then
  opscm_ca_file="$opscm_work/opscm-api.pem"
  printf '%s\n' "$opscm_api_certificate" > "$opscm_ca_file"
else
  opscm_ca_file=""
fi
if [ -n "$opscm_ca_file" ]; then
  export AWS_CA_BUNDLE="$opscm_ca_file"
fi

# url_origin URL: scheme://host[:port]
url_origin() {
  local rest="${1#*://}"
  printf '%s://%s\n' "${1%%://*}" "${rest%%/*}"
}

# fetch URL FILE [CAFILE]: curl, wget or python3, whichever the node has. CAFILE, when given, is
# the only CA trusted for an https URL; a URL of opscm's own is verified against opscm's
# certificate only.
fetch() {
  local ca="${3:-}"
  if [ -z "$ca" ] && [ -n "$opscm_ca_file" ] && [ "$(url_origin "$1")" = "$(url_origin "$AWS_ENDPOINT_URL")" ]; then
    ca="$opscm_ca_file"
  fi
  if have curl; then
    curl --fail --silent --show-error --location --retry 3 ${ca:+--cacert "$ca"} --output "$2" "$1"
  elif have wget; then
    wget --quiet --tries=3 ${ca:+--ca-certificate="$ca"} --output-document="$2" "$1"
  elif have python3; then
    python3 -c 'import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[3] or None)
with urllib.request.urlopen(sys.argv[1], context=context) as answer, open(sys.argv[2], "wb") as out:
    out.write(answer.read())' "$1" "$2" "$ca"
  else
    die "curl, wget or python3 is needed to download $1"
  fi
}

# cert_fingerprints FILE: the SHA-256 fingerprint of each certificate in FILE (AB:CD:..., as
# openssl x509 -fingerprint -sha256 prints it), comma-separated; coreutils only.
cert_fingerprints() {
  local blocks block digest prints=""
  blocks="$(mktemp -d "$opscm_work/pem.XXXXXX")"
  awk -v dir="$blocks" '/-----BEGIN CERTIFICATE-----/ { n++; keep = 1; next }
    /-----END CERTIFICATE-----/ { keep = 0; next }
    keep { print > (dir "/" n) }' "$1"
  for block in $(ls "$blocks" | sort -n); do
    digest="$(base64 -d < "$blocks/$block" 2>/dev/null | sha256sum | cut -c1-64 | tr 'a-f' 'A-F' | sed 's/../&:/g; s/:$//')" \
      || digest="unreadable"
    prints="$prints${prints:+,}$digest"
  done
  rm -rf "$blocks"
  printf '%s\n' "$prints"
}

# install_packages NAME...: the node's package manager.
install_packages() {
  if have apt-get; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
  elif have dnf; then
    dnf install -y "$@"
  elif have yum; then
    yum install -y "$@"
  elif have zypper; then
    zypper --non-interactive install "$@"
  else
    die "no known package manager to install $*; install it yourself and set OPSCM_SKIP_INSTALL=1"
  fi
}

# Milliseconds since the epoch (seconds * 1000 where date has no %N).
now_ms() {
  local t
  t="$(date +%s%N)"
  case "$t" in
    *N) echo $(( ${t%N} * 1000 )) ;;
    *) echo $(( t / 1000000 )) ;;
  esac
}

# The EC2 instance metadata (IMDSv2); fails fast off EC2.
ec2_metadata() {
  have curl || return 1
  local token
  token="$(curl --fail --silent --connect-timeout 1 --max-time 2 -X PUT \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)" || return 1
  curl --fail --silent --connect-timeout 1 --max-time 2 \
    -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

# The node's name: OPSCM_NODE_NAME, else the EC2 instance id (as AWS's user data used), else
# the host name.
node_name() {
  if [ -n "${OPSCM_NODE_NAME:-}" ]; then
    printf '%s\n' "$OPSCM_NODE_NAME"
    return
  fi
  local id
  if id="$(ec2_metadata instance-id)" && [ -n "$id" ]; then
    printf '%s\n' "$id"
    return
  fi
  hostname -f 2>/dev/null || hostname
}

ensure_openssl() {
  have openssl && return
  skip_install && die "openssl is not installed"
  install_packages openssl
}

# The aws CLI; installed in a virtualenv (PyPI awscli) when the node has none.
ensure_aws_cli() {
  have "$OPSCM_AWS_CLI" && return
  skip_install && die "the aws CLI ($OPSCM_AWS_CLI) is not installed"
  log "installing the aws CLI in $OPSCM_AWS_CLI_DIR"
  have python3 || install_packages python3
  if ! python3 -m venv "$OPSCM_AWS_CLI_DIR" >/dev/null 2>&1; then
    install_packages python3-venv
    python3 -m venv "$OPSCM_AWS_CLI_DIR"
  fi
  "$OPSCM_AWS_CLI_DIR/bin/pip" install --quiet awscli
  OPSCM_AWS_CLI="$OPSCM_AWS_CLI_DIR/bin/aws"
}

# AWS removed opsworks-cm from the aws CLI: install its model (with the waiter) from opscm
# when the CLI does not know the command.
ensure_opsworks_cm_model() {
  "$OPSCM_AWS_CLI" opsworks-cm describe-servers --generate-cli-skeleton >/dev/null 2>&1 && return
  local home dir name
  home="${HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}"
  dir="$home/.aws/models/opsworks-cm/2016-11-01"
  log "the aws CLI has no opsworks-cm command: installing its model from $AWS_ENDPOINT_URL in $dir"
  mkdir -p "$dir"
  for name in service-2 waiters-2 paginators-1; do
    fetch "${AWS_ENDPOINT_URL%/}/aws-cli/models/opsworks-cm/2016-11-01/$name.json" "$dir/$name.json"
  done
}

opsworks_cm() {
  "$OPSCM_AWS_CLI" opsworks-cm --region "$OPSCM_REGION" "$@"
}

# opsworks_cm_retrying ARGS...: opsworks_cm ARGS, tried again while the server is busy
# (InvalidStateException: BACKING_UP, UNDER_MAINTENANCE... in a boot storm) or opscm throttles
# (ThrottlingException): exponential backoff with jitter, for OPSCM_RETRY_SECONDS in all. Any
# other error stops at once.
opsworks_cm_retrying() {
  local deadline delay=2 pause left status output errors="$opscm_work/aws-errors"
  deadline=$(( $(date +%s) + OPSCM_RETRY_SECONDS ))
  while :; do
    status=0
    output="$(opsworks_cm "$@" 2>"$errors")" || status=$?
    if [ "$status" = 0 ]; then
      if [ -n "$output" ]; then printf '%s\n' "$output"; fi
      return 0
    fi
    if ! grep -qE '\((InvalidStateException|ThrottlingException)\)' "$errors" || [ "$(date +%s)" -ge "$deadline" ]; then
      cat "$errors" >&2
      return "$status"
    fi
    # Half the delay plus up to as much again at random: nodes that boot together spread out;
    # never past the deadline, where one last try is made.
    pause=$(( delay / 2 + RANDOM % (delay / 2 + 1) ))
    left=$(( deadline - $(date +%s) ))
    if [ "$pause" -gt "$left" ]; then pause=$left; fi
    log "$(grep -oE '\((InvalidStateException|ThrottlingException)\).*' "$errors" | head -n 1); trying again in ${pause}s"
    sleep "$pause"
    delay=$(( delay >= 32 ? 64 : delay * 2 ))
  done
}

# wait_associated TOKEN NODE: the NodeAssociated waiter, as AWS's user data waited.
wait_associated() {
  local start
  start="$(now_ms)"
  opsworks_cm_retrying wait node-associated --node-association-status-token "$1" --server-name "$OPSCM_SERVER_NAME"
  log "node $2 is associated with $OPSCM_SERVER_NAME (waited $(( $(now_ms) - start )) ms)"
}

# Paths end up in Ruby and Puppet configuration files: keep them free of quotes.
check_path() {
  case "$2" in
    *\'* | *\"* | *\\* | *$'\n'*) die "$1 must not contain quotes, backslashes or new lines: $2" ;;
  esac
}
