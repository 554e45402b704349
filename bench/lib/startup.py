#!/usr/bin/env python3
"""Start-up time of a SIP server: exec -> answers SIP OPTIONS, and exec -> systemd READY=1.

usage: startup.py REPEATS SIP_PORT TIMEOUT_S LOGFILE -- COMMAND...

Each repeat: binds a private sd_notify socket (NOTIFY_SOCKET, a unix datagram socket in a
temp dir), starts COMMAND (the exec time is taken just before the fork), sends an OPTIONS to
127.0.0.1:SIP_PORT every millisecond until any SIP response with that Call-ID comes back,
waits for READY=1 (if the server speaks sd_notify at all: up to 2 s after the SIP answer),
reads the RSS, then stops the server by its PID (TERM, 5 s grace, KILL).  Loopback only;
bounded: at most TIMEOUT_S per repeat, one OPTIONS per ms.  Prints one line of key=value
words: medians, mins and maxes over the repeats (ms), and ready_seen (repeats with READY=1).
"""
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def options(port, n):
    cid = "bench-startup-%d-%d@127.0.0.1" % (os.getpid(), n)
    msg = ("OPTIONS sip:ping@127.0.0.1:%d SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-startup-%d\r\n"
           "From: <sip:bench@127.0.0.1>;tag=st%d\r\n"
           "To: <sip:ping@127.0.0.1:%d>\r\n"
           "Call-ID: %s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           "Content-Length: 0\r\n\r\n") % (port, n, n, port, cid)
    return cid, msg


def rss_kb(pid):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop(proc):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def one(cmd, port, timeout_s, logf, n):
    tmp = tempfile.mkdtemp(prefix="sd-startup-")
    npath = os.path.join(tmp, "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(npath)
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind(("127.0.0.1", 0))
    cid, msg = options(port, n)
    msg = msg.replace("{lport}", str(us.getsockname()[1])).encode()
    env = dict(os.environ, NOTIFY_SOCKET=npath)
    sip_ms = ready_ms = None
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    try:
        deadline = t0 + timeout_s
        next_send = t0
        while time.monotonic() < deadline and (sip_ms is None or ready_ms is None):
            if proc.poll() is not None:
                raise SystemExit("server exited with %s during start-up (see the log)" % proc.returncode)
            now = time.monotonic()
            if sip_ms is None and now >= next_send:
                try:
                    us.sendto(msg, ("127.0.0.1", port))
                except OSError:
                    pass
                next_send = now + 0.001
            if sip_ms is not None and now > t0 + sip_ms / 1000 + 2:
                break          # no READY=1 within 2 s of answering: the server does not notify
            r, _, _ = select.select([us, ns], [], [], 0.001)
            for s in r:
                d = s.recv(65536)
                t = (time.monotonic() - t0) * 1000
                if s is us and d.startswith(b"SIP/2.0 ") and cid.encode() in d and sip_ms is None:
                    sip_ms = t
                elif s is ns and b"READY=1" in d.split(b"\n") and ready_ms is None:
                    ready_ms = t
        rss = rss_kb(proc.pid)
    finally:
        stop(proc)
        ns.close()
        us.close()
        os.unlink(npath)
        os.rmdir(tmp)
    return sip_ms, ready_ms, rss


def main():
    reps, port, timeout_s, log = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # run the finally: stop the server
    sips, readys, rss = [], [], []
    with open(log, "ab") as logf:
        for n in range(reps):
            s, r, m = one(cmd, port, timeout_s, logf, n)
            if s is not None:
                sips.append(s)
            if r is not None:
                readys.append(r)
            rss.append(m)
            time.sleep(0.3)
    out = ["repeats=%d" % reps, "answered=%d" % len(sips), "ready_seen=%d" % len(readys)]
    for name, v in (("sip", sips), ("ready", readys)):
        if v:
            out += ["%s_ms=%.1f" % (name, statistics.median(v)), "%s_ms_min=%.1f" % (name, min(v)),
                    "%s_ms_max=%.1f" % (name, max(v))]
    out.append("rss_after_start_kb=%d" % statistics.median(rss))
    print(" ".join(out))


if __name__ == "__main__":
    main()
