package ledger

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on. A record that fails a check is reported
// as a *CheckError whose Unwrap returns one of the Err* check sentinels, so
// errors.Is(err, ledger.ErrSignature) works through any amount of wrapping.
var (
	// ErrDecode: the bytes are not a well-formed record encoding.
	ErrDecode = errors.New("malformed record encoding")
	// ErrCanonical: well-formed CBOR, but not the core deterministic form.
	ErrCanonical = errors.New("record is not in core deterministic encoding")
	// ErrTooLarge: the signed record exceeds MaxRecordSize.
	ErrTooLarge = errors.New("record too large")
	// ErrVersion: unknown record version.
	ErrVersion = errors.New("unsupported record version")
	// ErrKind: the kind is not a valid dotted name.
	ErrKind = errors.New("invalid record kind")
	// ErrAuthor: the author is not a valid user name.
	ErrAuthor = errors.New("invalid author")
	// ErrPayload: the payload breaks the payload rules (types, keys, depth).
	ErrPayload = errors.New("invalid payload")
	// ErrOrigin: the origin is not a 32-byte Ed25519 public key.
	ErrOrigin = errors.New("invalid origin node id")
	// ErrTime: the creation time is out of range.
	ErrTime = errors.New("invalid creation time")
	// ErrID: a claimed id does not match the record's bytes.
	ErrID = errors.New("record id mismatch")
	// ErrSignature: the origin's signature does not verify.
	ErrSignature = errors.New("bad signature")
	// ErrPoW: the id has fewer leading zero bits than the network demands.
	ErrPoW = errors.New("insufficient proof of work")
	// ErrOriginator: genesis does not allow this origin to write this kind.
	ErrOriginator = errors.New("origin not allowed to originate this kind")
)

// Store errors.
var (
	// ErrExists is returned by Append for a record the chain already holds.
	// It comes with the existing entry: appending the same record twice is
	// idempotent.
	ErrExists = errors.New("record already in chain")
	// ErrNotFound: no record with that id or height.
	ErrNotFound = errors.New("not found")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store closed")
	// ErrWrongNetwork: the data directory belongs to another network.
	ErrWrongNetwork = errors.New("chain belongs to another network")
)

// CheckError names the check a record failed.
type CheckError struct {
	Check  error  // one of the Err* check sentinels above
	Detail string // what exactly was wrong, for people
}

func (e *CheckError) Error() string {
	if e.Detail == "" {
		return e.Check.Error()
	}
	return e.Check.Error() + ": " + e.Detail
}

func (e *CheckError) Unwrap() error { return e.Check }

// CheckName returns the short stable name of the failed check ("signature",
// "pow", ...), used in logs, metrics and wire error codes.
func (e *CheckError) CheckName() string { return checkNames[e.Check] }

var checkNames = map[error]string{
	ErrDecode:     "decode",
	ErrCanonical:  "canonical",
	ErrTooLarge:   "size",
	ErrVersion:    "version",
	ErrKind:       "kind",
	ErrAuthor:     "author",
	ErrPayload:    "payload",
	ErrOrigin:     "origin",
	ErrTime:       "time",
	ErrID:         "id",
	ErrSignature:  "signature",
	ErrPoW:        "pow",
	ErrOriginator: "originator",
}

// CheckName returns the name of the check err failed, or "" when err is not
// a record check failure.
func CheckName(err error) string {
	var ce *CheckError
	if errors.As(err, &ce) {
		return ce.CheckName()
	}
	return ""
}

func checkErr(check error, format string, args ...any) error {
	return &CheckError{Check: check, Detail: fmt.Sprintf(format, args...)}
}
