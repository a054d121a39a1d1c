#!/bin/sh
# One Redis node of the Sentinel group in compose.yaml. $1: this node's name on the network; $2: the node
# to replicate on a first start ("" for the first master).
#
# On every start it asks the sentinels which node is master now and joins it as a replica. A node that
# comes back as a master after a failover (its container restarted) would be turned into a replica only on
# Sentinel's next look (up to 10 s), and with RELAY_INTAKE_MIN_REPLICAS=1 intake waits for a replica.
# The password goes into a config file, not the command line (which `ps` and `docker inspect` show).
set -eu
me="$1"
first="$2"
umask 077
printf 'requirepass "%s"\nmasterauth "%s"\nreplica-announce-ip "%s"\n' \
  "$REDIS_PASSWORD" "$REDIS_PASSWORD" "$me" > /tmp/node.conf
chown redis /tmp/node.conf
master=""
for sentinel in sentinel-1 sentinel-2 sentinel-3; do
  master=$(redis-cli -h "$sentinel" -p 26379 --raw sentinel get-master-addr-by-name relay 2>/dev/null | head -n 1) || true
  [ -n "$master" ] && break
done
master="${master:-$first}"
if [ -n "$master" ] && [ "$master" != "$me" ]; then
  set -- --replicaof "$master" 6379
else
  set --
fi
# AOF: every write is logged, fsync'd every second; a restarted node reloads it before it answers.
exec docker-entrypoint.sh redis-server /tmp/node.conf --appendonly yes --appendfsync everysec \
  --maxmemory-policy noeviction "$@"
