# deploy/secure.sh: the authenticated mode of deploy/stack (`deploy/stack up --secure`,
# or EDDY_SECURE=1), sourced by deploy/stack. Not run on its own.
#
#   Kafka: one SASL_SSL listener (TLS, SCRAM-SHA-512). Users, created when the
#          storage is formatted (kafka-storage format --add-scram):
#            admin  the broker's own inter-broker user
#            eddy   Eddy's clients
#          The KRaft controller listener is SSL with client certificates required
#          (SCRAM cannot authenticate the controller: its users live in the metadata
#          the controller serves), so nothing on the machine reaches it without the CA's key.
#   Redis: TLS only (no plaintext port), `default` user off, ACL user `eddy`.
#
# Everything lives in $STATE/secrets (mode 700: the files inside are readable by any uid
# for compose's bind mounts, the directory lets no other user in), made once, kept across `reset`:
#   ca.key ca.crt               the local CA (clients trust ca.crt)
#   server.key server.crt       127.0.0.1, localhost, kafka, redis (the compose services), signed by the CA
#   server.pem                  key + certificate in one file (Kafka's PEM keystore)
#   kafka-admin.password kafka-eddy.password redis-eddy.password   random, 48 hex digits
#   users.acl                   Redis's ACL file: `default` off, `eddy` with its password
#   admin.properties            client config of Kafka's own CLI tools (deploy/stack topics)
#   eddy.env                    EDDY_* variables for Eddy (sourced: set -a; . eddy.env)
# The admin password reaches Kafka's server.properties, written with mode 600.
# `deploy/stack secrets --secure` makes only this directory (for deploy/compose.secure.yml).

SEC=$STATE/secrets

secure_init() {
  command -v openssl >/dev/null 2>&1 || die "openssl not found: the secure stack makes its own CA (apt-get install openssl)"
  (umask 077; mkdir -p "$SEC")
  chmod 700 "$SEC"
  if [ ! -s "$SEC/server.pem" ]; then
    say "secure: making a CA and a certificate (127.0.0.1, localhost, kafka, redis) in $SEC"
    (
      umask 077
      cd "$SEC"
      openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=Eddy local CA" \
        -keyout ca.key -out ca.crt -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kafka,DNS:redis\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > server.ext
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
        -extfile server.ext -out server.crt 2>/dev/null
      rm -f server.csr server.ext ca.srl
      cat server.key server.crt > server.pem
      chmod 644 ca.crt
    ) || die "secure: openssl could not make the certificates in $SEC"
  fi
  local f
  for f in kafka-admin kafka-eddy redis-eddy; do
    [ -s "$SEC/$f.password" ] || (umask 077; openssl rand -hex 24 > "$SEC/$f.password")
  done
  (
    umask 077
    cat > "$SEC/users.acl" <<EOF
user default off
user eddy on >$(cat "$SEC/redis-eddy.password") ~* &* +@all -@dangerous +info
EOF
    cat > "$SEC/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$SEC/kafka-admin.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$SEC/ca.crt
EOF
    cat > "$SEC/eddy.env" <<EOF
EDDY_BOOTSTRAP=127.0.0.1:$KPORT
EDDY_KAFKA_SECURITY_PROTOCOL=sasl_ssl
EDDY_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
EDDY_KAFKA_USERNAME=eddy
EDDY_KAFKA_PASSWORD_FILE=$SEC/kafka-eddy.password
EDDY_KAFKA_CA_FILE=$SEC/ca.crt
EDDY_REDIS_URL=rediss://127.0.0.1:$RPORT/0
EDDY_REDIS_USERNAME=eddy
EDDY_REDIS_PASSWORD_FILE=$SEC/redis-eddy.password
EDDY_REDIS_CA_FILE=$SEC/ca.crt
EOF
  )
  # The directory (700) keeps other users out; the files inside are readable by any uid so
  # that the containers of deploy/compose.secure.yml (redis 999, kafka 1000) can read their
  # bind mounts. The CA's key stays 600: nothing but this script needs it.
  chmod 644 "$SEC"/*.password "$SEC"/server.* "$SEC"/users.acl "$SEC"/ca.crt
  chmod 600 "$SEC/ca.key"
}

# The listener block of server.properties.
secure_kafka_listeners() {
  cat <<EOF
listeners=SASL_SSL://127.0.0.1:$KPORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=SASL_SSL://127.0.0.1:$KPORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$SEC/kafka-admin.password")";
ssl.keystore.type=PEM
ssl.keystore.location=$SEC/server.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SEC/ca.crt
listener.name.controller.ssl.client.auth=required
EOF
}

# Arguments of `kafka-storage format` that create the SCRAM users.
secure_scram_args() {
  echo "--add-scram" "SCRAM-SHA-512=[name=admin,password=$(cat "$SEC/kafka-admin.password")]" \
       "--add-scram" "SCRAM-SHA-512=[name=eddy,password=$(cat "$SEC/kafka-eddy.password")]"
}

# The network and user block of redis.conf.
secure_redis_network() {
  cat <<EOF
port 0
tls-port $RPORT
tls-cert-file $SEC/server.crt
tls-key-file $SEC/server.key
tls-ca-cert-file $SEC/ca.crt
# clients authenticate with their ACL user; no client certificates
tls-auth-clients no
aclfile $SEC/users.acl
EOF
}

# redis-cli as the eddy user over the unix socket (the password through the environment, not argv)
secure_redis_cli() {
  REDISCLI_AUTH=$(cat "$SEC/redis-eddy.password") redis-cli --no-auth-warning --user eddy "$@"
}
