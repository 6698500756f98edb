"""Benchmark: create a campaign (targets computed, call lists drawn) over 100,000 dossiers on PostgreSQL.

    .venv/bin/python scripts/bench_campaign.py [--dossiers 100000] [--agencies 30] [--keep]

A fresh database is created (``cc_bench_<random>``) and migrated; dossiers are bulk-loaded with COPY
(personal data encrypted as in production), with opt-outs and earlier completed surveys so the
eligibility filters have work to do. Then ``create_campaign`` runs in one committed unit of work, timed
end to end. The goal is under 10 s. A first claim of due targets is timed too, for information.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg

from callcenter.campaign import service
from callcenter.campaign.reporting import campaign_report
from callcenter.campaign.schemas import parse_spec
from callcenter.core.clock import VN_TZ
from callcenter.core.db import make_engine, make_session_factory, session_scope, upgrade_database
from callcenter.core.pii import PiiCipher
from callcenter.core.settings import Settings

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
GOAL_SECONDS = 10.0


def agency_sizes(total: int, agencies: int, rng: random.Random) -> list[int]:
    """Uneven unit sizes (a few large departments, many small ones) that add up to ``total``."""
    weights = [1 / (i + 1) ** 0.8 * rng.uniform(0.7, 1.3) for i in range(agencies)]
    sizes = [int(total * w / sum(weights)) for w in weights]
    sizes[0] += total - sum(sizes)
    return sizes


def load(
    conn: psycopg.Connection, cipher: PiiCipher, *, dossiers: int, agencies: int, seed: int
) -> dict[str, float]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    timings: dict[str, float] = {}
    with conn.cursor() as cur:
        for i in range(agencies):
            cur.execute(
                "INSERT INTO agencies (id, code, name, organisations_only) VALUES (%s, %s, %s, %s)",
                (i + 1, f"AG{i + 1:02d}", f"Cơ quan {i + 1}", i == agencies - 1),
            )
        for i in range(10):
            cur.execute(
                "INSERT INTO fields (id, code, name) VALUES (%s, %s, %s)",
                (i + 1, f"F{i + 1}", f"Lĩnh vực {i + 1}"),
            )
        started = time.perf_counter()
        name_token = cipher.encrypt("Nguyễn Văn An")
        phones: list[str] = []
        year_start = datetime(2026, 1, 1, tzinfo=VN_TZ)
        with cur.copy(
            "COPY dossiers (source, code, agency_id, field_id, submitter_name_enc, phone_enc, phone_hash,"
            " phone_kind, is_organisation, received_at, due_at, returned_at, status, timeliness,"
            " content_hash, created_at, updated_at) FROM STDIN"
        ) as copy:
            index = 0
            for agency_index, size in enumerate(agency_sizes(dossiers, agencies, rng)):
                org = agency_index == agencies - 1
                for _ in range(size):
                    index += 1
                    # ~8 % of citizens filed more than one dossier; organisation units see few submitters
                    if org:
                        e164 = f"+8490{rng.randrange(60):07d}"
                    elif phones and rng.random() < 0.08:
                        e164 = rng.choice(phones)
                    else:
                        e164 = f"+849{rng.randrange(10**8):08d}"
                        phones.append(e164)
                    returned = year_start + timedelta(minutes=rng.randrange(300 * 24 * 60))
                    late = rng.random() < 0.12
                    copy.write_row(
                        (
                            "bench",
                            f"HS{index:08d}",
                            agency_index + 1,
                            rng.randrange(10) + 1,
                            name_token,
                            cipher.encrypt(e164),
                            cipher.phone_hash(e164),
                            "mobile",
                            org,
                            returned - timedelta(days=12),
                            returned - timedelta(days=1 if late else -2),
                            returned,
                            "returned",
                            "late" if late else "on_time",
                            f"{index:064x}",
                            now,
                            now,
                        )
                    )
        timings["copy_dossiers_s"] = time.perf_counter() - started
        # 1,000 numbers on the do-not-call list; 2,000 dossiers already surveyed on the web form
        opt = rng.sample(phones, 1000)
        cur.executemany(
            "INSERT INTO opt_outs (phone_hash, source, created_at) VALUES (%s, 'operator_list', %s)",
            [(cipher.phone_hash(p), now) for p in opt],
        )
        surveyed = rng.sample(range(1, dossiers + 1), 2000)
        cur.executemany(
            "INSERT INTO survey_responses (channel, external_ref, dossier_id, agency_id,"
            " questionnaire_version, status, comment_status, started_at, completed_at)"
            " SELECT 'web', %s, id, agency_id, 'v1', 'completed', 'none', %s, %s FROM dossiers WHERE id = %s",
            [(f"web-{d}", now - timedelta(days=200), now - timedelta(days=200), d) for d in surveyed],
        )
        cur.execute("ANALYZE")
    conn.commit()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--agencies", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    settings = Settings(env="test")
    cipher = PiiCipher(settings.pii_key_bytes, settings.phone_hash_key.get_secret_value().encode())
    name = f"cc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade_database(url)
        with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}") as conn:
            load_timings = load(conn, cipher, dossiers=args.dossiers, agencies=args.agencies, seed=2026)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        created_at = datetime(2027, 1, 1, 9, 0, tzinfo=VN_TZ)
        spec = parse_spec(
            {
                "name": "Benchmark 2026",
                "policy": "danang_2223",
                "returned_from": date(2026, 1, 1).isoformat(),
                "returned_to": date(2026, 12, 31).isoformat(),
                "starts_at": datetime(2027, 1, 4, 8, 0, tzinfo=VN_TZ).isoformat(),
                "ends_at": datetime(2027, 3, 31, 17, 0, tzinfo=VN_TZ).isoformat(),
                "seed": 7,
            }
        )
        started = time.perf_counter()
        with session_scope(sessions) as session:
            campaign = service.create_campaign(session, spec=spec, actor="bench", now=created_at)
            campaign_id = campaign.id
        create_s = time.perf_counter() - started

        with session_scope(sessions) as session:
            service.start_campaign(session, campaign_id=campaign_id, actor="bench", now=spec.starts_at)
            report = campaign_report(session, campaign_id=campaign_id, now=spec.starts_at)
        started = time.perf_counter()
        with session_scope(sessions) as session:
            claimed = service.claim_due_targets(session, now=spec.starts_at, limit=100)
        claim_s = time.perf_counter() - started
        engine.dispose()

        print(
            f"dossiers loaded (COPY, encrypted): {args.dossiers:,} in {load_timings['copy_dossiers_s']:.2f} s"
        )
        print(
            f"agencies: {len(report.agencies)}; "
            f"population N: {sum(a.population for a in report.agencies):,}; "
            f"eligible: {sum(a.eligible for a in report.agencies):,}"
        )
        print(
            f"targets (completed surveys wanted): {report.target:,}; "
            f"dossiers drawn: {sum(a.drawn for a in report.agencies):,}"
        )
        verdict = "OK" if create_s < GOAL_SECONDS else "OVER GOAL"
        print(
            f"create_campaign (targets + eligibility + draw + inserts, committed): {create_s:.2f} s "
            f"(goal < {GOAL_SECONDS:.0f} s: {verdict})"
        )
        print(f"first claim_due_targets(limit=100): {len(claimed)} targets in {claim_s * 1000:.0f} ms")
    finally:
        if not args.keep:
            with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept database {name}")


if __name__ == "__main__":
    main()
