/*
 * rtpload: the two G.711 media endpoints of bench/run.sh's media test.
 * Compiled at run time (cc -O2 -o rtpload rtpload.c); never committed as a binary.
 *
 *   rtpload gen  UDP_PORT TCP_PORT MAX_SECONDS REPORT     the carrier's phone
 *   rtpload echo UDP_PORT MAX_SECONDS REPORT              the seat's phone
 *
 * Both bind 127.0.0.1:UDP_PORT, the port the SIPp carrier (gen) and the SIPp seat (echo)
 * put in their SDP, and send from that same port, so a relay that latches onto the source
 * of the media it receives (symmetric RTP) sends back to where we count.
 *
 * gen listens on 127.0.0.1:TCP_PORT for SIPp's twin-command channel (sipp -3pcc): after the
 * 200 OK the carrier scenario sends "X-Rtp: CALL_NUMBER IP PORT DURATION_MS" (the relay's
 * address from the answer SDP).  gen then streams PCMU to IP:PORT: 160-byte payload (a 440 Hz
 * tone), 20 ms apart, for DURATION_MS, SSRC = 0x5EB00000 + CALL_NUMBER.  It counts what it
 * sent and what comes back per SSRC.
 *
 * echo counts every RTP packet per SSRC (sequence gaps, RFC 3550 interarrival jitter) and
 * sends it back unchanged to its source.
 *
 * Stops on SIGTERM/SIGINT or after MAX_SECONDS and writes one line of key=value words to
 * REPORT (and stdout).  Loss is exact: the harness compares gen's `sent` with echo's `rx`
 * (forward) and echo's `echoed` with gen's `rx` (return).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_STREAMS 65536
#define SSRC_BASE 0x5EB00000u
#define BATCH 64
#define PAYLOAD 160
#define PTIME_NS 20000000LL

struct stream {
    uint32_t ssrc;
    int active, seen;
    struct sockaddr_in dst;
    uint16_t seq, first_seq, last_seq;
    uint32_t ts;
    long long next_ns, end_ns;
    uint64_t sent, rx;
    uint32_t cycles, max_ext, first_ext;
    double jitter, prev_transit;
};

static struct stream *st;
static volatile sig_atomic_t stop_flag;
static uint8_t tone[8000];          /* one second of 440 Hz, mu-law */

static void on_signal(int s) { (void)s; stop_flag = 1; }

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* G.711 mu-law encoder (ITU-T G.711, with the usual 0x84 bias). */
static uint8_t mulaw(int16_t pcm)
{
    int sign = (pcm < 0) ? 0x80 : 0, exp = 7, mant;
    int v = pcm < 0 ? -pcm : pcm;
    if (v > 32635) v = 32635;
    v += 0x84;
    for (int m = 0x4000; !(v & m) && exp > 0; m >>= 1) exp--;
    mant = (v >> (exp + 3)) & 0x0f;
    return (uint8_t)~(sign | (exp << 4) | mant);
}

static int udp_socket(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int sz = 16 << 20;
    /* FORCE variants ignore rmem_max/wmem_max when root; fall back otherwise */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind udp"); exit(1); }
    return fd;
}

/* kernel drop counter of our UDP socket (/proc/net/udp, last column) */
static long sock_drops(int port)
{
    FILE *f = fopen("/proc/net/udp", "r");
    char line[512];
    long drops = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned lport;
        char *p = strchr(line, ':');
        if (!p || !(p = strchr(p + 1, ':')) || sscanf(p + 1, "%x", &lport) != 1 || (int)lport != port)
            continue;
        char *last = strrchr(line, ' ');
        if (last) drops = atol(last + 1);
    }
    fclose(f);
    return drops;
}

/* account one received RTP packet of stream s at time t (sequence gaps, jitter) */
static void account(struct stream *s, const uint8_t *p, long long t)
{
    uint16_t seq = (uint16_t)(p[2] << 8 | p[3]);
    uint32_t ts = (uint32_t)p[4] << 24 | p[5] << 16 | p[6] << 8 | p[7];
    if (!s->seen) {
        s->seen = 1;
        s->first_ext = s->max_ext = seq;
        s->last_seq = seq;
    } else {
        if (seq < s->last_seq && (uint16_t)(s->last_seq - seq) > 30000)
            s->cycles += 65536;
        uint32_t ext = s->cycles + seq;
        if (ext > s->max_ext) s->max_ext = ext;
        s->last_seq = seq;
    }
    s->rx++;
    double transit = (double)t / 1e9 * 8000.0 - ts;
    if (s->rx > 1) {
        double d = fabs(transit - s->prev_transit);
        s->jitter += (d - s->jitter) / 16.0;
    }
    s->prev_transit = transit;
}

static struct stream *by_ssrc(uint32_t ssrc)
{
    uint32_t i = ssrc - SSRC_BASE;
    return i < MAX_STREAMS ? &st[i] : NULL;
}

static void summary(uint64_t *rx_all, uint64_t *gaps_all, double *jmean, double *jmax,
                    uint64_t *flows)
{
    uint64_t rx = 0, gaps = 0, fl = 0;
    double js = 0, jm = 0;
    for (int i = 0; i < MAX_STREAMS; i++) {
        struct stream *s = &st[i];
        if (!s->seen) continue;
        fl++;
        rx += s->rx;
        uint64_t exp = (uint64_t)(s->max_ext - s->first_ext + 1);
        if (exp > s->rx) gaps += exp - s->rx;
        double j = s->jitter / 8.0;
        js += j;
        if (j > jm) jm = j;
    }
    *rx_all = rx; *gaps_all = gaps; *flows = fl;
    *jmean = fl ? js / fl : 0; *jmax = jm;
}

static void write_report(const char *path, const char *line)
{
    fputs(line, stdout);
    if (path) {
        FILE *f = fopen(path, "w");
        if (f) { fputs(line, f); fclose(f); }
    }
}

static int run_echo(int port, double max_s, const char *report)
{
    int fd = udp_socket(port);
    static uint8_t bufs[BATCH][2048];
    struct mmsghdr m[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in from[BATCH];
    uint64_t echoed = 0, foreign = 0, send_err = 0;
    long long end = now_ns() + (long long)(max_s * 1e9);
    while (!stop_flag && now_ns() < end) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        if (poll(&pf, 1, 100) <= 0) continue;
        for (;;) {
            for (int i = 0; i < BATCH; i++) {
                iov[i].iov_base = bufs[i];
                iov[i].iov_len = sizeof bufs[i];
                memset(&m[i].msg_hdr, 0, sizeof m[i].msg_hdr);
                m[i].msg_hdr.msg_iov = &iov[i];
                m[i].msg_hdr.msg_iovlen = 1;
                m[i].msg_hdr.msg_name = &from[i];
                m[i].msg_hdr.msg_namelen = sizeof from[i];
            }
            int n = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
            if (n <= 0) break;
            long long t = now_ns();
            int k = 0;
            for (int i = 0; i < n; i++) {
                uint8_t *p = bufs[i];
                struct stream *s = NULL;
                if (m[i].msg_len >= 12 && (p[0] >> 6) == 2)
                    s = by_ssrc((uint32_t)p[8] << 24 | p[9] << 16 | p[10] << 8 | p[11]);
                if (!s) { foreign++; continue; }
                account(s, p, t);
                iov[i].iov_len = m[i].msg_len;
                if (k != i) { m[k] = m[i]; }
                k++;
            }
            /* echo the RTP packets back to their sources, in order */
            int off = 0;
            while (off < k) {
                int s = sendmmsg(fd, m + off, k - off, 0);
                if (s <= 0) { if (errno == EAGAIN || errno == ENOBUFS) { usleep(50); continue; } send_err += k - off; break; }
                off += s;
                echoed += s;
            }
            if (n < BATCH) break;
        }
    }
    uint64_t rx, gaps, flows;
    double jmean, jmax;
    char line[512];
    summary(&rx, &gaps, &jmean, &jmax, &flows);
    snprintf(line, sizeof line,
             "echo_flows=%llu echo_rx=%llu echo_gaps=%llu echoed=%llu echo_send_errors=%llu "
             "echo_foreign=%llu echo_sock_drops=%ld jitter_mean_ms=%.3f jitter_max_ms=%.3f\n",
             (unsigned long long)flows, (unsigned long long)rx, (unsigned long long)gaps,
             (unsigned long long)echoed, (unsigned long long)send_err, (unsigned long long)foreign,
             sock_drops(port), jmean, jmax);
    write_report(report, line);
    return 0;
}

/* parse "X-Rtp: N IP PORT DUR" lines out of the twin channel buffer */
static uint64_t commands, bad_commands;
static int handle_command(char *line, long long t)
{
    unsigned call;
    char ip[64];
    int port, dur;
    if (sscanf(line, "X-Rtp: %u %63s %d %d", &call, ip, &port, &dur) != 4 || call >= MAX_STREAMS ||
        port <= 0 || port > 65535) {
        bad_commands++;
        return -1;
    }
    struct stream *s = &st[call];
    if (s->active || s->sent) { bad_commands++; return -1; }
    memset(&s->dst, 0, sizeof s->dst);
    s->dst.sin_family = AF_INET;
    s->dst.sin_port = htons(port);
    if (inet_pton(AF_INET, ip, &s->dst.sin_addr) != 1) { bad_commands++; return -1; }
    s->ssrc = SSRC_BASE + call;
    s->seq = (uint16_t)(call * 2654435761u >> 7);
    s->ts = call * 40503u;
    s->next_ns = t;
    s->end_ns = t + (long long)dur * 1000000LL;
    s->active = 1;
    commands++;
    return (int)call;
}

static int run_gen(int port, int tcp_port, double max_s, const char *report)
{
    int fd = udp_socket(port);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(tcp_port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4) < 0) { perror("tcp"); return 1; }

    int cfd = -1;
    static char cbuf[1 << 16];
    size_t clen = 0;
    static int active[MAX_STREAMS];
    int nactive = 0;
    static uint8_t pkts[BATCH][12 + PAYLOAD];
    static uint8_t rbufs[BATCH][2048];
    struct mmsghdr m[BATCH], r[BATCH];
    struct iovec iov[BATCH], riov[BATCH];
    uint64_t sent = 0, send_err = 0, foreign = 0, late_ticks = 0;
    long long end = now_ns() + (long long)(max_s * 1e9);

    while (!stop_flag && now_ns() < end) {
        struct pollfd pf[3] = { { .fd = fd, .events = POLLIN }, { .fd = lfd, .events = POLLIN },
                                { .fd = cfd, .events = POLLIN } };
        poll(pf, cfd >= 0 ? 3 : 2, 1);
        long long t = now_ns();
        if (pf[1].revents & POLLIN) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0) { if (cfd >= 0) close(cfd); cfd = c; clen = 0; }
        }
        if (cfd >= 0 && (pf[2].revents & (POLLIN | POLLHUP))) {
            ssize_t k = read(cfd, cbuf + clen, sizeof cbuf - 1 - clen);
            if (k <= 0) { close(cfd); cfd = -1; }
            else {
                clen += (size_t)k;
                cbuf[clen] = 0;
                char *start = cbuf, *nl;
                while ((nl = strpbrk(start, "\r\n\x1b"))) {
                    *nl = 0;
                    char *x = strstr(start, "X-Rtp:");
                    int idx = x ? handle_command(x, t) : -1;
                    if (idx >= 0) active[nactive++] = idx;
                    start = nl + 1;
                }
                clen = strlen(start);
                memmove(cbuf, start, clen);
            }
        }
        /* returning media */
        for (;;) {
            for (int i = 0; i < BATCH; i++) {
                riov[i].iov_base = rbufs[i];
                riov[i].iov_len = sizeof rbufs[i];
                memset(&r[i].msg_hdr, 0, sizeof r[i].msg_hdr);
                r[i].msg_hdr.msg_iov = &riov[i];
                r[i].msg_hdr.msg_iovlen = 1;
            }
            int n = recvmmsg(fd, r, BATCH, MSG_DONTWAIT, NULL);
            if (n <= 0) break;
            long long tr = now_ns();
            for (int i = 0; i < n; i++) {
                uint8_t *p = rbufs[i];
                struct stream *s = NULL;
                if (r[i].msg_len >= 12 && (p[0] >> 6) == 2)
                    s = by_ssrc((uint32_t)p[8] << 24 | p[9] << 16 | p[10] << 8 | p[11]);
                if (s && s->sent) account(s, p, tr); else foreign++;
            }
            if (n < BATCH) break;
        }
        /* due packets: one per stream per 20 ms; a stream more than one packet behind
           sends its backlog at once (counted as a late tick) rather than drifting */
        t = now_ns();
        int nb = 0;
        for (int i = 0; i < nactive; i++) {
            struct stream *s = &st[active[i]];
            while (s->active && s->next_ns <= t) {
                if (s->next_ns >= s->end_ns) { s->active = 0; break; }
                if (t - s->next_ns > PTIME_NS) late_ticks++;
                uint8_t *p = pkts[nb];
                p[0] = 0x80; p[1] = 0;              /* V=2, PT 0 (PCMU) */
                p[2] = s->seq >> 8; p[3] = s->seq & 0xff;
                p[4] = s->ts >> 24; p[5] = s->ts >> 16; p[6] = s->ts >> 8; p[7] = s->ts;
                p[8] = s->ssrc >> 24; p[9] = s->ssrc >> 16; p[10] = s->ssrc >> 8; p[11] = s->ssrc;
                memcpy(p + 12, tone + (s->ts % 8000 <= 8000 - PAYLOAD ? s->ts % 8000 : 0), PAYLOAD);
                iov[nb].iov_base = p;
                iov[nb].iov_len = 12 + PAYLOAD;
                memset(&m[nb].msg_hdr, 0, sizeof m[nb].msg_hdr);
                m[nb].msg_hdr.msg_iov = &iov[nb];
                m[nb].msg_hdr.msg_iovlen = 1;
                m[nb].msg_hdr.msg_name = &s->dst;
                m[nb].msg_hdr.msg_namelen = sizeof s->dst;
                s->seq++;
                s->ts += PAYLOAD;
                s->next_ns += PTIME_NS;
                s->sent++;
                if (++nb == BATCH) {
                    int off = 0;
                    while (off < nb) {
                        int k = sendmmsg(fd, m + off, nb - off, 0);
                        if (k <= 0) { if (errno == EAGAIN || errno == ENOBUFS) { usleep(50); continue; } send_err += nb - off; break; }
                        off += k;
                    }
                    sent += off;
                    nb = 0;
                }
            }
            if (!s->active) { active[i--] = active[--nactive]; }
        }
        if (nb) {
            int off = 0;
            while (off < nb) {
                int k = sendmmsg(fd, m + off, nb - off, 0);
                if (k <= 0) { if (errno == EAGAIN || errno == ENOBUFS) { usleep(50); continue; } send_err += nb - off; break; }
                off += k;
            }
            sent += off;
        }
    }
    uint64_t rx, gaps, flows, streams = 0, pkts_sent = 0;
    double jmean, jmax;
    for (int i = 0; i < MAX_STREAMS; i++) if (st[i].sent) { streams++; pkts_sent += st[i].sent; }
    summary(&rx, &gaps, &jmean, &jmax, &flows);
    char line[640];
    snprintf(line, sizeof line,
             "gen_streams=%llu gen_sent=%llu gen_send_errors=%llu gen_rx=%llu gen_rx_flows=%llu gen_gaps=%llu "
             "gen_foreign=%llu gen_late_ticks=%llu gen_sock_drops=%ld commands=%llu bad_commands=%llu "
             "return_jitter_mean_ms=%.3f return_jitter_max_ms=%.3f\n",
             (unsigned long long)streams, (unsigned long long)pkts_sent, (unsigned long long)send_err,
             (unsigned long long)rx, (unsigned long long)flows, (unsigned long long)gaps,
             (unsigned long long)foreign, (unsigned long long)late_ticks, sock_drops(port),
             (unsigned long long)commands, (unsigned long long)bad_commands, jmean, jmax);
    (void)sent;
    write_report(report, line);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) goto usage;
    st = calloc(MAX_STREAMS, sizeof *st);
    for (int i = 0; i < 8000; i++)
        tone[i] = mulaw((int16_t)(8000.0 * sin(2 * M_PI * 440.0 * i / 8000.0)));
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(argv[1], "echo") && argc >= 4)
        return run_echo(atoi(argv[2]), atof(argv[3]), argc > 4 ? argv[4] : NULL);
    if (!strcmp(argv[1], "gen") && argc >= 5)
        return run_gen(atoi(argv[2]), atoi(argv[3]), atof(argv[4]), argc > 5 ? argv[5] : NULL);
usage:
    fprintf(stderr, "usage: rtpload gen UDP_PORT TCP_PORT MAX_SECONDS [REPORT]\n"
                    "       rtpload echo UDP_PORT MAX_SECONDS [REPORT]\n");
    return 2;
}
