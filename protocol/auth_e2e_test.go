package protocol_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/protocol/accounts"
)

// adminTOTP reads the admin's TOTP secret from the admin-password file.
func adminTOTP(t *testing.T, tn *testNode) string {
	t.Helper()
	b, err := os.ReadFile(node.AdminPasswordPath(tn.dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if uri, ok := strings.CutPrefix(l, "totp: "); ok {
			k, err := otp.NewKeyFromURL(uri)
			if err != nil {
				t.Fatal(err)
			}
			return k.Secret()
		}
	}
	t.Fatal("no totp line in the admin-password file")
	return ""
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func isCode(err error, want *protocol.Error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == want.Code
}

// TestNodeRequiresTOTP: a node not in dev mode wants the second factor: the
// right password alone gets code_required, a valid code logs in, and the
// same code cannot be used twice; a code of the next step still works once.
func TestNodeRequiresTOTP(t *testing.T) {
	tn := startNode(t, false)
	secret := adminTOTP(t, tn)
	ctx := context.Background()
	c := tn.dial(t)
	var h protocol.HelloResult
	if err := c.Call(ctx, "hello", nil, &h); err != nil || h.Dev {
		t.Fatalf("hello: %+v %v", h, err)
	}
	login := func(c *protocol.Client, code string) (protocol.LoginResult, error) {
		var lr protocol.LoginResult
		args := map[string]string{"user": "admin", "password": tn.password}
		if code != "" {
			args["code"] = code
		}
		err := c.Call(ctx, "login", args, &lr)
		return lr, err
	}
	if _, err := login(c, ""); !isCode(err, protocol.ErrCodeRequired) {
		t.Fatalf("login without a code: %v, want code_required", err)
	}
	if err := c.Call(ctx, "user.list", nil, nil); !isCode(err, protocol.ErrUnauthorized) {
		t.Fatalf("after code_required the session is not logged in: %v", err)
	}
	now := time.Now()
	first := code(t, secret, now)
	lr, err := login(c, first)
	if err != nil {
		t.Fatalf("login with a valid code: %v", err)
	}
	if lr.User != "admin" || lr.Role != "admin" || !lr.MustChange {
		t.Fatalf("login = %+v", lr)
	}
	// The same code again, from another session: refused.
	c2 := tn.dial(t)
	if _, err := login(c2, first); !isCode(err, protocol.ErrLoginFailed) {
		t.Fatalf("reused code: %v, want login_failed", err)
	}
	if err := c2.Call(ctx, "passwd", map[string]string{"old": tn.password, "new": "another long password"}, nil); !isCode(err, protocol.ErrUnauthorized) {
		t.Fatalf("session with a refused code is logged in: %v", err)
	}
	// The next step's code is accepted (clock skew), once.
	next := code(t, secret, now.Add(30*time.Second))
	if _, err := login(c2, next); err != nil {
		t.Fatalf("next step's code: %v", err)
	}
	c3 := tn.dial(t)
	if _, err := login(c3, next); !isCode(err, protocol.ErrLoginFailed) {
		t.Fatalf("next step's code reused: %v", err)
	}
	// After the password change, the new password also needs a code.
	if err := c.Call(ctx, "passwd", map[string]string{"old": tn.password, "new": "another long password"}, nil); err != nil {
		t.Fatal(err)
	}
	tn.password = "another long password"
	if _, err := login(c3, ""); !isCode(err, protocol.ErrCodeRequired) {
		t.Fatalf("new password without a code: %v", err)
	}
	// A user the admin adds gets a TOTP enrolment that works.
	var added accounts.Added
	if err := c.Call(ctx, "user.add", map[string]any{"name": "w", "role": "writer", "password": "writer password"}, &added); err != nil {
		t.Fatal(err)
	}
	if added.TOTP == nil || added.TOTP.Secret == "" || !strings.HasPrefix(added.TOTP.URI, "otpauth://totp/") {
		t.Fatalf("user.add enrolment: %+v", added.TOTP)
	}
	w := tn.dial(t)
	if err := w.Call(ctx, "login", map[string]string{"user": "w", "password": "writer password"}, nil); !isCode(err, protocol.ErrCodeRequired) {
		t.Fatalf("new user without a code: %v", err)
	}
	if err := w.Call(ctx, "login", map[string]string{"user": "w", "password": "writer password", "code": code(t, added.TOTP.Secret, time.Now())}, nil); err != nil {
		t.Fatalf("new user with a code: %v", err)
	}
	// user.reset-2fa replaces the secret: the old one stops working.
	var enr accounts.Enrollment
	if err := c.Call(ctx, "user.reset-2fa", map[string]any{"name": "w"}, &enr); err != nil || enr.Secret == added.TOTP.Secret {
		t.Fatalf("reset-2fa: %+v %v", enr, err)
	}
	w2 := tn.dial(t)
	if err := w2.Call(ctx, "login", map[string]string{"user": "w", "password": "writer password", "code": code(t, added.TOTP.Secret, time.Now().Add(30*time.Second))}, nil); !isCode(err, protocol.ErrLoginFailed) {
		t.Fatalf("login with the replaced secret: %v", err)
	}
	if err := w2.Call(ctx, "login", map[string]string{"user": "w", "password": "writer password", "code": code(t, enr.Secret, time.Now().Add(30*time.Second))}, nil); err != nil {
		t.Fatalf("login with the new secret: %v", err)
	}
}

// TestAccountRules runs the account rules on a real node: roles, one-time
// passwords, changes that take effect within open sessions, and the last
// admin.
func TestAccountRules(t *testing.T) {
	tn := startNode(t, true)
	ctx := context.Background()
	a := tn.admin(t)
	add := func(name, role, pw string) accounts.Added {
		t.Helper()
		var out accounts.Added
		args := map[string]any{"name": name, "role": role}
		if pw != "" {
			args["password"] = pw
		}
		if err := a.Call(ctx, "user.add", args, &out); err != nil {
			t.Fatalf("user.add %s: %v", name, err)
		}
		return out
	}
	login := func(user, pw string) *protocol.Client {
		t.Helper()
		c := tn.dial(t)
		if err := c.Call(ctx, "login", map[string]string{"user": user, "password": pw}, nil); err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		return c
	}
	put := func(c *protocol.Client) error {
		return c.Call(ctx, "put", map[string]any{"kind": "note.text", "payload": map[string]any{"t": "x"}}, nil)
	}
	add("w", "writer", "writer password")
	add("r", "reader", "reader password")

	// Account management errors.
	for _, bad := range []struct {
		args map[string]any
		want *protocol.Error
	}{
		{map[string]any{"name": "w", "role": "writer", "password": "another password"}, protocol.ErrExists},
		{map[string]any{"name": "Bad", "role": "writer"}, protocol.ErrBadRequest},
		{map[string]any{"name": "x", "role": "root"}, protocol.ErrBadRequest},
		{map[string]any{"name": "x", "role": "writer", "password": "short"}, protocol.ErrBadRequest},
	} {
		if err := a.Call(ctx, "user.add", bad.args, nil); !isCode(err, bad.want) {
			t.Errorf("user.add %v: %v, want %s", bad.args, err, bad.want.Code)
		}
	}
	if err := a.Call(ctx, "user.del", map[string]any{"name": "nobody"}, nil); !isCode(err, protocol.ErrNotFound) {
		t.Errorf("user.del nobody: %v", err)
	}

	// Roles.
	anon := tn.dial(t)
	if err := put(anon); !isCode(err, protocol.ErrUnauthorized) {
		t.Fatalf("anonymous put: %v", err)
	}
	r := login("r", "reader password")
	w := login("w", "writer password")
	if err := put(r); !isCode(err, protocol.ErrForbidden) {
		t.Fatalf("reader put: %v", err)
	}
	if err := r.Call(ctx, "file.write", map[string]any{"path": "f", "offset": 0, "data": []byte("x")}, nil); !isCode(err, protocol.ErrForbidden) {
		t.Fatalf("reader file.write: %v", err)
	}
	if err := r.Call(ctx, "file.ls", nil, nil); err != nil {
		t.Fatalf("reader file.ls: %v", err)
	}
	if err := put(w); err != nil {
		t.Fatalf("writer put: %v", err)
	}
	for _, cmd := range []string{"user.add", "user.list", "user.del", "limits", "status", "peer.add", "verify"} {
		if err := w.Call(ctx, cmd, map[string]any{}, nil); !isCode(err, protocol.ErrForbidden) {
			t.Errorf("writer %s: %v, want forbidden", cmd, err)
		}
	}

	// A one-time password allows only passwd (and the anyone commands).
	onetime := add("n", "writer", "")
	if onetime.Password == "" || !onetime.User.MustChange {
		t.Fatalf("user.add without a password: %+v", onetime)
	}
	n := tn.dial(t)
	var lr protocol.LoginResult
	if err := n.Call(ctx, "login", map[string]string{"user": "n", "password": onetime.Password}, &lr); err != nil || !lr.MustChange {
		t.Fatalf("one-time login: %+v %v", lr, err)
	}
	if err := put(n); !isCode(err, protocol.ErrMustChange) {
		t.Fatalf("put before passwd: %v", err)
	}
	for _, cmd := range []string{"file.ls", "file.stat", "file.write", "file.publish"} {
		if err := n.Call(ctx, cmd, map[string]any{"path": "x"}, nil); !isCode(err, protocol.ErrMustChange) {
			t.Errorf("%s before passwd: %v", cmd, err)
		}
	}
	for _, cmd := range []string{"hello", "head", "id"} {
		if err := n.Call(ctx, cmd, nil, nil); err != nil {
			t.Errorf("%s before passwd: %v", cmd, err)
		}
	}
	if err := n.Call(ctx, "timeout", map[string]any{"seconds": 30}, nil); err != nil {
		t.Errorf("timeout before passwd: %v", err)
	}
	if err := n.Call(ctx, "passwd", map[string]string{"old": "wrong password", "new": "my own password"}, nil); !isCode(err, protocol.ErrLoginFailed) {
		t.Fatalf("passwd with a wrong old password: %v", err)
	}
	if err := n.Call(ctx, "passwd", map[string]string{"old": onetime.Password, "new": "short"}, nil); !isCode(err, protocol.ErrBadRequest) {
		t.Fatalf("passwd to a short password: %v", err)
	}
	if err := n.Call(ctx, "passwd", map[string]string{"old": onetime.Password, "new": onetime.Password}, nil); !isCode(err, protocol.ErrBadRequest) {
		t.Fatalf("passwd to the same password: %v", err)
	}
	if err := put(n); !isCode(err, protocol.ErrMustChange) {
		t.Fatalf("put after failed passwd: %v", err)
	}
	if err := n.Call(ctx, "passwd", map[string]string{"old": onetime.Password, "new": "my own password"}, nil); err != nil {
		t.Fatalf("passwd: %v", err)
	}
	if err := put(n); err != nil {
		t.Fatalf("put after passwd: %v", err)
	}
	// The one-time password no longer works.
	if err := tn.dial(t).Call(ctx, "login", map[string]string{"user": "n", "password": onetime.Password}, nil); !isCode(err, protocol.ErrLoginFailed) {
		t.Fatalf("one-time password reused: %v", err)
	}

	// An admin's reset ends the user's open sessions, and the new
	// one-time password must be changed before anything else.
	var reset map[string]string
	if err := a.Call(ctx, "user.reset-password", map[string]any{"name": "n"}, &reset); err != nil || reset["password"] == "" {
		t.Fatalf("reset-password: %v %v", reset, err)
	}
	if err := put(n); !isCode(err, protocol.ErrUnauthorized) {
		t.Fatalf("put after an admin's reset: %v", err)
	}
	n2 := tn.dial(t)
	if err := n2.Call(ctx, "login", map[string]string{"user": "n", "password": reset["password"]}, nil); err != nil {
		t.Fatalf("login with the reset password: %v", err)
	}
	if err := put(n2); !isCode(err, protocol.ErrMustChange) {
		t.Fatalf("put before changing the reset password: %v", err)
	}

	// Disabling takes effect on the next request of an open session.
	if err := a.Call(ctx, "user.disable", map[string]any{"name": "w"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := put(w); !isCode(err, protocol.ErrUnauthorized) {
		t.Fatalf("put by a disabled user: %v", err)
	}
	var h protocol.HelloResult
	if err := w.Call(ctx, "hello", nil, &h); err != nil || h.User != "" {
		t.Fatalf("a disabled user's session still acts as %q (%v)", h.User, err)
	}
	if err := w.Call(ctx, "login", map[string]string{"user": "w", "password": "writer password"}, nil); !isCode(err, protocol.ErrLoginFailed) {
		t.Fatalf("login of a disabled user: %v", err)
	}
	if err := a.Call(ctx, "user.enable", map[string]any{"name": "w"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := put(w); !isCode(err, protocol.ErrUnauthorized) {
		t.Fatalf("re-enabling logged the old session back in: %v", err)
	}
	w = login("w", "writer password")
	if err := put(w); err != nil {
		t.Fatalf("put after re-enable and login: %v", err)
	}
	// Demotion too.
	if err := a.Call(ctx, "user.role", map[string]any{"name": "w", "role": "reader"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := put(w); !isCode(err, protocol.ErrForbidden) {
		t.Fatalf("put after demotion: %v", err)
	}
	// Deletion too.
	if err := a.Call(ctx, "user.del", map[string]any{"name": "r"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Call(ctx, "file.ls", nil, nil); !isCode(err, protocol.ErrUnauthorized) {
		t.Fatalf("file.ls by a deleted user: %v", err)
	}

	// The last enabled admin stays.
	for _, c := range []struct {
		cmd  string
		args map[string]any
	}{
		{"user.del", map[string]any{"name": "admin"}},
		{"user.role", map[string]any{"name": "admin", "role": "writer"}},
		{"user.disable", map[string]any{"name": "admin"}},
	} {
		if err := a.Call(ctx, c.cmd, c.args, nil); !isCode(err, protocol.ErrConflict) {
			t.Fatalf("%s on the last admin: %v, want conflict", c.cmd, err)
		}
	}
	var ul protocol.UsersResult
	if err := a.Call(ctx, "user.list", nil, &ul); err != nil {
		t.Fatal(err)
	}
	for _, u := range ul.Users {
		if u.Name == "admin" && (u.Role != accounts.Admin || !u.Enabled) {
			t.Fatalf("last admin changed: %+v", u)
		}
	}
	// A disabled second admin does not count.
	add("a2", "admin", "second admin password")
	if err := a.Call(ctx, "user.disable", map[string]any{"name": "a2"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Call(ctx, "user.role", map[string]any{"name": "admin", "role": "writer"}, nil); !isCode(err, protocol.ErrConflict) {
		t.Fatalf("demoting the only enabled admin: %v", err)
	}
	// With an enabled second admin, the first can be demoted, and loses
	// the admin commands at once.
	if err := a.Call(ctx, "user.enable", map[string]any{"name": "a2"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Call(ctx, "user.role", map[string]any{"name": "admin", "role": "writer"}, nil); err != nil {
		t.Fatalf("demoting one of two admins: %v", err)
	}
	if err := a.Call(ctx, "user.list", nil, nil); !isCode(err, protocol.ErrForbidden) {
		t.Fatalf("demoted admin's session: %v", err)
	}
	a2 := login("a2", "second admin password")
	if err := a2.Call(ctx, "user.del", map[string]any{"name": "a2"}, nil); !isCode(err, protocol.ErrConflict) {
		t.Fatalf("the new last admin deleting itself: %v", err)
	}
}
