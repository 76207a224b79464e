package protocol

import (
	"context"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/pyvnode/pyvnode/protocol/accounts"
)

// TestLoginLockoutOverProtocol: after max failures the user name and the
// source address are locked out (locked_out), even for the right password;
// another address can still log in other users, and the counters show in
// the server's statistics.
func TestLoginLockoutOverProtocol(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{}),
		acc: accounts.Options{MaxFailures: 3, FailureDelay: time.Millisecond, Lockout: time.Minute}})
	ctx := context.Background()
	c := ts.dial(t)
	login := func(c *Client, user, pw string) error {
		return c.Call(ctx, "login", map[string]string{"user": user, "password": pw}, nil)
	}
	for i := range 2 {
		if err := login(c, "writer", "wrong password"); errCode(err) != ErrLoginFailed.Code {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if err := login(c, "writer", "wrong password"); errCode(err) != ErrLockedOut.Code {
		t.Fatalf("third failure: %v, want locked_out", err)
	}
	if err := login(c, "writer", testPasswords["writer"]); errCode(err) != ErrLockedOut.Code {
		t.Fatalf("right password while locked out: %v", err)
	}
	// The address is locked out too, for every user.
	if err := login(ts.dial(t), "reader", testPasswords["reader"]); errCode(err) != ErrLockedOut.Code {
		t.Fatalf("another user from the locked address: %v", err)
	}
	// From another address: other users log in; the locked user does not.
	other, err := ts.tryConnect(t, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	oc := newClient(other.Conn, ts.addr)
	defer oc.Close()
	if err := login(oc, "reader", testPasswords["reader"]); err != nil {
		t.Fatalf("other address, other user: %v", err)
	}
	if err := login(oc, "writer", testPasswords["writer"]); errCode(err) != ErrLockedOut.Code {
		t.Fatalf("locked user from another address: %v", err)
	}
	if st := ts.Stats(); st.LoginFailures != 6 || st.Logins != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestLoginSecondFactorOverProtocol: with TOTP required, a wrong code fails
// (and counts as a failure), a missing code is code_required only after the
// right password, and a valid code logs in once.
func TestLoginSecondFactorOverProtocol(t *testing.T) {
	ts := startServer(t, serverOptions{totp: true, limits: looseConnLimits(Limits{}),
		acc: accounts.Options{MaxFailures: 10, FailureDelay: time.Millisecond}})
	ctx := context.Background()
	c := ts.dial(t)
	login := func(pw, code string) error {
		return c.Call(ctx, "login", map[string]string{"user": "writer", "password": pw, "code": code}, nil)
	}
	if err := login("wrong password", ""); errCode(err) != ErrLoginFailed.Code {
		t.Fatalf("wrong password, no code: %v", err)
	}
	if err := login(testPasswords["writer"], ""); errCode(err) != ErrCodeRequired.Code {
		t.Fatalf("right password, no code: %v", err)
	}
	if err := login(testPasswords["writer"], "000000x"); errCode(err) != ErrLoginFailed.Code {
		t.Fatalf("malformed code: %v", err)
	}
	now := time.Now()
	good, _ := totp.GenerateCode(ts.secret["writer"], now)
	wrong := "000000"
	if wrong == good {
		wrong = "000001"
	}
	if err := login(testPasswords["writer"], wrong); errCode(err) != ErrLoginFailed.Code {
		t.Fatalf("wrong code: %v", err)
	}
	if err := login("wrong password", good); errCode(err) != ErrLoginFailed.Code {
		t.Fatalf("valid code, wrong password: %v", err)
	}
	old, _ := totp.GenerateCode(ts.secret["writer"], now.Add(-90*time.Second))
	if old != good {
		if err := login(testPasswords["writer"], old); errCode(err) != ErrLoginFailed.Code {
			t.Fatalf("code three steps old: %v", err)
		}
	}
	other, _ := totp.GenerateCode(ts.secret["reader"], now)
	if other != good {
		if err := login(testPasswords["writer"], other); errCode(err) != ErrLoginFailed.Code {
			t.Fatalf("another user's code: %v", err)
		}
	}
	if err := login(testPasswords["writer"], good); err != nil {
		t.Fatalf("valid code: %v", err)
	}
	if err := login(testPasswords["writer"], good); errCode(err) != ErrLoginFailed.Code {
		t.Fatalf("replayed code: %v", err)
	}
}
