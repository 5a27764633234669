#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Recording TCP proxy between a TPM client (swtpm TCTI) and swtpm.

Listens on 127.0.0.1:LP (command port) and LP+1 (control port) and forwards each connection to
127.0.0.1:SP and SP+1. Every byte of the command port, both directions, is appended to the capture
file in the order it passed (CAPTURE), and to CAPTURE.tx (client to TPM) and CAPTURE.rx (TPM to
client). The control port is forwarded but not recorded. With --port 0 a free port pair is chosen;
the command port is printed on stdout (one line) once both ports listen. Runs until SIGTERM/SIGINT.

Used by tests that must prove that no secret crosses the TPM bus in clear: search the capture for
the secret, with a positive control (bytes that must appear) in the same test.
"""

import argparse
import errno
import signal
import socket
import sys
import threading


class Capture:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.all = open(path, "wb", buffering=0)
        self.tx = open(path + ".tx", "wb", buffering=0)
        self.rx = open(path + ".rx", "wb", buffering=0)

    def record(self, to_tpm, data):
        with self.lock:
            self.all.write(data)
            (self.tx if to_tpm else self.rx).write(data)


def pump(src, dst, capture, to_tpm):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if capture:
                capture.record(to_tpm, data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        # Half-close so that the other direction can still drain, then let the peer finish.
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(client, target_port, capture):
    try:
        server = socket.create_connection(("127.0.0.1", target_port))
    except OSError as e:
        print(f"tpm-proxy: cannot reach 127.0.0.1:{target_port}: {e}", file=sys.stderr)
        client.close()
        return
    t = threading.Thread(target=pump, args=(server, client, capture, False), daemon=True)
    t.start()
    pump(client, server, capture, True)
    t.join()
    client.close()
    server.close()


def serve(listener, target_port, capture):
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(client, target_port, capture), daemon=True).start()


def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


def listen_pair(port):
    """Two listeners on consecutive ports; port 0 = let the kernel pick, retry until P+1 is free."""
    for _ in range(100):
        first = listen(port)
        p = first.getsockname()[1]
        try:
            return first, listen(p + 1), p
        except OSError as e:
            first.close()
            if port != 0 or e.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no free port pair")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="command port to listen on (0 = any free)")
    ap.add_argument("--target", type=int, required=True, help="swtpm command port")
    ap.add_argument("--capture", required=True, help="file that receives the command-port bytes")
    args = ap.parse_args()

    capture = Capture(args.capture)
    cmd, ctrl, port = listen_pair(args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    threading.Thread(target=serve, args=(ctrl, args.target + 1, None), daemon=True).start()
    threading.Thread(target=serve, args=(cmd, args.target, capture), daemon=True).start()
    print(port, flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
