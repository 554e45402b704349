#!/usr/bin/env python3
"""Writes the endpoint target's hand-made call-flow seeds (fuzz/seeds/endpoint/*.bin).

Input format (see fuzz_targets/endpoint.rs): records of op byte, 16-bit big-endian length,
payload. Ops: 0 carrier UDP, 1 seat UDP, 2 other UDP (first byte picks the source),
3 stream chunk (first byte picks connection and source), 4 advance time (u16, then unit
byte: even = ms, odd = s), 5 admission answer (0 route, 1 announce, 2 reject, 3 unavailable),
6 media notice (call index, notice), 7 seat answers one of its latest requests (high nibble: which, low nibble:
code index, ...), 8 carrier in-dialog request (high nibble: which response, low nibble:
method index; then body), 9 template carrier INVITE (number\\nSDP), 10 authenticated
REGISTER from the seat (byte: even UDP, odd TCP on connection (b >> 1) % 4; then Contact
values one per line, last line "=N" for Expires). Op 3 with only the selector byte closes
that connection.
"""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "endpoint")


def rec(op, payload=b""):
    return bytes([op]) + struct.pack(">H", len(payload)) + payload


def secs(n):
    return rec(4, struct.pack(">H", n) + b"\x01")


def ms(n):
    return rec(4, struct.pack(">H", n) + b"\x00")


INVITE = rec(9)
ROUTE = rec(5, b"\x00Acme")
SEAT_180, SEAT_200, SEAT_486, SEAT_487 = (rec(7, bytes([i])) for i in (1, 3, 8, 9))
ACK, BYE, CANCEL = (rec(8, bytes([i])) for i in (0, 1, 2))
OFFER = (b"v=0\r\no=carrier 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
         b"m=audio 20000 RTP/AVP 8\r\na=sendonly\r\n")
REINVITE = rec(8, b"\x04" + OFFER)
REGISTER = (b"REGISTER sip:smartdesk SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 198.51.100.5:5062;branch=z9hG4bKr1;rport\r\n"
            b"Max-Forwards: 70\r\nTo: <sip:op1@smartdesk>\r\nFrom: <sip:op1@smartdesk>;tag=r1\r\n"
            b"Call-ID: reg1@seat\r\nCSeq: 2 REGISTER\r\nContact: <sip:op1@198.51.100.5:5062>\r\n"
            b"Expires: 600\r\nAuthorization: Digest username=\"op1\", realm=\"smartdesk\", "
            b"nonce=\"x\", uri=\"sip:smartdesk\", response=\"00000000000000000000000000000000\", "
            b"qop=auth, nc=00000001, cnonce=\"c\", algorithm=MD5\r\nContent-Length: 0\r\n\r\n")
OPTIONS = (b"OPTIONS sip:smartdesk@192.0.2.1 SIP/2.0\r\n"
           b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKo1\r\nMax-Forwards: 70\r\n"
           b"To: <sip:smartdesk@192.0.2.1>\r\nFrom: <sip:c@192.0.2.10>;tag=o1\r\n"
           b"Call-ID: opt1@carrier\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")

SEEDS = {
    "answered-call": INVITE + ROUTE + SEAT_180 + SEAT_200 + ACK + secs(30) + BYE + SEAT_200
    + rec(6, b"\x00\x04") + secs(60),
    "announce": INVITE + rec(5, b"\x01\x00") + rec(6, b"\x00\x01") + secs(40),
    "cancel-while-ringing": INVITE + ROUTE + SEAT_180 + CANCEL + SEAT_200 + rec(7, b"\x19")
    + rec(8, b"\x00") + secs(40),
    "reject": INVITE + rec(5, b"\x02\x00\x01\xe6") + ACK + secs(40),
    "seat-busy": INVITE + ROUTE + SEAT_486 + secs(25) + secs(60),
    "ring-timeout": INVITE + ROUTE + SEAT_180 + secs(21) + SEAT_487 + secs(60),
    "reinvite-hold": INVITE + ROUTE + SEAT_200 + ACK + REINVITE + SEAT_200 + ACK
    + rec(6, b"\x00\x00") + secs(40),
    "register": rec(1, REGISTER) + ms(500),
    "tcp-options-ping": rec(3, b"\x00" + OPTIONS[:40]) + rec(3, b"\x00" + OPTIONS[40:])
    + rec(3, b"\x00\r\n\r\n"),
    "unavailable": INVITE + rec(5, b"\x03") + INVITE + ROUTE + ms(100) + secs(3600),
    "register-udp-refresh-remove": rec(10, b"\x00<sip:op1@198.51.100.5:5062>;expires=120")
    + secs(60) + rec(10, b"\x00<sip:op1@198.51.100.5:5062>\n<sip:op1@198.51.100.5:5099>;q=0.5")
    + rec(10, b"\x00*\n=0") + secs(200),
    # Seat registers over TCP connection 1; the call rings it there; it answers there and
    # hangs up, then the connection drops.
    "register-tcp-call": rec(10, b"\x03<sip:op1@198.51.100.5:5062>") + INVITE
    + ROUTE + SEAT_180 + SEAT_200 + ACK + rec(8, b"\x01") + rec(7, b"\x03")
    + rec(3, b"\x05") + secs(60),
}

os.makedirs(HERE, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(HERE, name + ".bin"), "wb") as f:
        f.write(data)
