#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Run a command on a pseudo-terminal and answer its prompts, like a person at a keyboard.

    pty-answer.py [--timeout SECS] [--answer REGEX=TEXT | --secret REGEX=TEXT]... -- CMD [ARGS...]

The command gets a new pty as its controlling terminal, stdin, stdout and stderr (so programs
that read secrets only from a terminal, e.g. cryptsetup's "Enter token PIN:", can be tested).
Each --answer, in order: wait until the output since the previous answer matches REGEX, then type
TEXT and Enter. --secret is for password prompts: after REGEX it also waits until the program has
turned the terminal's echo off, because programs set that with TCSAFLUSH, which throws away
whatever was typed before (a fast typist's answer would be lost). Everything the command printed is copied to our stdout. Exit status: the
command's; 124 when a prompt did not come (before the command ended or within --timeout seconds)
or the command did not end in time (it is then killed); 125 on a usage error.
"""

import os
import pty
import re
import select
import signal
import termios
import sys
import time


def echo_on(fd):
    """The terminal's ECHO flag (on Linux the master side reads the slave's settings)."""
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    except termios.error:
        return False


def main():
    argv = sys.argv[1:]
    timeout = 30.0
    answers = []
    while argv and argv[0] != "--":
        opt = argv.pop(0)
        if opt == "--timeout" and argv:
            timeout = float(argv.pop(0))
        elif opt in ("--answer", "--secret") and argv and "=" in argv[0]:
            rx, text = argv.pop(0).split("=", 1)
            answers.append((re.compile(rx.encode()), text.encode(), opt == "--secret"))
        else:
            print(__doc__, file=sys.stderr)
            return 125
    if not argv or len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 125
    cmd = argv[1:]

    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)

    deadline = time.monotonic() + timeout
    pending = b""  # output since the last answer
    out = sys.stdout.buffer
    eof = False
    while not eof:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if answers and answers[0][0].search(pending) and not (answers[0][2] and echo_on(fd)):
            os.write(fd, answers.pop(0)[1] + b"\n")
            pending = b""
            continue
        # While waiting for the echo to go off, look again soon even if nothing is printed.
        wait = 0.01 if answers and answers[0][0].search(pending) else 0.5
        r, _, _ = select.select([fd], [], [], min(left, wait))
        if not r:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the slave side was closed, the command ended
            data = b""
        if not data:
            eof = True
            break
        out.write(data)
        out.flush()
        pending += data

    if not eof:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        what = f"prompt /{answers[0][0].pattern.decode()}/" if answers else "the end of the command"
        print(f"\npty-answer: timed out after {timeout:g}s waiting for {what}", file=sys.stderr)
        return 124
    # The output is closed; the command ends now. Bounded wait all the same.
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print(f"\npty-answer: timed out after {timeout:g}s", file=sys.stderr)
            return 124
        time.sleep(0.01)
    if answers:
        print(f"\npty-answer: the command ended before prompt /{answers[0][0].pattern.decode()}/",
              file=sys.stderr)
        return 124
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
