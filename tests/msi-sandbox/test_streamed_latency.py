"""A streamed answer (Marketo's bulk export file) takes its latency per KB block by block: the
client receives it at that pace, and can parse the first blocks while the rest is on its way."""

from __future__ import annotations

import time

from sandbox_frame import EchoHandle


def test_a_streamed_answer_comes_in_at_the_pace_of_its_latency_per_kb(echo: EchoHandle) -> None:
    rules = [{"path": "^/api/file", "per_response_kb_ms": 5}]  # 80 ms per 16 KB block
    echo.admin("PUT", "faults", json={"latency_ms": rules}).raise_for_status()
    arrivals = []
    with echo.get("/api/file?blocks=4", stream=True) as answer:
        assert answer.status_code == 200
        for block in answer.iter_content(chunk_size=16384):
            arrivals.append((time.monotonic(), len(block)))
    assert sum(size for _, size in arrivals) == 4 * 16384
    # The first block was in hand while three more blocks' latency (3 x 80 ms) was still to come.
    assert arrivals[-1][0] - arrivals[0][0] >= 0.2
