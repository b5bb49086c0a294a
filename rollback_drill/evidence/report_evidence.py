"""The data drills' evidence as the report shows it: each collection after a restore against
the backup (count, content hash, indexes, options), the recovery point, what a cache flush
cost. HTML rows for a drill's description; the record keeps the same data as JSON."""

from __future__ import annotations

import html
from typing import Any


def _restore_html(restore: dict[str, Any]) -> str:
    """Every collection after the restore against the backup: count, content hash, indexes."""
    e = html.escape
    did = {c["collection"]: c for c in restore.get("collections", [])}
    cells = "".join(f"<th style='padding:0 8px 0 0'>{h}</th>" for h in (
        "collection", "restore", "count (backup / now)", "sha256 (backup / now)", "indexes",
        "options", "equal", "how it was read after the restore"))  # fmt: skip
    read = restore.get("verified_by", {})
    rows = []
    for row in restore.get("verified_against_backup", []):
        done = did.get(row["collection"], {})
        sha = f"{str(row['sha256_before'])[:12]} / {str(row['sha256_after'])[:12]}"
        indexes = row["indexes"] if row["indexes"] == "equal" else "; ".join(row["indexes"])
        how = done.get("how", "?")
        if done.get("deleted") or done.get("inserted") or done.get("replaced"):
            how += f" (-{done['deleted']} +{done['inserted']} ~{done['replaced']})"
        if done.get("indexes") not in (None, "unchanged"):
            how += "; " + "; ".join(done["indexes"])
        values = (row["collection"], how, f"{row['count_before']} / {row['count_after']}", sha,
                  indexes, row["options"], "yes" if row["equal"] else "NO",
                  read.get(row["collection"], "-"))  # fmt: skip
        rows.append("<tr>" + "".join(f"<td style='padding:0 8px 0 0'>{e(str(v))}</td>"
                                     for v in values) + "</tr>")  # fmt: skip
    state = "equal to the backup" if restore.get("equal_to_backup") else "NOT equal to the backup"
    return (
        f"{e(state)}; atomic: {e(str(restore.get('atomic')))}"
        f"<table style='border-collapse:collapse'><tr>{cells}</tr>{''.join(rows)}</table>"
    )


def evidence_rows(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    e = html.escape
    rows = []
    if "restore" in evidence:
        rows.append(("Integrity vs backup", _restore_html(evidence["restore"])))
    point = evidence.get("recovery_point")
    if point:
        kept = point.get("last_write_kept") or {}
        rows.append((
            "Recovery point",
            f"<b>{point['writes_lost']}</b> of {point['acknowledged_writes']} acknowledged writes "
            f"lost, <b>{point['seconds_of_data_lost']:.1f} s</b> of data; last write kept: "
            f"{e(str(kept.get('kind', 'none')))} at {e(str(kept.get('acknowledged_utc', '-')))}; "
            f"backup {point['seconds_backup_to_fault']:.1f} s before the fault; lost from before "
            f"the backup: <b>{len(point['lost_before_backup'])}</b>",
        ))  # fmt: skip
    cost = evidence.get("redis_flush_cost")
    if cost:
        sessions = cost["sessions"]
        rows.append((
            "What the flush cost",
            f"{sessions['sessions_held']} signed-in sessions: {sessions['still_signed_in']} still "
            f"signed in, <b>{sessions['must_sign_in_again']}</b> must sign in again, "
            f"{sessions['broken']} refused; MongoDB "
            f"{'intact' if cost['mongodb_intact'] else '<b>NOT intact</b>'} ("
            + e(", ".join(f"{r['collection']} {r['count_before']}->{r['count_after']}"
                          for r in cost["mongodb"])) + ")",
        ))  # fmt: skip
    return rows


__all__ = ["evidence_rows"]
