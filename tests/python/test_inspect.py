"""list(), info() and gc() give the records of `ndshm ls --json`, `ndshm info --json` and `ndshm gc --json`
(the same code makes both). Each test works in a directory backend of its own, so that it sees only
its own segments and gc never touches another test's."""
import json
import os
import subprocess

import numpy as np

import ndshm
from ndshm_testing import collect, in_child, shm_exists


def tool_json(tool, directory, *args):
    out = subprocess.run([tool, "--dir", directory, *args, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def without_age(record):
    """A record without the fields that change between two looks: its age, and who has it open (the tool
    itself does while it looks)."""
    return {k: v for k, v in record.items() if k not in ("age_seconds", "users")}


def test_list_and_info_are_the_tools_records(tool, shm_dir):
    a = ndshm.create((3, 4), "float32", order="F", directory=shm_dir)
    b = ndshm.from_array(np.arange(5, dtype=np.int16), directory=shm_dir)
    ndshm.persist(b)
    q = ndshm.Queue.create(2, directory=shm_dir)
    ch = ndshm.Channel.create(2, "uint8", slots=2, directory=shm_dir)
    mine = ndshm.list(directory=shm_dir)
    theirs = tool_json(tool, shm_dir, "ls")["segments"]
    assert [without_age(r) for r in mine] == [without_age(r) for r in theirs]
    by_name = {r["name"]: r for r in mine}
    ra = by_name[ndshm.name_of(a)]
    assert (ra["kind"], ra["dtype"], ra["shape"], ra["fortran_order"], ra["persisted"]) == (
        "array", "float32", [3, 4], True, False)
    assert ra["creator"]["pid"] == os.getpid() and ra["creator"]["status"] == "alive"
    assert by_name[ndshm.name_of(b)]["persisted"] is True
    assert by_name[q.name]["kind"] == "queue" and by_name[ch.name]["kind"] == "channel"

    info = ndshm.info(ndshm.name_of(a), directory=shm_dir)
    assert without_age(info) == without_age(tool_json(tool, shm_dir, "info", ndshm.name_of(a)))
    assert os.getpid() in info["users"]
    ndshm.unlink(ndshm.name_of(b), directory=shm_dir)


def test_gc_removes_what_a_dead_creator_left(tool, shm_dir):
    r, w = os.pipe()

    def child():
        os.close(r)
        a = ndshm.create(8, directory=shm_dir)
        os.write(w, ndshm.name_of(a).encode())
        os._exit(0)  # while it holds the array, so nothing unlinks it: its creator is dead from now on

    assert in_child(child) == 0
    os.close(w)
    name = os.read(r, 100).decode()
    os.close(r)
    kept = ndshm.create(4, directory=shm_dir)  # a live creator: gc keeps it
    assert shm_exists(name, shm_dir)

    undecided = []
    dry = ndshm.gc(dry_run=True, directory=shm_dir, undecided=undecided)
    assert [e["name"] for e in dry] == [name] and dry[0]["removed"] is False
    assert "creator is dead" in dry[0]["reason"] and dry[0]["error"] is None
    theirs = tool_json(tool, shm_dir, "gc", "--dry-run")
    assert [{**e, "segment": without_age(e["segment"])} for e in dry] == \
        [{**e, "segment": without_age(e["segment"])} for e in theirs["entries"]]
    assert undecided == theirs["undecided"] == []
    assert shm_exists(name, shm_dir)

    done = ndshm.gc(directory=shm_dir)
    assert [(e["name"], e["removed"]) for e in done] == [(name, True)]
    assert not shm_exists(name, shm_dir) and shm_exists(ndshm.name_of(kept), shm_dir)
    del kept
    collect()
    assert ndshm.list(directory=shm_dir) == []
