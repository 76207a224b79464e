package protocol

import (
	"maps"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/apps"
)

func TestPutFailuresCounted(t *testing.T) {
	ts := startServer(t, serverOptions{})
	writer, auth, reader := ts.dial(t), ts.dial(t), ts.dial(t)
	ts.login(t, writer, "writer")
	ts.login(t, auth, "authority")
	ts.login(t, reader, "reader")
	ballot := map[string]any{"ballot": "b1", "question": "Q?", "choices": []any{"a", "b"}, "opens": int64(0), "closes": time.Now().Add(time.Hour).Unix()}

	mustPut(t, writer, "note.text", map[string]any{"text": "appended: not a failure"})
	// forbidden: only an authority makes ballots.
	if _, err := putApp(t, writer, apps.KindBallot, ballot); errCode(err) != ErrForbidden.Code {
		t.Fatalf("writer made a ballot: %v", err)
	}
	// invalid_record, twice, with the check named.
	for range 2 {
		if _, err := putApp(t, writer, "vote.recount", map[string]any{"x": "y"}); errCode(err) != ErrInvalidRecord.Code {
			t.Fatalf("put vote.recount: %v", err)
		}
	}
	// refused, with the rule named.
	mustPut(t, auth, apps.KindBallot, ballot)
	_, err := putApp(t, auth, apps.KindRegister, map[string]any{"ballot": "b1", "voter": "v1", "eid": "00000000000000000000000000000000"})
	wantRefused(t, err, apps.RuleEIDAllocated)
	// Refused before the record was looked at: not counted.
	if _, err := putApp(t, reader, "note.text", map[string]any{"text": "x"}); errCode(err) != ErrForbidden.Code {
		t.Fatalf("reader put: %v", err)
	}

	want := map[PutFailure]uint64{
		{Code: "forbidden"}:                             1,
		{Code: "invalid_record", Check: "payload"}:      2,
		{Code: "refused", Check: apps.RuleEIDAllocated}: 1,
	}
	if got := ts.PutFailures(); !maps.Equal(got, want) {
		t.Errorf("PutFailures = %v, want %v", got, want)
	}
}
