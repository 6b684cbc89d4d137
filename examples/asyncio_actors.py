"""examples/asyncio_actors.py - wait for actors from an asyncio event loop.

Actor.fileno() polls readable while a message waits or once the actor has
ended, so loop.add_reader wakes the loop without a thread per actor:

    python3 examples/asyncio_actors.py [TARGET]

TARGET defaults to the demo actor that sends one message and exits.
"""
import asyncio
import sys

import tether


async def readable(actor):
    """Wait until the actor has a message or has ended."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(actor.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(actor.fileno())


async def messages(actor):
    """Yield the actor's messages as they come, until it has ended."""
    while True:
        await readable(actor)
        try:
            yield actor.recv(timeout=0)   # never blocks: the fd said so
        except TimeoutError:
            continue                      # another task took it first
        except tether.Aborted:
            return                        # ended, and nothing left to read


async def main(target):
    with tether.Supervisor(backend="thread") as sup:
        actors = [sup.spawn(target) for _ in range(3)]
        async def collect(a):
            got = [m async for m in messages(a)]
            return a.id, got, a.wait(timeout=5).kind
        for aid, got, kind in await asyncio.gather(*(collect(a) for a in actors)):
            print(f"actor {aid}: {len(got)} message(s) {got[:1]}, {kind}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "examples/.libs/demo_actors.so:hello"))
