"""kill -9 of the filter while 200 messages are in flight: Postfix keeps every
message it was not given 250 for, so after a restart and a flush each one
arrives at least once; a duplicate is possible only for a transaction the
next hop had already accepted when the filter died."""
import collections
import smtplib
import threading
import time

from postfix_harness import MailPath, make_message, wait_for

N_MESSAGES = 200
N_SESSIONS = 20
BODY = (b"x" * 78 + b"\r\n") * 128  # 10 KiB


def established_to(port):
    """Server-side TCP connections on 127.0.0.1:port (from /proc/net/tcp)."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, _, state = line.split()[1:4]
            if state == "01" and int(local.split(":")[1], 16) == port:
                n += 1
    return n


def send_all(mp, ids, errors):
    """N_SESSIONS client sessions, each sending its share over one connection."""

    def session(chunk):
        try:
            with smtplib.SMTP("127.0.0.1", mp.front_port, local_hostname="origclient.test",
                              timeout=60) as s:
                for i in chunk:
                    s.sendmail("alice@x.test", ["bob@y.test"], make_message(i, body=BODY))
        except Exception as e:  # reported by the test
            errors.append(e)
    threads = [threading.Thread(target=session, args=(ids[k::N_SESSIONS],))
               for k in range(N_SESSIONS)]
    for t in threads:
        t.start()
    return threads


def test_kill9_in_flight():
    mp = MailPath("lmtp")
    ok = False
    try:
        mp.start()
        ids = [f"crash{i:03d}@x.test" for i in range(N_MESSAGES)]
        errors = []
        t0 = time.monotonic()
        threads = send_all(mp, ids, errors)
        # Kill once the path is busy: some messages through, most not yet.
        wait_for(lambda: len(mp.sink.files()) >= 20, 60, "the first 20 messages at the sink", 0.01)
        in_flight = established_to(mp.filter_port)
        at_kill = len(mp.sink.files())
        mp.filter.kill9()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert at_kill < N_MESSAGES
        time.sleep(1)
        mp.filter.start()
        mp.postfix.flush_until_empty(60)

        counts = collections.Counter(mp.sink.msgids().values())
        missing = [i for i in ids if counts[i] == 0]
        dups = sum(c - 1 for c in counts.values() if c > 1)
        log = mp.postfix.maillog()
        deferred = log.count("status=deferred")
        print(f"kill -9 with {at_kill} of {N_MESSAGES} at the sink and {in_flight} filter "
              f"connections open; Postfix deferrals: {deferred}; after restart + flush: "
              f"{len(counts)} distinct delivered, {dups} duplicates, "
              f"{time.monotonic() - t0:.1f} s")
        assert not missing, f"lost: {missing[:10]}"
        assert set(counts) == set(ids)
        # The kill did interrupt the filter's work: Postfix had to retry.
        assert deferred > 0
        # A copy can be delivered twice only if the next hop had taken it
        # before the kill; each such transaction had a connection open.
        assert dups <= in_flight
        ok = True
    finally:
        if not ok:
            print(mp.logs())
        mp.stop(keep=not ok)
