"""The hostile inputs of test_hostile_pico.py: each kind of wrong line a Pico W's serial link can
carry (Case), the counter it must grow and the events.csv row it must make."""
import time

from fake_pico import pico_us
from harness import wait_for

BAD, UNKNOWN, ORDER, UNMATCHED, ERRORS = "lines_bad", "lines_unknown", "lines_out_of_order", "replies_unmatched", \
    "pico_errors"
# The fit may be off the fake's true clock by the link's delay asymmetry: at most half the round
# trip of its exchanges (a few ms on a loaded machine, more right after a storm), plus a margin.
FIT_TOLERANCE_US = 5000


def fit_tolerance_us(rtt_us):
    return max(FIT_TOLERANCE_US, rtt_us / 2 + 1000)
HOUR_US = 3_600_000_000


class Case:
    """One hostile input. action(fake) sends it. counter must grow by exactly n (at least n with
    at_least); detail: a new pico_bad_line (or `event`) row must contain it; segments: how many
    new clock segments it makes; loose: other counters may grow too (a conversation cut short);
    late_pongs: PONGs queued behind a long write may come after their burst closed and count as
    unmatched."""

    def __init__(self, label, action, counter=BAD, n=1, detail=None, event="pico_bad_line", at_least=False,
                 segments=0, timeout=5, loose=False, late_pongs=False):
        self.label, self.action, self.counter, self.n = label, action, counter, n
        self.detail, self.event, self.at_least, self.segments, self.timeout = detail, event, at_least, segments, timeout
        self.loose, self.late_pongs = loose, late_pongs


def send(template, **extra):
    return lambda p: p.send(template, **extra)


def raw(data):
    return lambda p: p.write(data)


def hijack(make):
    """The next PING is answered by make(fake, nonce, t_rx) (a string with {seq}) instead."""
    def action(p):
        done = []

        def answer(fake, nonce, t_rx):
            text = make(fake, nonce, t_rx)
            for t in text if isinstance(text, list) else [text]:
                fake.send(t)
            done.append(nonce)
        p.hijack = answer
        wait_for(lambda: done, 5, what="a PING to answer")
    return action


def hb(seq):
    """A heartbeat with the fake's true LED mask and the given seq ("{back}": 1000 back)."""
    return lambda p: p.send("HB " + seq + " {t} up=1 led={mask} drop=0", mask=mask(p), back=max(1, p.seq - 1000))


def repeated(kind, rest):
    """A good line, then a `kind` line with the same seq."""
    def action(p):
        with p.lock:
            p.send("HB {seq} {t} up=1 led={mask} drop=0", mask=mask(p))
            p.send(kind + " {last} {t} " + rest, mask=mask(p))
    return action


def mask(p):
    return sum(1 << ch for ch, v in p.level.items() if v)


def in_fragments(p):
    with p.lock:
        data = f"HB {p.next_seq()} {pico_us()} up=1 led={mask(p)} drop=0\n".encode()
        for i in range(len(data)):
            p.write(data[i:i + 1])
            time.sleep(0.002)


def padded(total):
    """A valid LOG line of exactly `total` bytes before its newline."""
    def action(p):
        with p.lock:
            head = f"LOG {p.next_seq()} {pico_us()} info "
            p.write((head + "p" * (total - len(head)) + "\n").encode())
    return action


def garbage_lines(rng, count):
    """Lines of random bytes that can never be PSYNC/1 (each starts with a byte above 0x7f), some
    over the 160-byte bound; no '>' (so no '>>> ' prompt) and no newline or CR inside."""
    alphabet = bytes(b for b in range(256) if b not in b"\n\r>")
    lines = []
    for _ in range(count):
        n = rng.choice((1, 5, 40, 63, 100, 159, 160, 161, 300))
        lines.append(bytes([rng.randrange(0x80, 0x100)]) + bytes(rng.choice(alphabet) for _ in range(n - 1)) + b"\n")
    return b"".join(lines), count


def pico_cases():
    cases = []
    add = cases.append
    boot = "boot=0badb007 uid=1"  # never the fake's own boot id: a HELLO taken by mistake shows as a segment
    # ---- HELLO 0 <t> proto=1 fw= board= boot= uid= ----
    for label, text, detail in (
            ("HELLO t a word", f"HELLO 0 abc proto=1 fw=x board=x {boot}", "HELLO: <t>"),
            ("HELLO t negative", f"HELLO 0 -5 proto=1 fw=x board=x {boot}", "HELLO: <t>"),
            ("HELLO t 2^64", f"HELLO 0 {2**64} proto=1 fw=x board=x {boot}", "HELLO: <t>"),
            ("HELLO t 2^63 (past the clock bound)", f"HELLO 0 {2**63} proto=1 fw=x board=x {boot}", "HELLO: <t>"),
            ("HELLO seq field a word", f"HELLO zz {{t}} proto=1 fw=x board=x {boot}", "HELLO: <seq>"),
            ("HELLO seq field 2^32", f"HELLO {2**32} {{t}} proto=1 fw=x board=x {boot}", "HELLO: <seq>"),
            ("HELLO proto a word", f"HELLO 0 {{t}} proto=one fw=x board=x {boot}", "proto="),
            ("HELLO proto=0", f"HELLO 0 {{t}} proto=0 fw=x board=x {boot}", "proto="),
            ("HELLO proto=2", f"HELLO 0 {{t}} proto=2 fw=x board=x {boot}", "PSYNC/2"),
            ("HELLO proto=2^64", f"HELLO 0 {{t}} proto={2**64} fw=x board=x {boot}", "proto="),
            ("HELLO without proto", f"HELLO 0 {{t}} fw=x board=x {boot}", "proto="),
            ("HELLO without boot", "HELLO 0 {t} proto=1 fw=x board=x uid=1", "boot="),
            ("HELLO boot empty", "HELLO 0 {t} proto=1 fw=x board=x boot= uid=1", "boot="),
            ("HELLO alone", "HELLO", "HELLO: <seq>"),
    ):
        add(Case(label, send(text), detail=detail))
    # ---- PONG <seq> <nonce> <t_rx> <t_tx>, unasked ----
    for label, text, detail in (
            ("PONG seq a word", "PONG x 5 {t} {t}", "PONG: <seq>"),
            ("PONG seq negative", "PONG -1 5 {t} {t}", "PONG: <seq>"),
            ("PONG seq 2^32", f"PONG {2**32} 5 {{t}} {{t}}", "PONG: <seq>"),
            ("PONG nonce of 17 characters", "PONG {seq} " + "n" * 17 + " {t} {t}", "PONG: <nonce>"),
            ("PONG without times", "PONG {seq} 5", "PONG: "),
    ):
        add(Case(label, send(text), detail=detail))
    add(Case("PONG for a PING never sent", send("PONG {seq} 999999999 {t} {t}"), counter=UNMATCHED,
             detail="never sent"))
    # ---- PONG answering a real PING with wrong times: never an exchange, never in the fit ----
    for label, make, detail in (
            ("PONG t_rx a word", lambda p, n, t: f"PONG {{seq}} {n} abc {{t}}", "PONG: <t_rx>"),
            ("PONG t_rx negative", lambda p, n, t: f"PONG {{seq}} {n} -1 {{t}}", "PONG: <t_rx>"),
            ("PONG t_rx 2^64", lambda p, n, t: f"PONG {{seq}} {n} {2**64} {{t}}", "PONG: <t_rx>"),
            ("PONG t_rx 2^62 (centuries)", lambda p, n, t: f"PONG {{seq}} {n} {2**62} {2**62 + 10}", "PONG: <t_rx>"),
            ("PONG t_tx 2^64", lambda p, n, t: f"PONG {{seq}} {n} {t} {2**64}", "PONG: <t_tx>"),
            ("PONG t_tx before t_rx", lambda p, n, t: f"PONG {{seq}} {n} {t} {t - 5000}", "before <t_rx>"),
            ("PONG answered 20 s after it was read", lambda p, n, t: f"PONG {{seq}} {n} {t} {t + 20_000_000}",
             "after <t_rx>"),
    ):
        add(Case(label, hijack(make), detail=detail))
    add(Case("PONG an hour off the fit (real nonce)",
             hijack(lambda p, n, t: f"PONG {{seq}} {n} {t + HOUR_US} {pico_us() + HOUR_US}"), n=0))
    add(Case("PONG answered twice", hijack(lambda p, n, t: [f"PONG {{seq}} {n} {t} {{t}}"] * 2), counter=UNMATCHED,
             detail="never sent"))
    add(Case("PONG with unknown keys", hijack(lambda p, n, t: f"PONG {{seq}} {n} {t} {{t}} x=1 future=yes"), n=0))
    # ---- LED <seq> <t> <ch> <level> id=<cmd_id> ----
    for label, text, detail in (
            ("LED t a word", "LED {seq} abc 3 1 id=x", "LED: <t>"),
            ("LED t negative", "LED {seq} -1 3 1 id=x", "LED: <t>"),
            ("LED t 2^64", f"LED {{seq}} {2**64} 3 1 id=x", "LED: <t>"),
            ("LED t 2^63 - 1", f"LED {{seq}} {2**63 - 1} 3 1 id=x", "LED: <t>"),
            ("LED t 0 (hours before now)", "LED {seq} 0 3 1 id=x", "from the Pico's clock"),
            ("LED t an hour ahead", "LED {seq} {ahead} 3 1 id=x", "from the Pico's clock"),
            ("LED channel a word", "LED {seq} {t} x 1 id=x", "LED: <ch>"),
            ("LED channel 256", "LED {seq} {t} 256 1 id=x", "LED: <ch>"),
            ("LED channel -1", "LED {seq} {t} -1 1 id=x", "LED: <ch>"),
            ("LED level 65536", "LED {seq} {t} 3 65536 id=x", "LED: <level>"),
            ("LED level a word", "LED {seq} {t} 3 on id=x", "LED: <level>"),
            ("LED level -1", "LED {seq} {t} 3 -1 id=x", "LED: <level>"),
            ("LED without level", "LED {seq} {t} 3", "LED: "),
    ):
        add(Case(label, lambda p, text=text: p.send(text, ahead=pico_us() + HOUR_US), detail=detail))
    # Well formed: recorded as it is (channel 3 is not the sync LED), quotes and commas and all.
    add(Case("LED id with quotes and commas", send('LED {seq} {t} 3 1 id=a,"b",c'), n=0))
    add(Case("LED repeated seq", repeated("LED", "3 0 id=y"), counter=ORDER, detail="out of order"))
    # ---- HB <seq> <t> up= led= drop= ----
    for label, text, detail in (
            ("HB up negative", "HB {seq} {t} up=-1 led=0 drop=0", "up="),
            ("HB led 2^32", f"HB {{seq}} {{t}} up=1 led={2**32} drop=0", "led="),
            ("HB drop a word", "HB {seq} {t} up=1 led=0 drop=many", "drop="),
            ("HB drop 2^63", f"HB {{seq}} {{t}} up=1 led=0 drop={2**63}", "drop="),
            ("HB t a word", "HB {seq} now up=1 led=0 drop=0", "HB: <t>"),
            ("HB without t", "HB {seq}", "HB: "),
    ):
        add(Case(label, send(text), detail=detail))
    add(Case("HB repeated seq", repeated("HB", "up=1 led={mask} drop=0"), counter=ORDER, detail="out of order"))
    add(Case("HB seq 1000 back", hb("{back}"), counter=ORDER, detail="out of order"))
    add(Case("HB seq 1 (same boot, no HELLO)", hb("1"), counter=ORDER, detail="out of order"))
    # ---- ACK <seq> <t> <cmd_id>, ERR <seq> <t> <cmd_id> <code> <word> ----
    add(Case("ACK for a command never sent", send("ACK {seq} {t} nosuchcmd"), counter=UNMATCHED, detail="never sent"))
    add(Case("ACK without cmd_id", send("ACK {seq} {t}"), detail="ACK: "))
    add(Case("ACK t a word", send("ACK {seq} soon idle1"), detail="ACK: <t>"))
    add(Case("ERR for a command never sent", send("ERR {seq} {t} nosuchcmd 2 badarg"), counter=UNMATCHED,
             detail="never sent"))
    add(Case("ERR for a real command", lambda p: p.send("ERR {seq} {t} {id} 4 range", id=p.ids[-1]), counter=ERRORS,
             event="pico_error", detail="range"))
    add(Case("ERR cmd_id '-' (id unreadable)", send("ERR {seq} {t} - 5 toolong"), counter=ERRORS, event="pico_error",
             detail="toolong"))
    add(Case("ERR code 1001", send("ERR {seq} {t} - 1001 huge"), detail="ERR: <code>"))
    add(Case("ERR code a word", send("ERR {seq} {t} - two badarg"), detail="ERR: <code>"))
    add(Case("ERR code negative", send("ERR {seq} {t} - -2 badarg"), detail="ERR: <code>"))
    add(Case("ERR without word", send("ERR {seq} {t} - 2"), detail="ERR: "))
    # ---- LOG <seq> <t> <level> <text> ----
    add(Case("LOG without level", send("LOG {seq} {t}"), detail="LOG: "))
    add(Case("LOG t a word", send("LOG {seq} later warn hi"), detail="LOG: <t>"))
    add(Case("LOG warn late", send("LOG {seq} {t} warn late id=t9 us=1234"), counter=None, event="pico_late",
             detail="late id=t9"))
    add(Case("LOG info with '>>> ' inside", send("LOG {seq} {t} info >>> not a prompt"), n=0))
    # ---- other words and bytes ----
    add(Case("unknown word with seq", send("FOO {seq} {t} a=1"), counter=UNKNOWN))
    add(Case("unknown word alone", send("BAR"), counter=UNKNOWN))
    for label, text, detail in (
            ("lowercase word", "pong {seq} 1 {t} {t}", "message word"),
            ("spaces only", "      ", "empty"),
            ("tab separated", "HB\t{seq}\t{t}\tup=1", "printable ASCII"),
            ("invalid UTF-8", "\xff\xfe\xfd HB {seq}", "printable ASCII"),
            ("overlong UTF-8", "LOG {seq} {t} warn \xc0\xaf", "printable ASCII"),
            ("UTF-8 text, not ASCII", "LOG {seq} {t} warn Zo\xc3\xab", "printable ASCII"),
            ("NUL byte in a line", "HB {seq} {t} up=1\x00 led=0 drop=0", "printable ASCII"),
            ("NUL line", "\x00", "printable ASCII"),
            ("escape sequence and DEL", "\x1b[31mHB\x7f {seq}", "printable ASCII"),
            ("digits first", "123 HB", "message word"),
    ):
        add(Case(label, send(text), detail=detail))
    add(Case("CR only", raw(b"\r\r\r\n"), n=0))
    add(Case("CRLF line", lambda p: p.send("HB {seq} {t} up=1 led={mask} drop=0\r\n", mask=mask(p)), n=0))
    add(Case("a line in 1-byte fragments", in_fragments, n=0))
    add(Case("line of exactly 160 bytes", padded(160), n=0))
    add(Case("line of 161 bytes", padded(161), detail="over 160 bytes"))
    return cases

