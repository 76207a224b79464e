// Package nodelog owns the node's logs: the node log and the replication
// log, each written to stderr, to a size-rotated JSON-lines file under the
// data directory (see LogDir), and to an in-memory Hub that keeps the most
// recent entries for the web control panel's live view.
//
// A logging call never waits on a reader: the hub hands entries to
// subscribers with a non-blocking send and counts what a full subscriber
// missed (Hub.Dropped).
package nodelog
