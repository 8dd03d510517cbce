"""A fault-injecting fake of the OpenAI chat API, for the backend tests and `make reliability`.

It exists only to inject faults the real server never shows on demand: 429, 500, responses slower than
the backend's timeout, and connections dropped without a response. Which attempt fails is decided by a
hash of the request body and that body's attempt number, so a run is repeatable.
"""

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "slow", "drop")
MARKER = "ALWAYS-FAIL"


class FaultyServer:
    """An OpenAI-compatible /v1/chat/completions that fails `fault_percent`% of attempts, deterministically.

    A body's first `faulty_attempts` attempts may fault; later ones always succeed, so a backend with
    enough retries always gets through. A body containing MARKER gets HTTP 500 on every attempt.
    The reply echoes the last user message, so a test can check each result belongs to its request.
    """

    def __init__(self, fault_percent: int = 30, faulty_attempts: int = 3, slow_s: float = 1.5):
        self.fault_percent, self.faulty_attempts, self.slow_s = fault_percent, faulty_attempts, slow_s
        self.lock = threading.Lock()
        self.attempts: Counter = Counter()  # body digest -> attempts received
        self.attempts_by_prompt: Counter = Counter()  # last user message -> attempts received
        self.log: list[tuple[str, int, str]] = []  # (body digest, attempt index, outcome)
        self.authorizations: set[str] = set()  # Authorization headers seen: proves a key was sent at all
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner.lock:
                    owner.authorizations.add(self.headers.get("Authorization", ""))
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": "not found"})
                    return
                outcome = owner.decide(body)
                if outcome == "429":
                    self._send(429, {"error": {"message": "slow down"}})
                elif outcome == "500":
                    self._send(500, {"error": {"message": "boom"}})
                elif outcome == "drop":
                    self.close_connection = True  # close the socket without a single byte of response
                else:
                    if outcome == "slow":
                        time.sleep(owner.slow_s)
                    self._send(200, owner.completion(json.loads(body)))

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting (the "slow" fault): nobody to answer

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default listen backlog of 5 drops SYNs of a burst: connect timeouts

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def decide(self, body: bytes) -> str:
        digest = hashlib.sha256(body).hexdigest()
        with self.lock:
            attempt = self.attempts[digest]
            self.attempts[digest] += 1
            self.attempts_by_prompt[json.loads(body)["messages"][-1]["content"]] += 1
        if MARKER.encode() in body:
            outcome = "500"
        else:
            roll = hashlib.sha256(body + f"#attempt={attempt}".encode()).digest()
            faulty = attempt < self.faulty_attempts and int.from_bytes(roll[:4], "big") % 100 < self.fault_percent
            outcome = FAULTS[roll[4] % len(FAULTS)] if faulty else "ok"
        with self.lock:
            self.log.append((digest, attempt, outcome))
        return outcome

    @staticmethod
    def completion(body: dict) -> dict:
        text = "echo: " + body["messages"][-1]["content"]
        return {
            "id": "cmpl-fake",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 7,
                "completion_tokens": len(text.split()),
                "total_tokens": 7 + len(text.split()),
            },
        }

    def hits(self) -> int:
        with self.lock:
            return len(self.log)

    def outcomes(self) -> Counter:
        with self.lock:
            return Counter(outcome for _, _, outcome in self.log)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
