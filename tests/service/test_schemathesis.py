"""Schemathesis fuzzes every operation of GET /openapi.json against a real collector: no 5xx,
status codes, content types and bodies match the document (bounded examples for the budget)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx


def test_schemathesis_finds_no_server_error_or_mismatch(running, tmp_path):
    collector, token = running
    here = str(Path(sys.executable).parent)  # the venv's scripts, even when it is not activated
    st = shutil.which("st", path=here) or shutil.which("st") or shutil.which("schemathesis")
    assert st, "schemathesis is a dev dependency"
    proc = subprocess.run(
        [st, "run", f"{collector.url}/openapi.json",
         "--header", f"Authorization: Bearer {token}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance,response_headers_conformance",
         "--max-examples", "20", "--workers", "2", "--seed", "7",
         "--mode", "all", "--generation-allow-x00", "true",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    # the server is still serving after the fuzzing
    assert httpx.get(f"{collector.url}/healthz").status_code == 200
    assert "Traceback" not in collector.log()
