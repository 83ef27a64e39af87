#!/bin/sh
# usage: bench-cluster-mirror.sh ORIGIN PORT DIR
# One wharf replica in cluster mode for ../shared/bench: blobs in a bucket
# of versitygw (posix backend under DIR), metadata in a PostgreSQL of its
# own (Debian's, default durability), both started here on PORT+1000 and
# PORT+1001 and stopped with the process group when the bench ends.
set -eu
origin=$1 port=$2 dir=$3
root=$(cd "$(dirname "$0")/.." && pwd)
pgport=$((port + 1000))
s3port=$((port + 1001))
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
mkdir -p "$dir/pg" "$dir/s3/wharf"
as=""
if [ "$(id -u)" = 0 ]; then # PostgreSQL refuses to run as root
	chown postgres: "$dir/pg"
	chmod o+x "$dir" "$(dirname "$dir")" # its data dir's parents must be traversable
	as="setpriv --reuid=postgres --regid=postgres --init-groups --"
fi
echo wharf-bench >"$dir/pgpw"
chmod 644 "$dir/pgpw"
$as "$pgbin/initdb" -D "$dir/pg/data" -U wharf --pwfile "$dir/pgpw" --auth-host=scram-sha-256 --auth-local=trust \
	-E UTF8 --no-locale >"$dir/initdb.log" 2>&1
$as "$pgbin/postgres" -D "$dir/pg/data" -h 127.0.0.1 -p "$pgport" -k "$dir/pg" >"$dir/postgres.log" 2>&1 &
until "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pgport"; do sleep 0.1; done
PGPASSWORD=wharf-bench "$pgbin/psql" -q -h 127.0.0.1 -p "$pgport" -U wharf -d postgres -c 'CREATE DATABASE wharf'
"$root/.cache/bin/versitygw" --access bench --secret bench-secret --port "127.0.0.1:$s3port" --region us-east-1 \
	posix "$dir/s3" >"$dir/versitygw.log" 2>&1 &
until curl -s -o /dev/null "http://127.0.0.1:$s3port/"; do sleep 0.1; done
cat >"$dir/wharf.yml" <<YML
listen: 127.0.0.1:$port
data_dir: $dir/data
log:
  access_log: false
storage:
  s3:
    endpoint: http://127.0.0.1:$s3port
    bucket: wharf
    access_key: bench
    secret_key: bench-secret
index:
  postgres: postgres://wharf:wharf-bench@127.0.0.1:$pgport/wharf?sslmode=disable
proxies:
  - name: origin
    upstream: $origin
    default: true
YML
exec ${WHARF_BIN:-$root/bin/wharf} serve --config "$dir/wharf.yml"
