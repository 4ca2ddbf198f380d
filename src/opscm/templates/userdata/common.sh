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

# ---- overridable ------------------------------------------------------------------------
export AWS_ENDPOINT_URL="${OPSCM_API_URL:-$opscm_default_api_url}"
export AWS_PAGER=""
OPSCM_AWS_CLI="${OPSCM_AWS_CLI:-aws}"
OPSCM_AWS_CLI_DIR="${OPSCM_AWS_CLI_DIR:-/opt/opscm-awscli}"
OPSCM_SKIP_INSTALL="${OPSCM_SKIP_INSTALL:-0}"
OPSCM_FIRST_RUN="${OPSCM_FIRST_RUN:-1}"

# ---- helpers ----------------------------------------------------------------------------
log() { printf 'opscm-userdata: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
skip_install() { [ "$OPSCM_SKIP_INSTALL" = 1 ]; }

# fetch URL FILE [CAFILE]: curl, wget or python3, whichever the node has; CAFILE, when given,
# is the only CA trusted for an https URL.
fetch() {
  if have curl; then
    curl --fail --silent --show-error --location --retry 3 ${3:+--cacert "$3"} --output "$2" "$1"
  elif have wget; then
    wget --quiet --tries=3 ${3:+--ca-certificate="$3"} --output-document="$2" "$1"
  elif have python3; then
    python3 -c 'import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[3] if len(sys.argv) > 3 else None)
with urllib.request.urlopen(sys.argv[1], context=context) as answer, open(sys.argv[2], "wb") as out:
    out.write(answer.read())' "$@"
  else
    die "curl, wget or python3 is needed to download $1"
  fi
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

# wait_associated TOKEN NODE: the NodeAssociated waiter, as AWS's user data waited.
wait_associated() {
  local start
  start="$(now_ms)"
  opsworks_cm wait node-associated --node-association-status-token "$1" --server-name "$OPSCM_SERVER_NAME"
  log "node $2 is associated with $OPSCM_SERVER_NAME (waited $(( $(now_ms) - start )) ms)"
}

# Paths end up in Ruby and Puppet configuration files: keep them free of quotes.
check_path() {
  case "$2" in
    *\'* | *\"* | *\\* | *$'\n'*) die "$1 must not contain quotes, backslashes or new lines: $2" ;;
  esac
}
