"""examples/trio_actors.py - wait for actors from trio, without threads.

trio.lowlevel.wait_readable(actor) works because Actor has fileno(): it
polls readable while a message waits or once the actor has ended.

    python3 examples/trio_actors.py [TARGET]
"""
import sys

import trio

import tether


async def messages(actor):
    """Yield the actor's messages as they come, until it has ended."""
    while True:
        await trio.lowlevel.wait_readable(actor)
        try:
            yield actor.recv(timeout=0)   # never blocks: the fd said so
        except TimeoutError:
            continue                      # another task took it first
        except tether.Aborted:
            return                        # ended, and nothing left to read


async def collect(actor, results):
    got = [m async for m in messages(actor)]
    results.append((actor.id, got, actor.wait(timeout=5).kind))


async def main(target):
    with tether.Supervisor(backend="thread") as sup:
        results = []
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(collect, sup.spawn(target), results)
        for aid, got, kind in sorted(results):
            print(f"actor {aid}: {len(got)} message(s) {got[:1]}, {kind}")


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "examples/.libs/demo_actors.so:hello")
