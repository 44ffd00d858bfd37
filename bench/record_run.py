#!/usr/bin/env python3
"""Copy a run's own results file (lengthgen.py writes LENGTHGEN_DIR/results.json, with its resolved config) into
bench/results/NAME.json, with the provenance every results file carries: the command that made the run, the
commit, the date, the machine and the resolved config. Run it on the machine that made the run, right after.

    python3 bench/record_run.py runs/anylength/results.json --name anylength-heads2-seed0 \\
        --command "python3 lengthgen.py --config configs/anylength.yaml" --what "the flagship, seed 0"
"""
import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from common import RESULTS, ROOT, commit, machine, weights_sha256


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="the run's results.json (it must hold its resolved config under `config`)")
    p.add_argument("--name", required=True, help="results file name under bench/results/")
    p.add_argument("--command", required=True, help="the command that made the run, as typed")
    p.add_argument("--what", help="one line on what the run is")
    p.add_argument("--commit", help="the commit the run ran at (default: this tree's)")
    args = p.parse_args()
    from hexadd.common.io import write_json
    run = json.loads(Path(args.results).read_text())
    if not isinstance(run.get("config"), dict):
        sys.exit(f"{args.results}: no resolved config in it (`config`): not a results file of lengthgen.py")
    when = datetime.fromtimestamp(Path(args.results).stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = {"command": args.command, "commit": args.commit or commit(), "date": when, "machine": machine(),
            "config": run.pop("config"), **({"what": args.what} if args.what else {})}
    weights = weights_sha256(Path(args.results).parent / "model")
    if weights:
        head["weights_sha256"] = weights
    path = RESULTS / f"{args.name}.json"
    write_json(path, {**head, **run})
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
