"""Read an offline W&B run file (run-<id>.wandb) back into protobuf records with the wandb SDK.

The file is a LevelDB-style log (the format of wandb's former DataStore): a 7-byte header
(":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each with a 7-byte header
(crc32, length, type: 1 full, 2 first, 3 middle, 4 last). Each record is a serialized
`wandb_internal_pb2.Record`, exactly what `wandb sync` uploads to the dashboard.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> list[pb.Record]:
    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1 and version == 0, f"not a W&B run file: {path}"
    records, pending, pos = [], b"", 7
    while pos + HEADER.size <= len(data):
        if BLOCK - pos % BLOCK < HEADER.size:  # block tail too short for a header: padding
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:
            break
        chunk = data[pos + HEADER.size : pos + HEADER.size + length]
        assert zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF == crc, "corrupt chunk"
        pos += HEADER.size + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def summarize(path: str | Path) -> dict:
    """{'config': {key: value}, 'history': [{key: value}], 'run': RunRecord} of one run file."""
    config, history, run = {}, [], None
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            for item in record.run.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "history":
            history.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return {"config": config, "history": history, "run": run}


def run_info(run_dir: str | Path) -> dict:
    """group, name, tags and exit code of the one offline W&B run under run_dir (a train.py output dir)."""
    (run_file,) = Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")
    info: dict = {"exit_code": None}
    for r in read_records(run_file):
        if r.HasField("run"):
            info.update(group=r.run.run_group, name=r.run.display_name, tags=list(r.run.tags))
        elif r.HasField("exit"):
            info["exit_code"] = r.exit.exit_code
    return info
