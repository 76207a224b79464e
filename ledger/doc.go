// Package ledger owns pyvnode's chain: the record model and its canonical
// CBOR encoding, record ids, Ed25519 signatures, proof of work, the genesis
// rules of a network, the Badger-backed append-only store with its hash links,
// the RFC 6962 Merkle tree over record ids, signed checkpoints, full chain
// verification and the JSON-lines export.
//
// It is the only package that imports Badger, and it imports no other
// pyvnode package.
//
// The exact bytes of everything this package writes are described in
// docs/FORMAT.md; the test vectors there are checked by vectors_test.go.
//
// Writing a record goes through three steps:
//
//	rec := &ledger.Record{Version: 1, Kind: "note.text", Payload: p, ...}
//	ledger.Mine(ctx, rec, genesis.PowBits)    // find a nonce (all cores)
//	sr, _ := ledger.Sign(rec, identity, genesis.Network)
//	entry, err := store.Append(ctx, sr, 0, "local")
//
// Append returns once the record is on disk (fsync). Concurrent appends are
// group-committed: one goroutine owns the write side, takes every pending
// append, writes them in one Badger transaction and syncs once, so sixteen
// writers share one fsync instead of paying for sixteen.
package ledger
