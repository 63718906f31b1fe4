"""loupe's MCP server driven by a real third-party MCP client: the Python `mcp` SDK (2.3.0).

Starts the real `loupe` binary on free ports with a data directory, replays one simulated bad
deployment into it (`loupe simulate cases`, `loupe replay sim`), waits for the incident, then:
over streamable HTTP at /mcp, lists the tools, calls diagnose and get_incident and checks
them against the REST API, and checks that record_verdict is refused (writes are off); over
stdio through `loupe mcp --server URL`, lists the tools and calls get_incident again.

Usage: python tests/mcp/mcp_e2e.py [path/to/loupe]   (default: target/debug/loupe)
Prints one line per check and "N passed, M failed"; exits 1 on any failure.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]
BIN = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/loupe")
TOOLS = {"ask", "list_incidents", "get_incident", "diagnose", "what_changed", "get_graph",
         "blast_radius", "entity_history", "find_traces", "get_trace", "query_sql", "record_verdict"}
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok     " if ok else "FAILED ") + name + ("" if ok else f": {detail}"), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return json.loads(r.read())


def until(what, seconds, probe):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            got = probe()
            if got:
                return got
        except Exception:  # noqa: BLE001 - the server may not listen yet
            pass
        time.sleep(0.25)
    raise SystemExit(f"{what}: not within {seconds}s")


def structured(result):
    return result.structured_content or json.loads(result.content[0].text)


async def over_http(base, incident, truth):
    async with Client(base + "/mcp") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        check("http: every tool is listed", TOOLS <= names, sorted(TOOLS - names))
        tools = {t.name: t for t in (await client.list_tools()).tools}
        read_only = [n for n in TOOLS - {"record_verdict"}
                     if tools[n].annotations and tools[n].annotations.read_only_hint]
        check("http: the read tools are marked read-only", len(read_only) == len(TOOLS) - 1, read_only)
        start, end = truth["fault_start_unix_ns"], int(truth["replayed_until_unix_ns"])
        r = await client.call_tool("diagnose", {"start": str(start), "end": str(end)})
        data = structured(r)
        top = data["causes"][0]["entity"] if data.get("causes") else {}
        svc = truth["root_cause_service"]
        check("http: diagnose names the injected cause first",
              not r.is_error and (top.get("name") == svc or top.get("name", "").startswith(svc + ":")),
              json.dumps(top))
        r = await client.call_tool("get_incident", {"id": incident["id"]})
        data = structured(r)
        rest = get(base, f"/api/v1/incidents/{incident['id']}")
        check("http: get_incident is the API's incident",
              not r.is_error and data["id"] == incident["id"] and data["title"] == rest["title"]
              and data["analysis"]["causes"][0]["entity"] == rest["analysis"]["causes"][0]["entity"],
              str(data)[:300])
        r = await client.call_tool("find_traces", {"service": svc, "from": str(start), "to": str(end),
                                                   "status": "error", "limit": 3})
        traces = structured(r).get("traces", [])
        check("http: find_traces finds failing traces", not r.is_error and len(traces) > 0, str(r)[:300])
        r = await client.call_tool("record_verdict", {"incident": incident["id"], "cause": f"service:{svc}",
                                                      "verdict": "rejected", "by": "agent"})
        text = r.content[0].text if r.content else ""
        check("http: record_verdict is refused without writes allowed",
              r.is_error and "mcp-allow-writes" in text, text)
        r = await client.call_tool("ask", {"question": f"reject cause service:{svc} of incident {incident['id']}"})
        data = structured(r)
        check("http: a verdict asked in words through ask is refused too",
              data.get("understood") is False and "refused" in data.get("headline", ""), str(data)[:300])
        verdicts = get(base, "/api/v1/verdicts")["verdicts"]
        check("http: no verdict was recorded", verdicts == [], verdicts)
        r = await client.call_tool("get_incident", {"id": 999})
        check("http: an unknown incident is a tool error, not a crash",
              r.is_error and "999" in (r.content[0].text if r.content else ""), str(r)[:200])


async def over_stdio(base, incident):
    params = StdioServerParameters(command=BIN, args=["mcp", "--server", base])
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        check("stdio: every tool is listed", TOOLS <= names, sorted(TOOLS - names))
        r = await client.call_tool("get_incident", {"id": incident["id"]})
        check("stdio: get_incident through loupe mcp",
              not r.is_error and structured(r)["id"] == incident["id"], str(r)[:300])


def main():
    work = Path(tempfile.mkdtemp(prefix="loupe-mcp-e2e-"))
    cases = work / "cases"
    subprocess.run([BIN, "simulate", "cases", "--out", str(cases), "--cases", "1", "--seed", "3",
                    "--topologies", "otel-demo", "--faults", "bad_deployment", "--herring-chance", "0"],
                   check=True, stdout=subprocess.DEVNULL)
    truth = json.loads((cases / "ground_truth.json").read_text())[0]
    truth["replayed_until_unix_ns"] = str(truth["fault_end_unix_ns"] - 30_000_000_000)
    grpc, otlp_http, http = free_port(), free_port(), free_port()
    (work / "data").mkdir()
    server = subprocess.Popen([BIN, "serve", "--data-dir", str(work / "data"),
                               "--otlp-grpc-addr", f"127.0.0.1:{grpc}",
                               "--otlp-http-addr", f"127.0.0.1:{otlp_http}",
                               "--http-addr", f"127.0.0.1:{http}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{http}"
    try:
        until("loupe ready", 60, lambda: get(base, "/readyz")["status"] == "ready")
        subprocess.run([BIN, "replay", "sim", str(cases), "--endpoint", f"http://127.0.0.1:{grpc}",
                        "--api", base, "--from", str(truth["baseline_start_unix_ns"]),
                        "--to", truth["replayed_until_unix_ns"]], check=True, stdout=subprocess.DEVNULL)
        incident = until("an incident with ranked causes", 90, lambda: next(
            (i for i in get(base, "/api/v1/incidents")["incidents"] if i.get("top_cause_id")), None))
        asyncio.run(over_http(base, incident, truth))
        asyncio.run(over_stdio(base, incident))
    finally:
        server.terminate()
        server.wait(timeout=20)
    passed, failed = results.count(True), results.count(False)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
