"""The cache hit ratio from the real API's `/metrics`, and the arithmetic between two scrapes."""

from __future__ import annotations

import aiohttp
import pytest

from domain.ids import new_id
from loadgen.cache_ratio import parse, ratio, scrape

EXPOSITION = """# HELP memestream_cache_hits_total Cache hits, by cache name.
# TYPE memestream_cache_hits_total counter
memestream_cache_hits_total{cache="meme"} 30.0
memestream_cache_hits_created{cache="meme"} 1.7e9
# HELP memestream_cache_misses_total Cache misses, by cache name.
# TYPE memestream_cache_misses_total counter
memestream_cache_misses_total{cache="meme"} 10.0
"""


def test_ratio_is_the_difference_of_two_scrapes() -> None:
    before = {("hits", "meme"): 10.0, ("misses", "meme"): 5.0}
    out = ratio(before, parse(EXPOSITION))
    assert out["hits"] == 20.0 and out["misses"] == 5.0
    assert out["ratio"] == 0.8
    assert out["caches"] == {"meme": {"hits": 20.0, "misses": 5.0, "ratio": 0.8}}
    assert ratio({}, {})["ratio"] is None, "no lookups: no ratio, not 0"


@pytest.mark.services
async def test_meme_reads_move_the_api_counters(api_url: str) -> None:
    before = await scrape(api_url)
    meme = new_id()
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"{api_url}/api/meme/{meme}") as response:
                assert response.status == 404
    after = await scrape(api_url)
    out = ratio(before, after)
    assert out["hits"] + out["misses"] >= 3, "each read looks the cache up"
    assert out["misses"] >= 1, "an unknown meme is not in the cache the first time"


async def test_an_unreachable_api_scrapes_as_nothing() -> None:
    assert await scrape("http://127.0.0.1:1", timeout_s=2) == {}
