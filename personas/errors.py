"""The one error type a user sees: it names the file, line or key to change."""


class DramatisError(Exception):
    """Bad input or configuration. The CLI prints the message and exits 2; nothing is written."""


def at(path, line: int | None = None) -> str:
    """`file:line` prefix for messages, so editors can jump to the spot."""
    return f"{path}:{line}" if line is not None else str(path)


class Rejected(Exception):
    """An LLM output that cannot become a record; `reason` becomes the `dropped_<reason>` counter."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class BackendStopped(DramatisError):
    """The engine itself stopped (shut down, died, was interrupted): not one row's failure, so never a reject.
    The stage stops with the chunk in flight unfinished; a relaunch resumes it."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM, raised by the CLI's handlers. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` on the way turns it into a row's failure; unlike KeyboardInterrupt, Click does not catch
    it (Click prints "Aborted!" and exits 1)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
