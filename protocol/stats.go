package protocol

import (
	"maps"
	"sync"
)

// PutFailure is a kind of failed put: its wire error code and, for
// invalid_record and refused, the check or application rule it failed.
type PutFailure struct {
	Code  string `cbor:"code" json:"code"`
	Check string `cbor:"check,omitempty" json:"check,omitempty"`
}

// putStats counts the puts whose record was not appended.
type putStats struct {
	mu     sync.Mutex
	failed map[PutFailure]uint64
}

// putFailed counts a put that submit refused.
func (s *Server) putFailed(err error) {
	e := asError(err)
	k := PutFailure{Code: e.Code, Check: e.Check}
	s.puts.mu.Lock()
	defer s.puts.mu.Unlock()
	if s.puts.failed == nil {
		s.puts.failed = map[PutFailure]uint64{}
	}
	s.puts.failed[k]++
}

// PutFailures counts the puts whose record was refused or could not be
// appended since the server started, by error code and check. A put
// refused before its record was looked at (malformed arguments, not
// logged in, a role without the right to put at all) is not counted.
func (s *Server) PutFailures() map[PutFailure]uint64 {
	s.puts.mu.Lock()
	defer s.puts.mu.Unlock()
	return maps.Clone(s.puts.failed)
}
