#!/bin/sh
# The Kafka container of the authenticated compose deployment (deploy/compose.secure.yml):
# writes server.properties with the broker's own SCRAM password from /run/secrets (so it is
# in no environment variable and no image layer), creates the SCRAM users when the storage
# is formatted the first time, then starts the broker. Listeners:
#   SASL_SSL   kafka:9092 inside the compose network
#   HOST       SASL_SSL too, published on 127.0.0.1:${EDDY_KAFKA_PORT:-9092}
#   CONTROLLER KRaft, TLS with client certificates required (SCRAM cannot serve it)
set -eu
umask 077
admin=$(cat /run/secrets/kafka_admin_password)
eddy=$(cat /run/secrets/kafka_eddy_password)
conf=/tmp/server.properties
jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$admin\";"
cat > "$conf" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=SASL_SSL://:9092,CONTROLLER://:9093,HOST://:29092
advertised.listeners=SASL_SSL://kafka:9092,HOST://127.0.0.1:${EDDY_KAFKA_PORT:-9092}
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL,HOST:SASL_SSL
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$jaas
listener.name.host.scram-sha-512.sasl.jaas.config=$jaas
ssl.keystore.type=PEM
ssl.keystore.location=/etc/kafka/tls/server.pem
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/tls/ca.crt
listener.name.controller.ssl.client.auth=required
log.dirs=/var/lib/kafka/data
auto.create.topics.enable=false
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
# the healthcheck's client (Kafka's own tools), as the eddy user
cat > /tmp/client.properties <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="eddy" password="$eddy";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/tls/ca.crt
EOF
/opt/kafka/bin/kafka-storage.sh format -t "$CLUSTER_ID" -c "$conf" --ignore-formatted \
  --add-scram "SCRAM-SHA-512=[name=admin,password=$admin]" --add-scram "SCRAM-SHA-512=[name=eddy,password=$eddy]"
exec /opt/kafka/bin/kafka-server-start.sh "$conf"
