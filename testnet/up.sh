#!/bin/sh
# Start a local testnet: testnet/up.sh [NODES] [DIR] [more 'testnet up' flags]
# Builds pyvnode into DIR/bin so the nodes run from a stable executable.
set -eu
NODES=${1:-3}
DIR=${2:-pyvnode-testnet}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
mkdir -p "$DIR/bin"
go build -o "$DIR/bin/pyvnode" ./cmd/pyvnode
exec "$DIR/bin/pyvnode" testnet up --nodes "$NODES" --dir "$DIR" "$@"
