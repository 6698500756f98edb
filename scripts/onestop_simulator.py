"""Run the one-stop system SIMULATOR: a stand-in serving synthetic dossiers, not the real system.

    .venv/bin/python scripts/onestop_simulator.py --port 8765 --dossiers 5000 --token dev-token

Then point the intake at it: CALLCENTER_INTAKE_API_BASE_URL=http://127.0.0.1:8765
CALLCENTER_INTAKE_API_TOKEN=dev-token callcenter intake api
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import uvicorn

from callcenter.intake.mapping import load_mapping
from callcenter.intake.settings import IntakeSettings
from callcenter.intake.simulator import STAND_IN_NOTICE, Faults, OneStopStore, create_simulator_app
from callcenter.intake.synthetic import make_raw_dossiers


def main() -> None:
    parser = argparse.ArgumentParser(description=STAND_IN_NOTICE)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--dossiers", type=int, default=5000, help="how many synthetic dossiers to serve")
    parser.add_argument("--seed", type=int, default=1022)
    parser.add_argument("--agencies", type=int, default=30, help="number of agencies (1-42)")
    parser.add_argument("--token", default="dev-token", help="the bearer token clients must send")
    parser.add_argument("--bad-share", type=float, default=0.01, help="share of defective records")
    parser.add_argument("--rate-limited", type=int, default=0, help="answer the first N requests with 429")
    parser.add_argument("--server-errors", type=int, default=0, help="then answer N requests with 503")
    args = parser.parse_args()

    settings = IntakeSettings()
    mapping = load_mapping(settings.mapping_path)
    records = make_raw_dossiers(
        args.dossiers, seed=args.seed, now=datetime.now(UTC), agencies=args.agencies, bad_share=args.bad_share
    )
    store = OneStopStore(records, mapping=mapping)
    faults = Faults(rate_limited=args.rate_limited, server_errors=args.server_errors)
    app = create_simulator_app(store, token=args.token, faults=faults)
    print(STAND_IN_NOTICE)
    print(f"serving {len(store)} dossiers at http://{args.host}:{args.port}{mapping.api.path}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
