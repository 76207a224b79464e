#!/bin/sh
# Put a note on one node of a local testnet as its admin:
#   testnet/put.sh NODE-NUMBER TEXT [DIR]
set -eu
N=${1:?node number, 1 to N}
TEXT=${2:?text of the note}
DIR=${3:-pyvnode-testnet}
cd "$(dirname "$0")/.."
PYV="$DIR/bin/pyvnode"
ADDR=$(sed -n "/\"name\": \"node$N\"/,/client_addr/s/.*\"client_addr\": \"\([^\"]*\)\".*/\1/p" "$DIR/cluster.json")
[ -n "$ADDR" ] || { echo "no node$N in $DIR/cluster.json" >&2; exit 1; }
PAYLOAD=$(printf '%s' "$TEXT" | sed 's/\\/\\\\/g; s/"/\\"/g')
exec "$PYV" client --server "$ADDR" --user admin --password-file "$DIR/node$N/admin-password" \
  --known-nodes "$DIR/known_nodes" put note.text "{\"text\":\"$PAYLOAD\"}"
