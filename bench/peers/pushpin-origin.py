#!/usr/bin/env python3
"""The origin behind Pushpin for scripts/bench-peers (Python stdlib only).

GET /sub/CHANNEL answers an empty SSE response that Pushpin holds open as a
stream subscribed to CHANNEL (GRIP: Grip-Hold: stream, Grip-Channel). Events are
then published to Pushpin's control API, not through this origin.

    pushpin-origin.py PORT     # listens on 127.0.0.1:PORT only
"""
import http.server
import re
import sys

CHANNEL = re.compile(r"^/sub/([A-Za-z0-9._-]+)$")


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        m = CHANNEL.match(self.path)
        if not m:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Grip-Hold", "stream")
        self.send_header("Grip-Channel", m.group(1))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Origin).serve_forever()
