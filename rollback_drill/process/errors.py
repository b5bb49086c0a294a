"""Every error rollback-drill raises, in one place (httpx's `_exceptions.py` does the same): a
caller catches `RollbackDrillError`, or one branch, or one leaf.

    RollbackDrillError
      FileError          a file users write or the tool writes is unusable
      ProcessError       a child process, a tool on PATH, a wait that ran out
      StackError         a stack that cannot be brought up or changed
      StoreError         a database backup, restore or reply that cannot be trusted
      ChainError         the chain did not answer, answered an error, or reverted
      CheckError         a check could not look (so: not verified, never a pass)
      MonitoringError    load or alerting broke: what users saw is unknown
      WiringError        a drill or procedure wired wrongly (a programming error)
      VerdictError       a drill, procedure or assessment judged: not recovered
      EvidenceError      the timeline, a report or a message could not be written

It lives in the bottom layer (`process/`) so every folder can import it. Each leaf keeps the
builtin it derived from before the hierarchy existed (`SpecError` is still a `ValueError`,
`DrillFailed` still an `AssertionError` - pytest reports it as a failure, not an error -
`WaitTimeout` still a `TimeoutError`): some 100 places in the engine and the tests catch the
builtin, and users' drills may too. Two classes carry types of upper layers and so stay where
they are raised, deriving from a branch here: `ProcedureFailed` (steps/failure.py) and the
private signals. `CutOff` and the supervisor's `_Stop` are not errors but unwinding signals
derived from `BaseException` so that `except Exception` cannot swallow them; they stay outside.
"""

from __future__ import annotations

from typing import Any


class RollbackDrillError(Exception):
    """The root: everything rollback-drill raises on purpose derives from it."""


# -- branches ---------------------------------------------------------------------------------


class FileError(RollbackDrillError):
    """A file users write or the tool writes is unusable; the message names file, field and
    what was expected."""


class ProcessError(RollbackDrillError):
    """A child process did not start, a tool is missing, or a wait ran out of time."""


class StackError(RollbackDrillError, RuntimeError):
    """A stack operation failed; the message names the service and carries its log tail."""


class StoreError(RollbackDrillError):
    """A database backup, restore or reply that cannot be trusted."""


class ChainError(RollbackDrillError):
    """The chain did not answer, answered a JSON-RPC error, or reverted."""


class CheckError(RollbackDrillError):
    """A check could not look: its outcome is "not verified", which is not a pass."""


class MonitoringError(RollbackDrillError):
    """The load or the alert evaluator broke: what users saw cannot be said."""


class WiringError(RollbackDrillError):
    """A drill or procedure is wired wrongly: a fact asked for that nothing provides."""


class VerdictError(RollbackDrillError):
    """A judgement: the drill did not recover, a procedure or gate failed, nothing to do."""


class EvidenceError(RollbackDrillError):
    """The timeline, a report or a notification could not be written or delivered."""


# -- files ------------------------------------------------------------------------------------


class SpecError(FileError, ValueError):
    """A stack, release or target file is unusable; the message says where and why."""


class PerformanceBaselineError(SpecError):
    """A performance baseline file is unusable."""


class BackupFileError(FileError, ValueError):
    """Not a backup file this tool can restore; the message names the file and why."""


class RecordError(FileError, ValueError):
    """A record file that cannot be read back: unreadable, not JSON, another schema."""


class FingerprintError(FileError, ValueError):
    """A baseline file is unusable; the message names the file and what was expected."""


class RestoreInterrupted(FileError, OSError):
    """The copy that restores a file stopped part-way (an injected fault, shaped as the
    `OSError` a real interrupted copy raises)."""


# -- processes --------------------------------------------------------------------------------


class StartError(ProcessError, RuntimeError):
    """A process did not become ready; the message carries the tail of its log."""


class ToolMissing(ProcessError, RuntimeError):
    """An external tool (redis-server, nginx, anvil, ...) is not where it was looked for."""


class WaitTimeout(ProcessError, TimeoutError):
    """A wait ran out: the message says what, how long, and the last answer."""


# -- stacks -----------------------------------------------------------------------------------


class AccessError(StackError):
    """The access a target grants does not work (file gone, container unknown)."""


class ImageBuildError(StackError):
    """A build, import, save or load step failed; the message says which and why."""


class BuildError(StackError):
    """A release's patch does not apply to the base sources."""


# -- stores -----------------------------------------------------------------------------------


class RestoreError(StoreError, RuntimeError):
    """The restore did not finish; the message says what the database holds now."""


class ArchiveError(StoreError, RuntimeError):
    """An archive that cannot be trusted: unreadable, another format, a file that does not
    match its checksum. Raised before anything in the database is touched."""


class RedisReplyError(StoreError, RuntimeError):
    """Redis answered with an error (`-ERR ...`, `-MISCONF ...`, `-NOREPLICAS ...`)."""


# -- chain ------------------------------------------------------------------------------------


class RpcUnavailable(ChainError, RuntimeError):
    """No usable answer: refused, timed out, connection dropped, or not JSON-RPC. A
    transaction sent when this was raised may or may not have reached the node."""


class RpcError(ChainError, RuntimeError):
    """The node answered with a JSON-RPC error (revert data, when any, in `data`)."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class Reverted(ChainError, RuntimeError):
    """A call or transaction reverted; `reason` is the custom error's name when known."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"reverted: {reason}{': ' + detail if detail else ''}")
        self.reason = reason


class KeyProblem(ChainError, ValueError):
    """No key where one was looked for, or not a key; the message says where and what."""


# -- checks -----------------------------------------------------------------------------------


class CheckSkipped(CheckError):
    """The check cannot answer for this target (no baseline, writes forbidden, no access):
    the outcome is "not verified", which is not a pass."""


class HttpFailure(CheckError):
    """No HTTP answer at all; `kind` says why (refused, timeout, tls, protocol, network)."""

    def __init__(self, kind: str, url: str, detail: str, seconds: float) -> None:
        super().__init__(f"{url}: {detail}")
        self.kind = kind
        self.url = url
        self.detail = detail
        self.seconds = seconds


class TargetUnreachable(CheckError, RuntimeError):
    """The target answers nowhere: verify stops before asking the checks."""


# -- monitoring -------------------------------------------------------------------------------


class LoadError(MonitoringError, RuntimeError):
    """Locust did not start, or produced no samples: the drill cannot say what users saw."""


class AlertEngineBroken(MonitoringError, RuntimeError):
    """The evaluator itself failed: nothing it says (or does not say) can be trusted."""


# -- wiring -----------------------------------------------------------------------------------


class ProcedureMiswired(WiringError, ValueError):
    """A step needs a fact that nothing before it provides."""


class MissingFact(WiringError, LookupError):
    """A step asked for a fact nothing produced: the drill is wired wrongly."""


# -- verdicts ---------------------------------------------------------------------------------


class DrillFailed(VerdictError, AssertionError):
    """The drill did not recover, or recovered over budget; the message says which and why."""


class ConfigurationRejected(VerdictError, RuntimeError):
    """The restored configuration fails its gate (nginx -t, or the certificate check)."""


class NothingToDecide(VerdictError, ValueError):
    """No alert fired and no check failed: there is nothing to roll back."""


class NotDone(VerdictError):
    """Nothing was done (the automation command's exit 2); the message says why."""


# -- evidence ---------------------------------------------------------------------------------


class TimelineError(EvidenceError, RuntimeError):
    """The timeline was used out of order (a mark twice, a phase inside a step, ...)."""


class ReportError(EvidenceError, RuntimeError):
    """The HTML report could not be generated; the message says what Allure said."""


class DeliveryFailed(EvidenceError, RuntimeError):
    """A channel did not take the message; the text says what it answered (secrets redacted)."""


class NotDelivered(EvidenceError):
    """Marks a communication step failed on the timeline; caught there, so the rollback goes
    on (whether the drill fails for it is the channels' `required`)."""
