"""Published metric-based RCA baselines beside `loupe eval nezha --baselines`.

Runs BARO and NSigma as the RCAEval package ships them (Pham et al., "BARO: Robust Root Cause
Analysis for Microservices via Multivariate Bayesian Online Change Point Detection", FSE 2024;
"RCAEval: A Benchmark for Root Cause Analysis of Microservice Systems", WWW 2025 companion) on
the metric matrices loupe wrote, one a case.

Usage: python3 baselines.py DIR
  DIR/cases.json: [{"case_id": str, "file": str (CSV in DIR), "inject_time": unix seconds}]
  Each CSV: a `time` column (unix seconds, a row a minute) and a `<service>_<metric>` column per
  series; an empty cell is a gap.

Prints a JSON object a line: {"case_id", "method", "ranking": [service, ...], "seconds"} per case
and method (seconds: the method's own time, reading the CSV excluded), or {"case_id", "method",
"error"} when a method fails on a case, or {"fatal"} when RCAEval cannot be imported.

Both methods are given the injection time, as RCAEval's evaluation gives it: rows before it are
the normal period, rows from it on the anomalous one. A metric's score is the largest robust
(BARO: median and interquartile range) or standard (NSigma: mean and standard deviation) z-score
of its anomalous rows; a service ranks by its best metric.
"""

import json
import sys
import time


def services_in_order(ranked_columns):
    """The services of ranked `<service>_<metric>` columns, each at its first place."""
    seen = []
    for column in ranked_columns:
        service = column.split("_", 1)[0]
        if service not in seen:
            seen.append(service)
    return seen


def main(directory):
    try:
        import pandas as pd
        from RCAEval.e2e import nsigma
        from RCAEval.e2e.baro import baro
    except Exception as e:  # noqa: BLE001 - any import failure means the same to the caller
        print(json.dumps({"fatal": f"{type(e).__name__}: {e}"}), flush=True)
        return 3
    with open(f"{directory}/cases.json", encoding="utf-8") as f:
        cases = json.load(f)
    for case in cases:
        data = pd.read_csv(f"{directory}/{case['file']}")
        # A gap carries the series' previous value (its next one at the start).
        data = data.ffill().bfill()
        for method, function in (("BARO", baro), ("NSigma", nsigma)):
            started = time.perf_counter()
            try:
                out = function(data, inject_time=case["inject_time"], dataset="nezha")
            except Exception as e:  # noqa: BLE001 - reported per case, the run goes on
                line = {"case_id": case["case_id"], "method": method,
                        "error": f"{type(e).__name__}: {e}"}
            else:
                line = {"case_id": case["case_id"], "method": method,
                        "ranking": services_in_order(out["ranks"]),
                        "seconds": time.perf_counter() - started}
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
