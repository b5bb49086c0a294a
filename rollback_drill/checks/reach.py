"""Does anything listen? A TCP connect per endpoint, all at once, within a short timeout.

Clients retry a refused connection until their own timeout (pymongo's server selection waits
it out in full), so the answer "connection refused" is asked for directly, first; and when
no endpoint of a target accepts a connection at all, the target is down - one sentence, not a
failure per check.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "mongodb": 27017, "redis": 6379, "rediss": 6379}


def host_port(url: str) -> tuple[str, int] | None:
    """Host and port of a URL or store URI; None when it names several hosts or none."""
    parts = urlsplit(url)
    if "," in parts.netloc or parts.scheme not in DEFAULT_PORTS:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None


def probe(host: str, port: int, timeout_s: float) -> str | None:
    """None when a connection is accepted; otherwise why not, in a few words."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no connection within {timeout_s:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def probe_all(urls: dict[str, str], timeout_s: float) -> dict[str, str | None]:
    """Each named URL probed concurrently: name -> None (accepts) or the reason it does not.
    URLs whose address cannot be read from them are left out."""
    results: dict[str, str | None] = {}
    lock = threading.Lock()

    def one(name: str, address: tuple[str, int]) -> None:
        answer = probe(*address, timeout_s)
        with lock:
            results[name] = answer

    threads = []
    for name, url in urls.items():
        address = host_port(url)
        if address is not None:
            threads.append(threading.Thread(target=one, args=(name, address), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s + 1)
    return results
