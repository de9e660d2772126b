#!/usr/bin/env python3
"""Bounce classification against the Sisimai corpus, and inbound throughput.

Usage: python3 bench/bounces.py [--binary target/release/tidings] [--throughput N]

1. Agreement: every message in tests/fixtures/bounces/sisimai/ goes through
   `tidings inbound --dry-run`; its verdict (hard / soft / complaint /
   ignored) is compared with the kind expected.tsv derives from Sisimai's
   published results for the same file (go-sisimai's fact/*_test.go:
   hard = Sisimai's HardBounce flag, or reason "suspend", a disabled
   mailbox, which Tidings counts as hard; complaint = reason "feedback"
   except Feedback-Type auth-failure, a report on our DKIM/SPF and not on
   the reader; ignored = "vacation", "delivered" and the not-a-bounce set).
   Prints the confusion matrix, the agreement and every disagreement.
   Fails (exit 1) when an expected-ignored message is counted as a bounce.
2. Throughput (--throughput N, default 200): N corpus messages piped, one
   process each, through `tidings inbound` against a fresh SQLite database
   with bounce_address set (the whole path: settings, open, migration
   check, parse, pin), as messages/s; then the same N over one SMTP
   session to the receiver of `tidings serve` (inbound_listen). The
   database has no readers, so every bounce ends at the pinning step (no
   reader to pin it on): it measures reading, not writing.
"""
import argparse, collections, os, smtplib, socket, subprocess, sys, tempfile, time, json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "fixtures", "bounces", "sisimai")


def expectations():
    rows = []
    with open(os.path.join(CORPUS, "expected.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, reason, hard, feedback, kind = line.rstrip("\n").split("\t")
            rows.append((name, reason, kind))
    return rows


def verdict(binary, path, env):
    with open(path, "rb") as f:
        out = subprocess.run([binary, "inbound", "--dry-run"], stdin=f,
                             capture_output=True, env=env)
    if out.returncode != 0:
        return "exit %d" % out.returncode, {}
    report = json.loads(out.stdout)
    return report["verdict"], report


def agreement(binary, env, verbose):
    rows = expectations()
    matrix = collections.Counter()
    wrong = []
    for name, reason, kind in rows:
        got, report = verdict(binary, os.path.join(CORPUS, name), env)
        matrix[(kind, got)] += 1
        if got != kind:
            wrong.append((name, reason, kind, got, report.get("status"),
                          (report.get("diagnostic") or "")[:100], report.get("why")))
    kinds = ["hard", "soft", "complaint", "ignored"]
    print("expected \\ got  " + "".join("%10s" % k for k in kinds))
    for k in kinds:
        print("%-15s" % k + "".join("%10d" % matrix[(k, g)] for g in kinds))
    agree = sum(matrix[(k, k)] for k in kinds)
    print("agreement: %d / %d = %.1f%%" % (agree, len(rows), 100.0 * agree / len(rows)))
    false_bounces = sum(matrix[("ignored", g)] for g in ("hard", "soft", "complaint"))
    hard_wrong = sum(matrix[(k, "hard")] for k in kinds if k != "hard")
    print("not-a-bounce counted as a bounce: %d; counted hard but not hard: %d" % (false_bounces, hard_wrong))
    if verbose:
        for w in wrong:
            print("  %s: reference %s (%s), got %s; status %s; %s %s" % w)
    return false_bounces == 0


def throughput(binary, env, n):
    files = sorted(p for p in os.listdir(CORPUS) if p.endswith(".eml"))[:n]
    with tempfile.TemporaryDirectory() as d:
        env = dict(env, TIDINGS_DATABASE_URL="sqlite://%s/t.db" % d,
                   TIDINGS_BOUNCE_ADDRESS="bounces@news.example",
                   TIDINGS_OUTBOX_DIR=d + "/outbox", RUST_LOG="warn")
        subprocess.run([binary, "migrate"], env=env, check=True, capture_output=True)
        start = time.monotonic()
        codes = collections.Counter()
        for name in files:
            with open(os.path.join(CORPUS, name), "rb") as f:
                codes[subprocess.run([binary, "inbound"], stdin=f, env=env,
                                     capture_output=True).returncode] += 1
        took = time.monotonic() - start
        print("tidings inbound: %d messages in %.2f s = %.0f messages/s (exit codes %s)"
              % (len(files), took, len(files) / took, dict(codes)))
        smtp_throughput(binary, env, d, files)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_throughput(binary, env, d, files):
    port = free_port()
    env = dict(env, TIDINGS_LISTEN="127.0.0.1:%d" % free_port(),
               TIDINGS_INBOUND_LISTEN="127.0.0.1:%d" % port)
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        messages = []
        for name in files:
            with open(os.path.join(CORPUS, name), "rb") as f:
                messages.append(f.read())
        smtp.ehlo("bench.example")
        start = time.monotonic()
        replies = collections.Counter()
        for raw in messages:
            try:
                smtp.sendmail("", ["bounces@news.example"], raw)
                replies[250] += 1
            except smtplib.SMTPResponseException as e:
                replies[e.smtp_code] += 1
        took = time.monotonic() - start
        smtp.quit()
        print("SMTP receiver: %d messages in %.2f s = %.0f messages/s (replies %s)"
              % (len(messages), took, len(messages) / took, dict(replies)))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "tidings"))
    ap.add_argument("--throughput", type=int, default=200)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    ok = agreement(args.binary, env, args.verbose)
    if args.throughput:
        throughput(args.binary, env, args.throughput)
    sys.exit(0 if ok else 1)


main()
