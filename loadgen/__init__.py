"""The replayable load generator: record a deterministic trace, replay it open-loop, report.

`memestream loadgen record --scenario burst --seed 1 -o trace.jsonl` writes the trace;
`memestream loadgen replay trace.jsonl --target http://127.0.0.1:8000` replays it.
"""
