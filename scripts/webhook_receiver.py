#!/usr/bin/env python3
"""A webhook receiver for tests: verifies every delivery with the Standard Webhooks reference
library (`standardwebhooks`, from PyPI) and records what it received.

    webhook_receiver.py HOST PORT      (PORT 0: any free port; the port is printed first)

Control (JSON over HTTP, from the test):
    POST /_control {"secret": "whsec_...", "statuses": [500, 500], "now": 1773651600}
        secret   — the endpoint's signing secret, as SigmaAI showed it once
        statuses — the answers to give to the next deliveries, in order (then 200)
        now      — the receiver's idea of the current time (unix seconds), so the library's
                   timestamp tolerance is checked against the test's clock, not the wall's
    GET /_received → [{"path", "headers", "body", "verified", "error", "payload", "status"}]
Every other POST is a delivery.
"""
import json
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import standardwebhooks.webhooks as swh
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

LOCK = threading.Lock()
STATE = {"secret": None, "statuses": [], "received": [], "now": None, "set_at": 0.0}


class TestClock(datetime):
    """The library reads `datetime.now`; answer with the time the test set (plus what passed)."""

    @classmethod
    def now(cls, tz=None):
        with LOCK:
            now, set_at = STATE["now"], STATE["set_at"]
        if now is None:
            return datetime.now(tz)
        return datetime.fromtimestamp(now + (time.monotonic() - set_at), tz or timezone.utc)


swh.datetime = TestClock


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_received":
            with LOCK:
                self._json(200, STATE["received"])
        else:
            self._json(404, {})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/_control":
            c = json.loads(raw)
            with LOCK:
                if "secret" in c:
                    STATE["secret"] = c["secret"]
                if "statuses" in c:
                    STATE["statuses"] = list(c["statuses"])
                if "now" in c:
                    STATE["now"], STATE["set_at"] = float(c["now"]), time.monotonic()
            self._json(200, {})
            return
        with LOCK:
            secret = STATE["secret"]
            status = STATE["statuses"].pop(0) if STATE["statuses"] else 200
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {"path": self.path, "headers": headers, "body": raw.decode("utf-8", "replace"),
                 "verified": False, "error": None, "payload": None, "status": status}
        try:
            if secret is None:
                raise WebhookVerificationError("no secret set")
            entry["payload"] = Webhook(secret).verify(raw, headers)
            entry["verified"] = True
        except Exception as e:  # noqa: BLE001 — any failure is recorded for the test to see
            entry["error"] = f"{type(e).__name__}: {e}"
        with LOCK:
            STATE["received"].append(entry)
        self._json(status, {"ok": status < 300})


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    server = ThreadingHTTPServer((host, port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
