#!/bin/sh
# usage: mirror.sh ORIGIN PORT DIR
cat > "$3/wharf.yml" <<YML
listen: 127.0.0.1:$2
data_dir: $3/data
log:
  access_log: false
proxies:
  - name: origin
    upstream: $1
    default: true
YML
exec ${WHARF_BIN:-$(dirname "$0")/../bin/wharf} serve --config "$3/wharf.yml"
