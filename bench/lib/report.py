#!/usr/bin/env python3
"""Turn the raw records of one bench run into the human table and the JSON results file.

usage: report.py RAW_RECORDS OUT_JSON OUT_TXT

RAW_RECORDS has one line per measurement, key=value words (written by run.sh):
  kind=ceiling|search|latency|memory|media|media_baseline|startup
  server=sipp|kamailio|smartdesk|smartdesk_pg|rtpengine  repeat=N ...
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


def row(label, cells, unit="", nd=0):
    return [label] + [fmt(c, unit, nd) for c in cells]


def table(lines, header, rows, ratios):
    """rows: (label, [agg per column], nd); ratios: [(name, i, j)] = column i / column j."""
    body = []
    for label, cells, nd in rows:
        if all(c is None for c in cells):
            continue
        body.append([label] + [fmt(c, "", nd) for c in cells] + [ratio(cells[i], cells[j]) for _, i, j in ratios])
    if not body:
        return
    head = header + [name for name, _, _ in ratios]
    w = [max(len(r[k]) for r in body + [head]) for k in range(len(head))]
    lines.append("")
    lines.append("  ".join(h.ljust(w[k]) for k, h in enumerate(head)).rstrip())
    lines.append("-" * (sum(w) + 2 * (len(w) - 1)))
    for r in body:
        lines.append("  ".join(c.ljust(w[k]) for k, c in enumerate(r)).rstrip())


SERVERS = ("kamailio", "smartdesk", "smartdesk_pg", "rtpengine")


def main():
    raw, out_json, out_txt = sys.argv[1:4]
    recs = [parse(l) for l in open(raw) if l.strip()]
    meta = next((r for r in recs if r.get("kind") == "meta"), {})
    by = lambda kind, server: [r for r in recs if r.get("kind") == kind and r.get("server") == server]
    base = by("media_baseline", "kamailio")

    def base_jitter(n):
        # jitter of the RTP-direct baseline at the same number of calls (None if not run)
        b = [r for r in base if r.get("concurrent") == n]
        return agg(b, "jitter_mean_ms")

    res = {"generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "meta": meta, "servers": {}}
    for server in SERVERS:
        s, l = by("search", server), by("latency", server)
        m, md, st = by("memory", server), by("media", server), by("startup", server)
        if not (s or l or m or md or st):
            continue
        added = None
        if md and base_jitter(md[-1].get("max_concurrent")) and agg(md, "best.jitter_mean_ms"):
            bj = base_jitter(md[-1].get("max_concurrent"))["median"]
            added = {"median": agg(md, "best.jitter_mean_ms")["median"] - bj, "min": 0, "max": 0, "n": 1}
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
            "media_relayed_pps": ({"median": md[-1]["max_concurrent"] * 100, "min": 0, "max": 0, "n": 1}
                                  if md and isinstance(md[-1].get("max_concurrent"), int) else None),
            "media_us_per_pkt": agg(md, "best.relay_us_per_pkt"),
            "media_all_us_per_pkt": agg(md, "best.all_us_per_pkt"),
            "media_jitter_mean_ms": agg(md, "best.jitter_mean_ms"),
            "media_jitter_max_ms": agg(md, "best.jitter_max_ms"),
            "media_return_jitter_mean_ms": agg(md, "best.return_jitter_mean_ms"),
            "media_added_jitter_ms": added,
            "media_setup_p50_ms": agg(md, "best.setup_p50_ms"),
            "media_setup_p99_ms": agg(md, "best.setup_p99_ms"),
            "media_signalling_cpu_s": agg(md, "best.signalling_cpu_s"),
            "media_machine_busy_pct": agg(md, "best.machine_busy_pct"),
            "startup_sip_ms": agg(st, "sip_ms"),
            "startup_ready_ms": agg(st, "ready_ms"),
            "startup_rss_kb": agg(st, "rss_after_start_kb"),
            "busy_before_pct_max": max(values(s, "best.busy_before_pct") + values(l, "ref.busy_before_pct")
                                       + values(md, "best.busy_before_pct") or [None],
                                       key=lambda x: -1 if x is None else x),
            "ledger_rows_ok": [r.get("ledger_ok") for r in s if "ledger_ok" in r],
            "runs": s + l + m + md + st,
        }
    ceil = by("ceiling", "sipp")
    if ceil:
        res["harness_ceiling"] = {"max_cps": agg(ceil, "max_cps"),
                                  "setup_p50_ms_at_max": agg(ceil, "best.setup_p50_ms"),
                                  "runs": ceil}
    if base:
        res["media_harness_baseline"] = {"runs": base}
    json.dump(res, open(out_json, "w"), indent=1, sort_keys=True)

    S = res["servers"]
    col = lambda server, key: S.get(server, {}).get(key)
    lat = meta.get("lat_cps", "?")
    lines = []
    lines.append("smartdesk bench  %s  repeats=%s  %s" % (res["generated"], meta.get("repeat", "?"),
                                                           "quick" if meta.get("quick") == 1 else "full"))
    lines.append("machine: %s, load average at start %s" % (str(meta.get("machine", "?")).replace("_", " "),
                                                          meta.get("load_at_start", "?")))
    lines.append("ratios: > 1 means the first is higher (calls/s: better; CPU, latency, memory, time: worse)")

    # signalling: Kamailio vs smartdesk on SQLite and on PostgreSQL
    sig = ("kamailio", "smartdesk", "smartdesk_pg")
    table(lines, ["signalling, median (min..max) of repeats", "kamailio", "smartdesk sqlite", "smartdesk pg"], [
        (label, [col(x, key) for x in sig], nd) for label, key, nd in (
            ("max calls/s, 0 failed (bisection)", "max_cps", 0),
            ("server CPU per call at max, us", "cpu_us_per_call_at_max", 0),
            ("machine busy at max, %", "machine_busy_pct_at_max", 0),
            ("setup p50 at max, ms", "setup_p50_ms_at_max", 2),
            ("setup p99 at max, ms", "setup_p99_ms_at_max", 2),
            ("setup p50 at %s cps, ms" % lat, "setup_p50_ms", 3),
            ("setup p99 at %s cps, ms" % lat, "setup_p99_ms", 3),
            ("BYE->200 p50 at %s cps, ms" % lat, "bye_p50_ms", 3),
            ("server CPU per call at %s cps, us" % lat, "cpu_us_per_call_at_latency_rate", 0),
            ("memory per held call (RSS), KiB", "rss_kb_per_call", 2),
            ("memory per held call (PSS), KiB", "pss_kb_per_call", 2),
            ("idle RSS, KiB", "idle_rss_kb", 0),
            ("start-up: exec -> answers OPTIONS, ms", "startup_sip_ms", 1),
            ("start-up: exec -> READY=1, ms", "startup_ready_ms", 1),
            ("RSS right after start-up, KiB", "startup_rss_kb", 0),
        )], [("sqlite/kam", 1, 0), ("pg/kam", 2, 0), ("pg/sqlite", 2, 1)])

    # media: smartdesk's relay vs rtpengine (userspace) behind Kamailio
    med = ("rtpengine", "smartdesk")
    table(lines, ["media (G.711 both ways, 0 loss)", "rtpengine", "smartdesk"], [
        (label, [col(x, key) for x in med], nd) for label, key, nd in (
            ("concurrent calls relayed, 0 lost", "media_max_concurrent", 0),
            ("packets/s relayed at that N", "media_relayed_pps", 0),
            ("relay CPU per relayed packet, us", "media_us_per_pkt", 2),
            ("relay + signalling CPU per packet, us", "media_all_us_per_pkt", 2),
            ("jitter at the seat, mean, ms", "media_jitter_mean_ms", 3),
            ("jitter at the seat, worst stream, ms", "media_jitter_max_ms", 3),
            ("added jitter vs RTP direct at same N, ms", "media_added_jitter_ms", 3),
            ("return jitter at the carrier, mean, ms", "media_return_jitter_mean_ms", 3),
            ("setup p50 at that N, ms", "media_setup_p50_ms", 2),
            ("setup p99 at that N, ms", "media_setup_p99_ms", 2),
            ("kamailio CPU over the step, s", "media_signalling_cpu_s", 2),
            ("machine busy, %", "media_machine_busy_pct", 0),
        )], [("smartdesk/rtpengine", 1, 0)])

    if ceil:
        lines.append("")
        lines.append("harness ceiling (SIPp carrier -> SIPp seat, no server): %s calls/s" % fmt(agg(ceil, "max_cps")))
    for b in base:
        lines.append("media harness baseline (signalling via kamailio, RTP direct): %s calls, loss %s%%, jitter mean %s ms, %s"
                     % (b.get("concurrent"), b.get("loss_pct"), b.get("jitter_mean_ms"), "PASS" if b.get("pass") == 1 else "FAIL"))
    for name in SERVERS:
        b = col(name, "busy_before_pct_max")
        if b is not None and b > 20:
            lines.append("WARNING: %s figures were measured while other work kept the machine %d%% busy" % (name, b))
    for name in ("smartdesk", "smartdesk_pg"):
        ok = col(name, "ledger_rows_ok")
        if ok:
            lines.append("%s ledger: answered <= call rows <= placed in %d of %d repeats"
                         % (name, sum(1 for x in ok if x == 1), len(ok)))
    lines.append("")
    lines.append("raw steps: %s" % meta.get("run_dir", "?"))
    text = "\n".join(lines) + "\n"
    open(out_txt, "w").write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
