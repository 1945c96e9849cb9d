"""`sinkllm chat` on a terminal (a pseudo-terminal here), as a new user
meets it (issue 14 point 5): Ctrl-C at the idle prompt does not quit and
lose the conversation, leaving saves it as 'last', and /load reports the
saved session's own settings and turn count; a reply cut by -n says so, and tokens leaving
the window are reported as they go."""
import os
import fcntl
import pty
import select
import termios
import signal
import subprocess
import time

from test_server import BIN, MODEL


class Tty:
    def __init__(self, cwd, *args):
        self.master, slave = pty.openpty()
        def controlling_tty():  # Ctrl-C on the pty then sends SIGINT, as a terminal does
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.proc = subprocess.Popen([BIN, "chat", "-m", MODEL, "-t", "2", *args], stdin=slave, stdout=slave,
                                     stderr=slave, cwd=cwd, preexec_fn=controlling_tty)
        os.close(slave)
        self.out = b""

    def read_until(self, needle, timeout=60, start=0):
        """Output until needle appears at or after offset start."""
        deadline = time.time() + timeout
        while needle.encode() not in self.out[start:]:
            left = deadline - time.time()
            assert left > 0, f"no {needle!r} in {self.out[-800:]!r}"
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    assert needle.encode() in self.out, f"EOF before {needle!r}: {self.out[-800:]!r}"
                    break
                self.out += chunk
        return self.out

    def prompt(self, start=0, timeout=60):
        """Wait for the "> " prompt at or after offset start and for the line
        editor to hold the terminal in raw mode. A key typed before that, while
        a command still runs, meets the cooked terminal: a Ctrl-D there is the
        line discipline's end-of-file, not a key, and never reaches the chat
        (as for a person typing ahead in any readline program)."""
        self.read_until("> ", timeout=timeout, start=start)
        deadline = time.time() + timeout
        while termios.tcgetattr(self.master)[3] & termios.ICANON:  # the pty's own settings
            assert time.time() < deadline, "the prompt never took the terminal"
            assert self.proc.poll() is None, "the chat quit at its prompt"
            time.sleep(0.01)
        return self.out

    def send(self, data):
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        os.close(self.master)


def test_ctrl_c_at_prompt_keeps_the_chat_and_leaving_saves_it(tmp_path):
    t = Tty(str(tmp_path), "-n", "12", "--window", "40", "--temp", "0")
    try:
        t.prompt()
        t.send("Tell me about whales.\r")
        t.read_until("[reply cut at 12 tokens")
        t.prompt(start=t.out.rindex(b"[reply cut"))
        t.send("And about the sea.\r")
        t.read_until("left the window")
        # the prompt after the status line: a Ctrl-C sent before it is a
        # Ctrl-C during the reply, which only stops the reply
        t.prompt(start=t.out.rindex(b"left the window"))
        # Ctrl-C at the idle prompt. One that lands between the prompt's
        # printing and libedit's read() is only seen by the next key (the
        # read was not yet there to interrupt), so a second Ctrl-C may be
        # needed, as for a person at that instant; neither may quit.
        mark = len(t.out)
        for _ in range(3):
            t.send(b"\x03")
            try:
                t.read_until("Ctrl-D or /bye leaves", timeout=3, start=mark)
                break
            except AssertionError:
                assert t.proc.poll() is None, "Ctrl-C at the prompt quit the chat"
        else:
            t.read_until("Ctrl-D or /bye leaves", timeout=1, start=mark)
        t.prompt(start=t.out.rindex(b"Ctrl-D or /bye leaves"))
        time.sleep(0.3)
        assert t.proc.poll() is None, "Ctrl-C at the prompt quit the chat"
        t.send("/stats\r")
        t.read_until("2 turns")
        t.prompt(start=t.out.rindex(b"2 turns"))
        t.send(b"\x04")  # Ctrl-D: leave
        t.read_until("/load last")
        assert t.proc.wait(timeout=20) == 0
    finally:
        t.close()
    assert os.path.exists(tmp_path / "sessions" / "last.session")
    t = Tty(str(tmp_path), "--temp", "0")
    try:
        t.prompt()
        t.send("/load last\r")
        out = t.read_until("evicted")
        assert b"window 40" in out and b"cache sink" in out, out[-400:]
        assert b": 2 turns, template" in out, out[-400:]  # the saved session's own turn count
        t.prompt(start=t.out.rindex(b"evicted"))
        t.send("/stats\r")
        t.read_until("2 turns")  # and the count goes on from it
        t.prompt(start=t.out.rindex(b"2 turns"))
        t.send("/bye\r")
        t.proc.wait(timeout=20)
    finally:
        t.close()
