
# ---- Puppet -----------------------------------------------------------------------------
# Filled in by opscm from the export's InputAttributes.
puppet_environment=@PUPPET_ENVIRONMENT@
# The SHA-256 fingerprint of the server's CA certificate (PUPPET_API_CA_CERT) when the script was
# made: a CA certificate that DescribeServers answers with is installed only if it matches.
puppet_ca_fingerprint=@PUPPET_CA_FINGERPRINT@

OPSCM_PUPPET_PACKAGE="${OPSCM_PUPPET_PACKAGE:-puppet-agent}"
OPSCM_PUPPET_KEY_BITS="${OPSCM_PUPPET_KEY_BITS:-4096}"
# Puppet's own CA-less key and CSR generation (the agent's CertProvider, reading
# csr_attributes.yaml), without contacting any server.
read -r -d '' puppet_csr_ruby <<'RUBY' || true
require 'puppet'
Puppet.settings.preferred_run_mode = :agent
Puppet.initialize_settings(ARGV)
Puppet::SSL::Oids.register_puppet_oids
Puppet::SSL::Oids.load_custom_oid_file(Puppet[:trusted_oid_mapping_file])
certname = Puppet[:certname]
provider = Puppet::X509::CertProvider.new
password = provider.load_private_key_password
key = if Puppet[:key_type] == 'ec'
        OpenSSL::PKey::EC.generate(Puppet[:named_curve])
      else
        OpenSSL::PKey::RSA.new(Puppet[:keylength].to_i)
      end
provider.save_private_key(certname, key, password: password)
provider.save_request(certname, provider.create_request(certname, key))
RUBY

install_puppet_agent() {
  if skip_install; then
    log "OPSCM_SKIP_INSTALL=1: the puppet agent is not installed by this script"
    return
  fi
  have puppet && return
  install_packages "$OPSCM_PUPPET_PACKAGE"
}

# The ruby that runs `puppet` (Puppet's own on AIO packages, the shebang's elsewhere).
puppet_ruby() {
  if [ -x /opt/puppetlabs/puppet/bin/ruby ]; then
    echo /opt/puppetlabs/puppet/bin/ruby
    return
  fi
  local shebang
  shebang="$(head -n 1 "$(command -v puppet)")"
  case "$shebang" in
    '#!'*ruby*)
      set -- ${shebang#\#!}
      if [ "$(basename "$1")" = env ]; then command -v "$2"; else echo "$1"; fi
      ;;
    *) command -v ruby ;;
  esac
}

# generate_csr CERTNAME CONFDIR SSLDIR: a new key and CSR under SSLDIR (the agent's own
# layout), made by Puppet when it is installed, else by openssl.
# generate_csr CERTNAME CONFDIR SSLDIR: a new key and its request in SSLDIR (the work dir's: the
# node's own key and certificate stay in place until the association has succeeded).
generate_csr() {
  local certname="$1" confdir="$2" ssldir="$3" ruby
  mkdir -p "$ssldir/certificate_requests"
  mkdir -p -m 750 "$ssldir/private_keys"
  if have puppet && ruby="$(puppet_ruby)" && [ -n "$ruby" ]; then
    if "$ruby" -e "$puppet_csr_ruby" -- --confdir "$confdir" --ssldir "$ssldir" --certname "$certname"; then
      return
    fi
    log "puppet could not make the CSR; using openssl instead"
  fi
  ensure_openssl
  ( umask 077
    openssl req -new -newkey "rsa:$OPSCM_PUPPET_KEY_BITS" -nodes -subj "/CN=$certname" \
      -keyout "$ssldir/private_keys/$certname.pem" -out "$ssldir/certificate_requests/$certname.pem" 2>/dev/null )
}

# puppet.conf: server, certname, environment (and ssldir when it is not Puppet's default).
configure_puppet() {
  local confdir="$1" endpoint="$2" certname="$3" ssldir="$4"
  if have puppet; then
    puppet config set server "$endpoint" --section main --confdir "$confdir"
    puppet config set certname "$certname" --section main --confdir "$confdir"
    if [ -n "${OPSCM_PUPPET_SSLDIR:-}" ]; then
      puppet config set ssldir "$ssldir" --section main --confdir "$confdir"
    fi
    if [ -n "$puppet_environment" ]; then
      puppet config set environment "$puppet_environment" --section agent --confdir "$confdir"
    fi
  elif [ -e "$confdir/puppet.conf" ]; then
    log "puppet is not installed: set server = $endpoint and certname = $certname in $confdir/puppet.conf yourself"
  else
    {
      echo "[main]"
      echo "server = $endpoint"
      echo "certname = $certname"
      if [ -n "${OPSCM_PUPPET_SSLDIR:-}" ]; then echo "ssldir = $ssldir"; fi
      if [ -n "$puppet_environment" ]; then printf '\n[agent]\nenvironment = %s\n' "$puppet_environment"; fi
    } > "$confdir/puppet.conf"
  fi
}

# check_puppet_ca FILE: FILE is the CA certificate this script pins, else stop.
check_puppet_ca() {
  local found
  found="$(cert_fingerprints "$1")"
  if [ -z "$found" ]; then
    die "DescribeServers gave no Puppet CA certificate for $OPSCM_SERVER_NAME: nothing was installed"
  fi
  if [ -z "$puppet_ca_fingerprint" ]; then
    log "warning: this script pins no CA (made before the server had one); trusting SHA-256 $found"
  elif [ "$found" != "$puppet_ca_fingerprint" ]; then
    die "the Puppet CA certificate from DescribeServers (SHA-256 $found) is not the one this script pins" \
      "(SHA-256 $puppet_ca_fingerprint): nothing was installed"
  fi
}

first_puppet_run() {
  local confdir="$1" status=0
  if [ "$OPSCM_FIRST_RUN" != 1 ]; then
    return
  fi
  if ! have puppet; then
    log "puppet is not installed: no first run"
    return
  fi
  log "first puppet agent run"
  puppet agent --test --confdir "$confdir" || status=$?
  # --test exits 2 when it changed something.
  if [ "$status" != 0 ] && [ "$status" != 2 ]; then
    die "puppet agent --test failed (exit $status)"
  fi
}

main() {
  # Puppet's own packages put `puppet` there; a puppet already on the PATH comes first.
  PATH="$PATH:/opt/puppetlabs/bin"
  install_puppet_agent
  ensure_aws_cli
  ensure_opsworks_cm_model

  local certname confdir ssldir endpoint token crl_url
  certname="$(node_name | tr '[:upper:]' '[:lower:]')"
  if have puppet; then
    confdir="${OPSCM_PUPPET_CONFDIR:-$(puppet config print confdir)}"
    ssldir="${OPSCM_PUPPET_SSLDIR:-$(puppet config print ssldir --section agent --confdir "$confdir")}"
  else
    confdir="${OPSCM_PUPPET_CONFDIR:-/etc/puppetlabs/puppet}"
    ssldir="${OPSCM_PUPPET_SSLDIR:-/etc/puppetlabs/puppet/ssl}"
  fi
  check_path OPSCM_PUPPET_CONFDIR "$confdir"
  check_path OPSCM_PUPPET_SSLDIR "$ssldir"
  # The CA first: one that is not the pinned one stops the script before a key, a CSR or an
  # association is made.
  opsworks_cm_retrying describe-servers --server-name "$OPSCM_SERVER_NAME" \
    --query "Servers[0].EngineAttributes[?Name=='PUPPET_API_CA_CERT'].Value" --output text > "$opscm_work/ca.pem"
  check_puppet_ca "$opscm_work/ca.pem"
  crl_url="$(opsworks_cm_retrying describe-servers --server-name "$OPSCM_SERVER_NAME" \
    --query "Servers[0].EngineAttributes[?Name=='PUPPET_API_CRL_URL'].Value" --output text)"
  endpoint="${OPSCM_SERVER_ENDPOINT:-}"
  if [ -z "$endpoint" ]; then
    endpoint="$(opsworks_cm_retrying describe-servers --server-name "$OPSCM_SERVER_NAME" --query 'Servers[0].Endpoint' --output text)"
  fi
  mkdir -p "$confdir" "$ssldir/certs" "$ssldir/certificate_requests"
  mkdir -p -m 750 "$ssldir/private_keys"

  generate_csr "$certname" "$confdir" "$opscm_work/ssl"
  log "associating node $certname with Puppet server $OPSCM_SERVER_NAME ($AWS_ENDPOINT_URL)"
  token="$(opsworks_cm_retrying associate-node --server-name "$OPSCM_SERVER_NAME" --node-name "$certname" \
    --engine-attributes Name=PUPPET_NODE_CSR,Value="$(cat "$opscm_work/ssl/certificate_requests/$certname.pem")" \
    --query NodeAssociationStatusToken --output text)"
  wait_associated "$token" "$certname"

  opsworks_cm_retrying describe-node-association-status --node-association-status-token "$token" \
    --server-name "$OPSCM_SERVER_NAME" --query 'EngineAttributes[0].Value' --output text > "$opscm_work/cert.pem"
  # The CRL is published by opscm, or by the Puppet Server CA that backs this server (trusted
  # through the CA certificate just checked).
  fetch "$crl_url" "$opscm_work/crl.pem" 2>/dev/null || fetch "$crl_url" "$opscm_work/crl.pem" "$opscm_work/ca.pem"
  # Everything is here and checked: install it (a refusal above left the node's own as they were).
  mv -f "$opscm_work/ssl/private_keys/$certname.pem" "$ssldir/private_keys/$certname.pem"
  mv -f "$opscm_work/ssl/certificate_requests/$certname.pem" "$ssldir/certificate_requests/$certname.pem"
  mv -f "$opscm_work/cert.pem" "$ssldir/certs/$certname.pem"
  mv -f "$opscm_work/ca.pem" "$ssldir/certs/ca.pem"
  mv -f "$opscm_work/crl.pem" "$ssldir/crl.pem"
  configure_puppet "$confdir" "$endpoint" "$certname" "$ssldir"
  log "installed certs/$certname.pem, certs/ca.pem and crl.pem in $ssldir; puppet server is $endpoint"
  first_puppet_run "$confdir"
}

main "$@"
