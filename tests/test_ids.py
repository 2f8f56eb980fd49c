"""`ids.uuid7`: valid, time-ordered, and never the same twice across batches, threads and forks."""

from __future__ import annotations

import re
import uuid

from aigw_asgi.ids import uuid7


def test_uuid7_is_valid_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(200)]
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert re.fullmatch(r"[0-9a-f-]{36}", value)
    assert len(set(ids)) == 200
    # The 48-bit millisecond prefix never goes backwards.
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


def test_uuid7_random_bits_are_never_handed_out_twice() -> None:
    """The random bits come from the OS in batches: across refills, threads and a fork, no id
    repeats (a child that kept its parent's batch would give out the parent's next ids)."""
    import os
    import threading

    assert len({uuid7() for _ in range(1000)}) == 1000  # several batches

    per_thread: list[list[str]] = [[] for _ in range(8)]

    def take(out: list[str]) -> None:
        out.extend(uuid7() for _ in range(2000))

    threads = [threading.Thread(target=take, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({i for out in per_thread for i in out}) == 16_000

    uuid7()  # a batch under way
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out
        try:
            os.write(write, "".join(uuid7() for _ in range(4)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 1000).decode()
    os.close(read)
    parents = {uuid7()[14:] for _ in range(4)}  # the random part (after the time prefix)
    assert len(child) == 4 * 36
    assert not parents & {child[i * 36 + 14 : (i + 1) * 36] for i in range(4)}
