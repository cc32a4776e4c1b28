"""A TCP proxy that adds a round-trip time without limiting throughput (bench/s3.sh).

    python3 latency_proxy.py serve LISTEN_PORT TARGET_PORT RTT_MS
        Listens on 127.0.0.1:LISTEN_PORT and forwards every connection to
        127.0.0.1:TARGET_PORT. Each piece of data read (up to 256 KiB at a time) is stamped
        with its arrival time and delivered by the other direction's writer at arrival +
        RTT_MS / 2, in both directions: a request and its response take RTT_MS more, however
        many bytes follow. A connection's setup is not delayed (the client's TCP handshake is
        with the proxy), so a new connection's first request pays one round trip, not two.
        What is in flight is bounded by 64 MiB per direction (a TCP window; at 100 ms that
        still passes more than 1 GiB/s on one connection). Prints "ready" once listening.

    python3 latency_proxy.py probe PORT [COUNT]
        Sends COUNT (default 7) tiny HTTP HEAD requests to 127.0.0.1:PORT, each on a fresh
        connection, and prints the median time of one in milliseconds.

Standard library only.
"""
import asyncio
import collections
import http.client
import socket
import statistics
import sys
import time

READ_SIZE = 256 * 1024
MAX_IN_FLIGHT = 64 * 1024 * 1024


def nodelay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Pipe:
    """One direction of a connection: a reader stamps chunks, a writer delivers them late."""

    def __init__(self, reader, writer, delay):
        self.reader, self.writer, self.delay = reader, writer, delay
        self.queue = collections.deque()
        self.queued = 0
        self.arrived = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()

    async def read(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                self.queue.append((loop.time() + self.delay, data))
                self.arrived.set()
                if not data:
                    return
                self.queued += len(data)
                if self.queued > MAX_IN_FLIGHT:
                    self.drained.clear()
                    await self.drained.wait()
        except (ConnectionError, OSError):
            self.queue.append((loop.time(), b""))
            self.arrived.set()

    async def write(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self.queue:
                    self.arrived.clear()
                    await self.arrived.wait()
                due, data = self.queue.popleft()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    return
                self.writer.write(data)
                await self.writer.drain()
                self.queued -= len(data)
                if self.queued <= MAX_IN_FLIGHT:
                    self.drained.set()
        except (ConnectionError, OSError):
            pass


async def handle(client_reader, client_writer, target_port, delay):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    nodelay(client_writer)
    nodelay(up_writer)
    pipes = [Pipe(client_reader, up_writer, delay), Pipe(up_reader, client_writer, delay)]
    tasks = [asyncio.ensure_future(f()) for p in pipes for f in (p.read, p.write)]
    # Each writer ends on its direction's end of stream (or an error); then both sides close.
    await asyncio.gather(tasks[1], tasks[3])
    for t in tasks:
        t.cancel()
    for w in (client_writer, up_writer):
        w.close()


async def serve(listen_port, target_port, rtt_ms):
    delay = rtt_ms / 2000.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, target_port, delay), "127.0.0.1", listen_port, backlog=256)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def probe(port, count):
    times = []
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        conn.request("HEAD", "/")
        conn.getresponse().read()
        times.append(time.perf_counter() - start)
        conn.close()
    print(f"{statistics.median(times) * 1000:.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        try:
            asyncio.run(serve(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
        except KeyboardInterrupt:
            pass
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "probe":
        probe(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else 7)
    else:
        sys.exit(f"usage: {sys.argv[0]} serve LISTEN_PORT TARGET_PORT RTT_MS | probe PORT [COUNT]")
