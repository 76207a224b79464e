#!/bin/sh
# Show each node of a local testnet: testnet/status.sh [DIR]
set -eu
DIR=${1:-pyvnode-testnet}
cd "$(dirname "$0")/.."
exec "$DIR/bin/pyvnode" testnet status --dir "$DIR"
