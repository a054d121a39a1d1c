#!/bin/sh
# One of the three sentinels in compose.yaml. $1: this sentinel's name on the network.
# Sentinel rewrites its config file (its id, the master it follows now), so the file lives on the
# sentinel's own volume and is written only on the first start.
set -eu
conf=/data/sentinel.conf
if [ ! -f "$conf" ]; then
  umask 077
  cat > "$conf" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $1
sentinel monitor relay redis 6379 2
sentinel auth-pass relay $REDIS_PASSWORD
sentinel down-after-milliseconds relay 3000
sentinel failover-timeout relay 30000
sentinel parallel-syncs relay 1
CONF
  chown redis "$conf"
fi
exec docker-entrypoint.sh redis-server "$conf" --sentinel
