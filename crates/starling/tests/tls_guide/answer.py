"""Runs a command on a pseudo-terminal and answers its pass phrase prompt, as a
user at a terminal would.

  answer.py PROMPT ANSWER COMMAND [ARG...]

Prints "PID <pid>" (the command's), then everything the command writes to the
terminal (its stdout and stderr, merged, without the terminal's carriage
returns). The first time the output so far ends with PROMPT (ignoring trailing
blanks), types ANSWER and a newline once the terminal's echo is off. An empty
ANSWER never answers. Exits with the command's status (128 + N if signal N
ended it).

The command gets SIGKILL if this script dies first, unless it changes its user
(mosquitto started as root does, which clears that setting): the tests kill
it by the PID printed.
"""

import ctypes
import os
import pty
import sys
import termios
import time

PR_SET_PDEATHSIG = 1


def type_answer(master, answer):
    """Types ANSWER once the prompter has turned the terminal's echo off (as
    OpenSSL does before reading a pass phrase), or after 2 s anyway: a person
    types after the prompt, never into a terminal about to be flushed."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if not termios.tcgetattr(master)[3] & termios.ECHO:
            break
        time.sleep(0.01)
    os.write(master, answer + b"\n")


def main():
    prompt, answer, command = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3:]
    pid, master = pty.fork()
    if pid == 0:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, 9)
        os.execvp(command[0], command)
    sys.stdout.write(f"PID {pid}\n")
    sys.stdout.flush()
    seen = b""
    answered = not answer
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        seen += chunk
        sys.stdout.buffer.write(chunk.replace(b"\r", b""))
        sys.stdout.flush()
        if not answered and seen.rstrip().endswith(prompt.rstrip()):
            type_answer(master, answer)
            answered = True
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        sys.exit(os.WEXITSTATUS(status))
    sys.exit(128 + os.WTERMSIG(status))


main()
