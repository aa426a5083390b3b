"""Postfix front -> sealgate -> a next hop of the test's choosing, in one
temp dir; Postfix's relayhost (sink_recorder.py) stands for the outside
world. Used by test_bounce.py and test_faults.py; everything binds
127.0.0.1 on ports chosen at run time and is stopped by PID."""
import os
import shutil
import tempfile

from postfix_harness import Filter, Postfix, Sink, free_ports


class FilterPath:
    """make_next_hop(tmp) -> an object with .port and .stop(); main_extra:
    a dict, or a function (tmp, filter_port) -> dict. Not started: set up
    filter-state (keys...) first, then start()."""

    def __init__(self, make_next_hop, proto="lmtp", filter_extra=None, main_extra=None,
                 filter_role_listen=None):
        self.tmp = tempfile.mkdtemp(prefix="sg-filter-path-")
        os.chmod(self.tmp, 0o755)
        self.front_port, self.filter_port, self.reinject_port, outside_port = free_ports(4)
        self.outside = Sink(self.tmp, outside_port)
        self.next_hop = make_next_hop(self.tmp)
        extra = dict(filter_extra or {})
        if filter_role_listen is not None:   # e.g. submission_listen: the outbound role
            extra.update({"listen": "", "lmtp_listen": "",
                          filter_role_listen: f"127.0.0.1:{self.filter_port}"})
        self.filter = Filter(self.tmp, proto, self.filter_port, self.next_hop.port, extra)
        self.state = os.path.join(self.tmp, "filter-state")
        if callable(main_extra):
            main_extra = main_extra(self.tmp, self.filter_port)
        self.postfix = Postfix(self.tmp, proto, self.front_port, self.filter_port,
                               self.reinject_port, outside_port, main_extra or {})

    def start(self):
        self.outside.start()
        self.postfix.start()
        self.filter.start()
        return self

    def stop(self):
        """Stop everything by PID; raise if sealgate did not exit 0 on SIGTERM."""
        errors = []
        for part in (self.filter, self.postfix, self.outside, self.next_hop):
            try:
                rc = part.stop()
                if part is self.filter and rc not in (0, None):
                    errors.append(f"sealgate exit status {rc} on SIGTERM")
            except Exception as e:  # stop the rest regardless
                errors.append(str(e))
        if not errors:
            shutil.rmtree(self.tmp, ignore_errors=True)
        assert not errors, errors

    def logs(self):
        return (self.postfix.maillog()[-6000:] + "\n--- sealgate\n" + self.filter.log()[-3000:])
