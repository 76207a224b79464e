package protocol

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Request is a client's message: a request id the response echoes, a
// command name and its arguments (a CBOR map whose fields each command
// defines; see docs/PROTOCOL.md §5).
type Request struct {
	ID   uint64          `cbor:"id"`
	Cmd  string          `cbor:"cmd"`
	Args cbor.RawMessage `cbor:"args,omitempty"`
}

// Response answers the request with the same id: ok with a result, or an
// error with a stable code.
type Response struct {
	ID     uint64          `cbor:"id"`
	OK     bool            `cbor:"ok"`
	Result cbor.RawMessage `cbor:"result,omitempty"`
	Error  *Error          `cbor:"error,omitempty"`
}

// Error is a typed protocol error: Code is stable and meant for programs,
// Message for people. Check names the failed record check for
// "invalid_record".
type Error struct {
	Code    string `cbor:"code" json:"code"`
	Message string `cbor:"message" json:"message"`
	Check   string `cbor:"check,omitempty" json:"check,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// Is makes errors.Is(err, protocol.ErrForbidden) and the like work on
// errors decoded from the wire.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Error codes (docs/PROTOCOL.md §6). Compare with errors.Is.
var (
	ErrBadRequest     = &Error{Code: "bad_request"}
	ErrUnknownCommand = &Error{Code: "unknown_command"}
	ErrUnauthorized   = &Error{Code: "unauthorized"}
	ErrForbidden      = &Error{Code: "forbidden"}
	ErrLoginFailed    = &Error{Code: "login_failed"}
	ErrCodeRequired   = &Error{Code: "code_required"}
	ErrLockedOut      = &Error{Code: "locked_out"}
	ErrMustChange     = &Error{Code: "password_change_required"}
	ErrNotFound       = &Error{Code: "not_found"}
	ErrExists         = &Error{Code: "exists"}
	ErrInvalidRecord  = &Error{Code: "invalid_record"}
	ErrRefused        = &Error{Code: "refused"} // an application rule; Check names it
	ErrTooLarge       = &Error{Code: "too_large"}
	ErrQuota          = &Error{Code: "quota_exceeded"}
	ErrConflict       = &Error{Code: "conflict"}
	ErrBusy           = &Error{Code: "busy"}
	ErrUnavailable    = &Error{Code: "unavailable"}
	ErrInternal       = &Error{Code: "internal"}
)

// errorf makes a typed error with a message.
func errorf(code *Error, format string, args ...any) *Error {
	return &Error{Code: code.Code, Message: fmt.Sprintf(format, args...)}
}

// asError turns any error into a wire error; unknown errors become
// "internal" without leaking their text.
func asError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: ErrInternal.Code, Message: "internal error"}
}

// encodeArgs encodes a command's arguments or result.
func encodeArgs(v any) (cbor.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	return encMode.Marshal(v)
}

// decodeArgs decodes arguments strictly: unknown fields are refused.
func decodeArgs(raw cbor.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = cbor.RawMessage{0xa0} // no args: an empty map
	}
	if err := decMode.Unmarshal(raw, v); err != nil {
		return errorf(ErrBadRequest, "arguments: %v", err)
	}
	return nil
}
