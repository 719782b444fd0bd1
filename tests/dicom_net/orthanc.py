"""Orthanc (Debian's `orthanc` package) as a real Storage Commitment peer: a process of its
own per test, with a generated configuration in a temporary folder (free DICOM and HTTP
ports, its own storage, Verity among its DicomModalities). The system service is not used."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import free_port, need

AE_TITLE = "ORTHANC"


class Orthanc:
    def __init__(self, folder: Path, *, verity_port: int) -> None:
        binary = shutil.which("Orthanc")
        need(binary is not None, "Orthanc is not installed (apt-get install orthanc)")
        self.dicom_port, self.http_port = free_port(), free_port()
        storage = folder / "storage"
        storage.mkdir()
        config = {
            "Name": "verity-test", "StorageDirectory": str(storage),
            "IndexDirectory": str(storage), "HttpPort": self.http_port,
            "DicomPort": self.dicom_port, "DicomAet": AE_TITLE, "DicomCheckCalledAet": False,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [],
            "SaveJobs": False, "DicomScuTimeout": 10, "ConcurrentJobs": 2,
            # Verity, which asks it and which it asks; Storage Commitment is allowed (the
            # default, said here since it is what the tests are about).
            "DicomModalities": {"verity": {
                "AET": "RV_SCP", "Host": "127.0.0.1", "Port": verity_port,
                "AllowStorageCommitment": True}},
        }
        path = folder / "orthanc.json"
        path.write_text(json.dumps(config))
        self.log = folder / "orthanc.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([str(binary), "--verbose", str(path)],
                                            cwd=folder, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/system")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"Orthanc did not start:\n{self.log.read_text()}")
                time.sleep(0.05)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}",
                                         data=data, method=method)
        with urllib.request.urlopen(request, timeout=60) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", path, body)

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def instance_id(self, sop_instance_uid: str) -> str | None:
        """Orthanc's identifier of the instance, None when it does not hold it."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/tools/lookup",
                                         data=sop_instance_uid.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=60) as answer:
            found = json.loads(answer.read())
        ids = [item["ID"] for item in found if item.get("Type") == "Instance"]
        return ids[0] if ids else None

    def commitment(self, transaction_uid: str, timeout: float = 60) -> dict[str, Any]:
        """Orthanc's record of a Storage Commitment it asked for, once it is not Pending
        (the report came: an event Orthanc shows through its REST API)."""
        deadline = time.monotonic() + timeout
        while True:
            report: dict[str, Any] = self.get(f"/storage-commitment/{transaction_uid}")
            if report.get("Status") != "Pending" or time.monotonic() > deadline:
                return report
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

