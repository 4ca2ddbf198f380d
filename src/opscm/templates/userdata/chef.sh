
# ---- Chef -------------------------------------------------------------------------------
# Filled in by opscm from the export's InputAttributes.
chef_organization=@CHEF_ORGANIZATION@
chef_environment=@CHEF_ENVIRONMENT@
chef_client_version=@CHEF_CLIENT_VERSION@
chef_first_boot=@CHEF_FIRST_BOOT_JSON@

OPSCM_CHEF_CONFIG_DIR="${OPSCM_CHEF_CONFIG_DIR:-/etc/chef}"
OPSCM_CHEF_INSTALL_URL="${OPSCM_CHEF_INSTALL_URL:-https://omnitruck.chef.io/install.sh}"
OPSCM_CHEF_SSL_CA_FILE="${OPSCM_CHEF_SSL_CA_FILE:-}"
chef_server_endpoint="${OPSCM_SERVER_ENDPOINT:-$opscm_default_endpoint}"
# The Chef server nodes talk to: opscm's endpoint, or the Chef server that backs this server.
if [ -n "${OPSCM_CHEF_SERVER_URL:-}" ]; then
  chef_server_url="$OPSCM_CHEF_SERVER_URL"
elif [ -n "${OPSCM_SERVER_ENDPOINT:-}" ]; then
  chef_server_url="https://$OPSCM_SERVER_ENDPOINT/organizations/$chef_organization"
else
  chef_server_url=@CHEF_SERVER_URL@
fi

# chef-client from Chef's omnibus installer (the version of NodeClientVersion, else the latest).
install_chef_client() {
  if skip_install; then
    log "OPSCM_SKIP_INSTALL=1: chef-client is not installed by this script"
    return
  fi
  if have chef-client; then
    if [ -z "$chef_client_version" ] || chef-client --version 2>/dev/null | grep -qF "$chef_client_version"; then
      return
    fi
  fi
  local installer
  installer="$(mktemp)"
  fetch "$OPSCM_CHEF_INSTALL_URL" "$installer"
  if [ -n "$chef_client_version" ]; then
    bash "$installer" -v "$chef_client_version"
  else
    bash "$installer"
  fi
  rm -f "$installer"
}

write_chef_config() {
  local dir="$OPSCM_CHEF_CONFIG_DIR"
  {
    echo "# Written by opscm user data for server $OPSCM_SERVER_NAME."
    echo "chef_server_url '$chef_server_url'"
    echo "node_name '$1'"
    echo "client_key '$dir/client.pem'"
    if [ -n "$chef_environment" ]; then
      echo "environment '$chef_environment'"
    fi
    if [ -n "$OPSCM_CHEF_SSL_CA_FILE" ]; then
      echo "ssl_ca_file '$OPSCM_CHEF_SSL_CA_FILE'"
    fi
  } > "$dir/client.rb.opscm"
  mv -f "$dir/client.rb.opscm" "$dir/client.rb"
  printf '%s\n' "$chef_first_boot" > "$dir/first-boot.json"
}

first_chef_run() {
  if [ "$OPSCM_FIRST_RUN" != 1 ]; then
    return
  fi
  if ! have chef-client; then
    log "chef-client is not installed: no first run"
    return
  fi
  log "first chef-client run"
  chef-client --config "$OPSCM_CHEF_CONFIG_DIR/client.rb" --json-attributes "$OPSCM_CHEF_CONFIG_DIR/first-boot.json"
}

main() {
  check_path OPSCM_CHEF_CONFIG_DIR "$OPSCM_CHEF_CONFIG_DIR"
  check_path OPSCM_CHEF_SSL_CA_FILE "$OPSCM_CHEF_SSL_CA_FILE"
  check_path OPSCM_SERVER_ENDPOINT "$chef_server_endpoint"
  check_path OPSCM_CHEF_SERVER_URL "$chef_server_url"
  ensure_openssl
  ensure_aws_cli
  ensure_opsworks_cm_model
  install_chef_client

  local node key public_key token
  node="$(node_name)"
  case "$node" in
    *[!A-Za-z0-9_.-]* | "") die "node name '$node' is not a Chef client name (letters, digits, _ - .); set OPSCM_NODE_NAME" ;;
  esac
  mkdir -p "$OPSCM_CHEF_CONFIG_DIR"
  # The new key becomes client.pem once the server knows it (until then it is in the work dir:
  # a refusal leaves nothing of it on the node).
  key="$opscm_work/client.pem"
  ( umask 077; openssl genrsa -out "$key" 2048 2>/dev/null )
  public_key="$(openssl rsa -in "$key" -pubout 2>/dev/null)"

  log "associating node $node with Chef server $OPSCM_SERVER_NAME ($AWS_ENDPOINT_URL)"
  token="$(opsworks_cm_retrying --output text associate-node --server-name "$OPSCM_SERVER_NAME" --node-name "$node" \
    --engine-attributes "Name=CHEF_ORGANIZATION,Value=$chef_organization" "Name=CHEF_NODE_PUBLIC_KEY,Value='$public_key'")"
  wait_associated "$token" "$node"

  mv -f "$key" "$OPSCM_CHEF_CONFIG_DIR/client.pem"
  write_chef_config "$node"
  log "wrote $OPSCM_CHEF_CONFIG_DIR/client.pem, client.rb and first-boot.json"
  first_chef_run
}

main "$@"
