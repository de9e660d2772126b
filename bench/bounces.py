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
2. Throughput (--throughput N, default 200): N messages piped one process
   each through `tidings inbound` against a fresh SQLite database with
   bounce_address set (the full path: parse, settings, open, migrate check,
   pin, store), as messages/s.
"""
import argparse, collections, os, subprocess, sys, tempfile, time, json

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
