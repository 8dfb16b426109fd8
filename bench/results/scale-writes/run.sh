#!/bin/bash
# write rate before/after one-edit-in-flight against a PostgreSQL-backed gateway
# (pg-tick{10,50}-inflight{0,1}.json). The other results came from the same loadgen line:
#   sqlite-inflight{0,1}.json: against `python3 -m server.cli serve --no-models --port 8741
#     --data-dir /tmp/wr/data` (SQLite), --tag wr$f, port 8741;
#   speed3-tick50-inflight{0,1}.json: this script with `for tick in 50` and `--speed 3`.
cd /work/wt-scale
export PYTHONPATH=$PWD
python3 - <<'PY' > /tmp/wr/pg.dsn
import sys, time
sys.path.insert(0, "/work/wt-scale")
from tests.services import Postgres
pg = Postgres(synchronous=False)
print(pg.dsn, pg.data)
PY
DSN=$(cut -d' ' -f1 /tmp/wr/pg.dsn)
for tick in 10 50; do
  INKSTONE_COMMIT_TICK_MS=$tick python3 -m server.cli serve --no-models --port 8742 --data-dir /tmp/wr/d2 --store "$DSN" > /tmp/wr/server-pg$tick.log 2>&1 &
  SP=$!
  sleep 6
  for f in 0 1; do
    timeout 120 python3 -m server.cli loadgen --url ws://127.0.0.1:8742/v1/ws --students 60 --duration 30 --in-flight $f --lang mix --json /tmp/wr/pg-tick$tick-inflight$f.json --quiet --tag pg$tick-$f --server-pid $SP > /tmp/wr/lgpg$tick-$f.log 2>&1
  done
  kill $SP; wait $SP
done
PY_DATA=$(cut -d' ' -f2 /tmp/wr/pg.dsn)
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D $PY_DATA -m fast stop
