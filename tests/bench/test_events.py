"""bench/events.py: incremental reads of a file a child is still appending to."""
from bench.events import EventTail, LineTail


def test_tail_returns_only_new_complete_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read() == []  # not written yet
    path.write_bytes(b'{"event": "step", "step": 1}\nnot json\n{"event": "st')
    assert tail.read() == [{"event": "step", "step": 1}]  # the foreign line is skipped, the partial one waits
    with open(path, "ab") as fh:
        fh.write(b'ep", "step": 2}\n')
    assert tail.read() == [{"event": "step", "step": 2}]
    assert tail.read() == []


def test_line_tail_keeps_bytes_of_every_line(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes("caf\u00e9\nhalf".encode())
    tail = LineTail(path)
    assert tail.new_lines() == ["caf\u00e9".encode()]
    assert tail.pos == len("caf\u00e9\n".encode())  # a byte offset, so non-ASCII text never shifts it
