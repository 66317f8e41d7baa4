"""Runs a command on a pseudo-terminal and answers its pass phrase prompt, as a
user at a terminal would.

  answer.py PROMPT ANSWER COMMAND [ARG...]

Prints "PID <pid>" (the command's), then everything the command writes to the
terminal (its stdout and stderr, merged, without the terminal's carriage
returns). The first time the output so far ends with PROMPT (ignoring trailing
blanks), writes ANSWER and a newline, as typed. An empty ANSWER never answers.
Exits with the command's status (128 + N if signal N ended it). The command
is killed (SIGKILL) if this script dies first.
"""

import ctypes
import os
import pty
import sys

PR_SET_PDEATHSIG = 1


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
            os.write(master, answer + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


main()
