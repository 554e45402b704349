#!/usr/bin/env python3
"""Turn the raw records of one bench run into the human table and the JSON results file.

usage: report.py RAW_RECORDS OUT_JSON OUT_TXT

RAW_RECORDS has one line per measurement, key=value words (written by run.sh):
  kind=ceiling|search|latency|memory|media  server=sipp|kamailio|smartdesk  repeat=N ...
Keys prefixed "best." come from the highest passing step of a search, "ref." from the
fixed-rate latency run.  Repeated measurements are summarised as median (min..max).
"""
import json
import math
import statistics
import sys
import time


def parse(line):
    d = {}
    for w in line.split():
        if "=" in w:
            k, v = w.split("=", 1)
            try:
                d[k] = int(v)
            except ValueError:
                try:
                    d[k] = float(v)
                except ValueError:
                    d[k] = v
    return d


def values(recs, key):
    out = []
    for r in recs:
        v = r.get(key)
        if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            out.append(v)
    return out


def agg(recs, key):
    v = values(recs, key)
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def fmt(a, unit="", nd=0):
    if a is None:
        return "n/a"
    f = "%%.%df" % nd
    s = f % a["median"] + unit
    if a["n"] > 1:
        s += " (" + f % a["min"] + ".." + f % a["max"] + ")"
    return s


def ratio(a, b, nd=2):
    if a is None or b is None or not b["median"]:
        return "n/a"
    return ("%%.%df" % nd) % (a["median"] / b["median"])


def main():
    raw, out_json, out_txt = sys.argv[1:4]
    recs = [parse(l) for l in open(raw) if l.strip()]
    meta = next((r for r in recs if r.get("kind") == "meta"), {})
    by = lambda kind, server: [r for r in recs if r.get("kind") == kind and r.get("server") == server]

    res = {"generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "meta": meta, "servers": {}}
    for server in ("kamailio", "smartdesk"):
        s, l = by("search", server), by("latency", server)
        m, md = by("memory", server), by("media", server)
        if not (s or l or m or md):
            continue
        res["servers"][server] = {
            "max_cps": agg(s, "max_cps"),
            "cpu_us_per_call_at_max": agg(s, "best.server_cpu_us_per_call"),
            "setup_p50_ms_at_max": agg(s, "best.setup_p50_ms"),
            "setup_p99_ms_at_max": agg(s, "best.setup_p99_ms"),
            "machine_busy_pct_at_max": agg(s, "best.machine_busy_pct"),
            "latency_cps": agg(l, "ref.target_cps"),
            "latency_pass": [r.get("ref_pass") for r in l],
            "setup_p50_ms": agg(l, "ref.setup_p50_ms"),
            "setup_p99_ms": agg(l, "ref.setup_p99_ms"),
            "bye_p50_ms": agg(l, "ref.bye_p50_ms"),
            "bye_p99_ms": agg(l, "ref.bye_p99_ms"),
            "cpu_us_per_call_at_latency_rate": agg(l, "ref.server_cpu_us_per_call"),
            "memory_calls": agg(m, "held_calls"),
            "rss_kb_per_call": agg(m, "rss_kb_per_call"),
            "pss_kb_per_call": agg(m, "pss_kb_per_call"),
            "idle_rss_kb": agg(m, "idle_rss_kb"),
            "media_max_concurrent": agg(md, "max_concurrent"),
            "media_us_per_pkt": agg(md, "best.server_us_per_pkt"),
            "media_jitter_mean_ms": agg(md, "best.jitter_mean_ms"),
            "busy_before_pct_max": max(values(s, "best.busy_before_pct") + values(l, "ref.busy_before_pct") or [None],
                                       key=lambda x: -1 if x is None else x),
            "ledger_rows_ok": [r.get("ledger_ok") for r in s if "ledger_ok" in r],
            "runs": s + l + m + md,
        }
    ceil = by("ceiling", "sipp")
    if ceil:
        res["harness_ceiling"] = {"max_cps": agg(ceil, "max_cps"),
                                  "setup_p50_ms_at_max": agg(ceil, "best.setup_p50_ms"),
                                  "runs": ceil}
    base = by("media_baseline", "kamailio")
    if base:
        res["media_harness_baseline"] = {"runs": base}
    json.dump(res, open(out_json, "w"), indent=1, sort_keys=True)

    K, S = res["servers"].get("kamailio", {}), res["servers"].get("smartdesk", {})
    g = lambda d, k: d.get(k) if d else None
    rows = [
        ("max calls/s, 0 failed (bisection)", "max_cps", "", 0),
        ("server CPU per call at max, us", "cpu_us_per_call_at_max", "", 0),
        ("machine busy at max, %", "machine_busy_pct_at_max", "", 0),
        ("setup p50 at max, ms", "setup_p50_ms_at_max", "", 2),
        ("setup p99 at max, ms", "setup_p99_ms_at_max", "", 2),
        ("setup p50 at %s cps, ms" % meta.get("lat_cps", "?"), "setup_p50_ms", "", 3),
        ("setup p99 at %s cps, ms" % meta.get("lat_cps", "?"), "setup_p99_ms", "", 3),
        ("BYE->200 p50 at %s cps, ms" % meta.get("lat_cps", "?"), "bye_p50_ms", "", 3),
        ("server CPU per call at %s cps, us" % meta.get("lat_cps", "?"), "cpu_us_per_call_at_latency_rate", "", 0),
        ("memory per held call (RSS), KiB", "rss_kb_per_call", "", 2),
        ("memory per held call (PSS), KiB", "pss_kb_per_call", "", 2),
        ("idle RSS, KiB", "idle_rss_kb", "", 0),
        ("G.711 calls relayed, 0 loss", "media_max_concurrent", "", 0),
        ("server CPU per relayed packet, us", "media_us_per_pkt", "", 2),
    ]
    lines = []
    w = 40
    lines.append("smartdesk bench  %s  repeats=%s  %s" % (res["generated"], meta.get("repeat", "?"),
                                                           "quick" if meta.get("quick") == 1 else "full"))
    lines.append("machine: %s, load average at start %s" % (meta.get("machine", "?").replace("_", " "),
                                                          meta.get("load_at_start", "?")))
    lines.append("")
    lines.append("%-*s %-26s %-26s %s" % (w, "metric (median (min..max) of repeats)", "kamailio", "smartdesk", "smartdesk/kamailio"))
    lines.append("-" * (w + 26 + 26 + 20))
    for label, key, unit, nd in rows:
        a, b = g(K, key), g(S, key)
        if a is None and b is None:
            continue
        lines.append("%-*s %-26s %-26s %s" % (w, label, fmt(a, unit, nd), fmt(b, unit, nd), ratio(b, a)))
    if ceil:
        lines.append("")
        lines.append("harness ceiling (SIPp carrier -> SIPp seat, no server): %s calls/s" % fmt(agg(ceil, "max_cps")))
    if base:
        b = base[-1]
        lines.append("media harness baseline (signalling via kamailio, RTP direct): %s calls, loss %s%%, %s"
                     % (b.get("concurrent"), b.get("loss_pct"), "PASS" if b.get("pass") == 1 else "FAIL"))
    for name, d in (("kamailio", K), ("smartdesk", S)):
        b = d.get("busy_before_pct_max") if d else None
        if b is not None and b > 20:
            lines.append("WARNING: %s figures were measured while other work kept the machine %d%% busy" % (name, b))
    if S.get("ledger_rows_ok"):
        lines.append("smartdesk ledger: answered <= call rows <= placed in %d of %d repeats"
                     % (sum(1 for x in S["ledger_rows_ok"] if x == 1), len(S["ledger_rows_ok"])))
    lines.append("")
    lines.append("raw steps: %s" % meta.get("run_dir", "?"))
    text = "\n".join(lines) + "\n"
    open(out_txt, "w").write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
