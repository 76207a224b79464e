#!/bin/sh
# Stop a local testnet (its data stays): testnet/down.sh [DIR]
set -eu
DIR=${1:-pyvnode-testnet}
cd "$(dirname "$0")/.."
exec "$DIR/bin/pyvnode" testnet down --dir "$DIR"
