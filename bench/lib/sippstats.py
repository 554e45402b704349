#!/usr/bin/env python3
"""One SIPp carrier run -> one line of key=value words.

usage: sippstats.py STAT_CSV RTT_CSV TARGET_CPS CALLS

STAT_CSV is SIPp's -trace_stat file (its last row holds the cumulative counters),
RTT_CSV its -trace_rtt file ("date_ms;response_time_ms;rtd_number" per call):
  rtd 1 = INVITE sent -> 200 received (call setup), rtd 2 = BYE sent -> 200 received.
achieved_cps is measured from the 200 OK timestamps (first to last), which shows whether
SIPp really kept the target rate: a starved SIPp falls behind instead of failing calls.
Percentiles are nearest-rank.
"""
import math
import sys


def counters(path):
    rows = [l.rstrip("\n") for l in open(path, encoding="latin-1") if l.strip()]
    head, last = rows[0].split(";"), rows[-1].split(";")
    c = dict(zip(head, last))

    def get(k):
        try:
            return int(float(c.get(k, "0") or 0))
        except ValueError:
            return 0
    return get


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = max(0, math.ceil(q * len(sorted_vals)) - 1)
    return sorted_vals[k]


def main():
    stat, rtt, rate, calls = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    g = counters(stat)
    out = {
        "target_cps": "%g" % rate,
        "calls": calls,
        "placed": g("OutgoingCall(C)"),
        "ok": g("SuccessfulCall(C)"),
        "failed": g("FailedCall(C)"),
        "retrans": g("Retransmissions(C)"),
        "timeouts": g("FailedTimeoutOnRecv(C)") + g("FailedMaxUDPRetrans(C)"),
        "unexpected": g("FailedUnexpectedMessage(C)"),
        "refused": g("FailedCallRejected(C)"),
        "dead_msgs": g("DeadCallMsgs(C)"),
    }
    setup, bye, t200 = [], [], []
    try:
        with open(rtt) as f:
            for line in f:
                p = line.strip().split(";")
                if len(p) != 3 or not p[2].isdigit():
                    continue
                if p[2] == "1":
                    t200.append(float(p[0]))
                    setup.append(float(p[1]))
                elif p[2] == "2":
                    bye.append(float(p[1]))
    except OSError:
        pass
    setup.sort()
    bye.sort()
    span = (max(t200) - min(t200)) / 1000.0 if len(t200) > 1 else 0
    out["achieved_cps"] = "%.1f" % ((len(t200) - 1) / span if span > 0 else 0)
    out["setup_n"] = len(setup)
    for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99)):
        out["setup_%s_ms" % name] = "%.3f" % pct(setup, q)
    out["setup_max_ms"] = "%.3f" % (setup[-1] if setup else float("nan"))
    out["bye_p50_ms"] = "%.3f" % pct(bye, 0.50)
    out["bye_p99_ms"] = "%.3f" % pct(bye, 0.99)
    print(" ".join("%s=%s" % kv for kv in out.items()))


if __name__ == "__main__":
    main()
