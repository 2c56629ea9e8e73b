#!/usr/bin/env python3
"""Streaming soak client for bench/run.sh --streams (Python stdlib only: asyncio streams, HTTP/1.1).

Opens --streams concurrent streaming chat completions against one URL (spread over --ramp
seconds), reads each server-sent-event stream to its end and checks that it is intact: HTTP 200,
every content chunk (their text joined equals --expect-text, and there are --expect-parts of
them), a finish_reason, and `data: [DONE]` last. Writes a JSON report (--out) and prints one line.

Times, per stream, from just before connect: the first SSE event (the role chunk; "time to first
chunk") and the first content token.
"""
import argparse
import asyncio
import json
import resource
import sys
import time


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


class Stats:
    def __init__(self):
        self.open = 0
        self.max_open = 0
        self.failures = {}
        self.ok = 0
        self.first_chunk_ms = []
        self.first_token_ms = []
        self.duration_s = []
        self.events = 0  # every `data:` event received, [DONE] included
        self.content_chunks = 0

    def fail(self, reason):
        self.failures[reason] = self.failures.get(reason, 0) + 1


async def read_body(reader, headers):
    """Yield body bytes as they come: chunked transfer coding, else up to EOF."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            data = await reader.readexactly(size)
            await reader.readexactly(2)
            yield data
    else:
        length = headers.get("content-length")
        if length is not None:
            yield await reader.readexactly(int(length))
            return
        while True:
            data = await reader.read(65536)
            if not data:
                return
            yield data


async def one_stream(args, host, port, path, request, stats, delay):
    await asyncio.sleep(delay)
    t0 = time.perf_counter()
    writer = None
    opened = False
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        status = status_line.split(b" ", 2)[1].decode() if b" " in status_line else "?"
        headers = {}
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != "200":
            stats.fail(f"HTTP {status}")
            return
        stats.open += 1
        opened = True
        stats.max_open = max(stats.max_open, stats.open)
        buf = b""
        text = []
        parts = 0
        finished = False
        done = False
        after_done = False
        first_chunk = first_token = None
        async for data in read_body(reader, headers):
            buf += data
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    stats.events += 1
                    if first_chunk is None:
                        first_chunk = time.perf_counter()
                    if done:
                        after_done = True
                    if payload == b"[DONE]":
                        done = True
                        continue
                    chunk = json.loads(payload)
                    for choice in chunk.get("choices") or []:
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            if first_token is None:
                                first_token = time.perf_counter()
                            text.append(content)
                            parts += 1
                        if choice.get("finish_reason"):
                            finished = True
        stats.content_chunks += parts
        joined = "".join(text)
        if not done:
            stats.fail("no [DONE]")
        elif after_done:
            stats.fail("events after [DONE]")
        elif not finished:
            stats.fail("no finish_reason")
        elif args.expect_text is not None and joined != args.expect_text:
            stats.fail("content differs")
        elif args.expect_parts and parts != args.expect_parts:
            stats.fail(f"{parts} content chunks, expected {args.expect_parts}")
        else:
            stats.ok += 1
            stats.first_chunk_ms.append((first_chunk - t0) * 1000)
            stats.first_token_ms.append((first_token - t0) * 1000)
            stats.duration_s.append(time.perf_counter() - t0)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        stats.fail(type(e).__name__)
    finally:
        if opened:
            stats.open -= 1
        if writer is not None:
            writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True, help="http://host:port/v1/chat/completions")
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--ramp", type=float, default=2.0, help="seconds over which streams are opened")
    ap.add_argument("--key", default="")
    ap.add_argument("--body", required=True, help="JSON request body (stream: true)")
    ap.add_argument("--expect-text", default=None, help="the content the stream must carry")
    ap.add_argument("--expect-parts", type=int, default=0, help="content chunks per stream")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole soak")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    fd_limit = raise_fd_limit()
    rest = args.url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    body = args.body.encode()
    head = (
        f"POST /{path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if args.key:
        head += f"Authorization: Bearer {args.key}\r\n"
    request = (head + "\r\n").encode() + body

    stats = Stats()
    started = time.perf_counter()
    step = args.ramp / max(1, args.streams)
    tasks = [
        asyncio.ensure_future(one_stream(args, host, int(port or 80), path, request, stats, i * step))
        for i in range(args.streams)
    ]
    _, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for task in pending:
        task.cancel()
        stats.fail("timeout")
    wall = time.perf_counter() - started

    def r(v, n=1):
        return None if v is None else round(v, n)

    report = {
        "url": args.url,
        "streams": args.streams,
        "ok": stats.ok,
        "failed": sum(stats.failures.values()),
        "failures": stats.failures,
        "max_open": stats.max_open,
        "events": stats.events,
        "content_chunks": stats.content_chunks,
        "first_chunk_ms": {"p50": r(percentile(stats.first_chunk_ms, 50)), "p99": r(percentile(stats.first_chunk_ms, 99)), "max": r(max(stats.first_chunk_ms, default=None))},
        "first_token_ms": {"p50": r(percentile(stats.first_token_ms, 50)), "p99": r(percentile(stats.first_token_ms, 99))},
        "stream_s": {"p50": r(percentile(stats.duration_s, 50), 2), "max": r(max(stats.duration_s, default=None), 2)},
        "wall_s": round(wall, 2),
        "client_fd_limit": fd_limit,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(
        f"{args.url}: {stats.ok}/{args.streams} intact, failures {stats.failures or 0}, max open {stats.max_open}, "
        f"first chunk p50 {report['first_chunk_ms']['p50']} ms p99 {report['first_chunk_ms']['p99']} ms, "
        f"{stats.events} events, wall {wall:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    asyncio.run(main())
