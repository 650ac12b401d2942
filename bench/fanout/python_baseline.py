#!/usr/bin/env python3
"""The alternative a user would otherwise pick: an asyncio supervisor in Python (as the RPi_Logger
project does it) with one child process per module speaking JSON lines over pipes, and the same
control-socket fan-out. Used only by bench/fanout/run.py for the comparison.

  python_baseline.py supervisor SOCKET N   serve SOCKET with N children
  python_baseline.py child                 a no-op module: answers every command
"""
import asyncio
import json
import sys


async def child():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    while line := await reader.readline():
        msg = json.loads(line)
        writer.write((json.dumps({"id": msg["id"], "ok": True, "result": {"state": "ready"}}) + "\n").encode())
        await writer.drain()


async def supervisor(path, n):
    children = []
    for _ in range(n):
        p = await asyncio.create_subprocess_exec(sys.executable, __file__, "child",
                                                 stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        children.append({"proc": p, "pending": {}, "next": 1})

    async def read_child(c):
        while line := await c["proc"].stdout.readline():
            msg = json.loads(line)
            fut = c["pending"].pop(msg["id"], None)
            if fut:
                fut.set_result(msg)

    readers = [asyncio.create_task(read_child(c)) for c in children]

    async def fan_out(cmd):
        futures = []
        for c in children:
            i = c["next"]
            c["next"] += 1
            fut = asyncio.get_running_loop().create_future()
            c["pending"][i] = fut
            c["proc"].stdin.write((json.dumps({"id": i, "cmd": cmd, "args": {}}) + "\n").encode())
            futures.append(fut)
        return await asyncio.wait_for(asyncio.gather(*futures), 2.0)

    async def client(reader, writer):
        while line := await reader.readline():
            req = json.loads(line)
            answers = await fan_out(req["args"].get("cmd", "status"))
            writer.write((json.dumps({"id": req["id"], "ok": True, "result": {"modules": len(answers)}}) + "\n").encode())
            await writer.drain()

    server = await asyncio.start_unix_server(client, path)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "child":
        asyncio.run(child())
    else:
        asyncio.run(supervisor(sys.argv[2], int(sys.argv[3])))
