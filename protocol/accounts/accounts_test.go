package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

var cheap = Params{MemoryKiB: 64, Time: 1, Threads: 1}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock {
	// Mid-step, so a test's own skew arithmetic never straddles a step.
	return &clock{t: time.Date(2026, 3, 1, 12, 0, 15, 0, time.UTC)}
}

func openStore(t *testing.T, o Options) (*Store, string) {
	t.Helper()
	if o.Params.MemoryKiB == 0 {
		o.Params = cheap
	}
	if o.FailureDelay == 0 {
		o.FailureDelay = time.Microsecond
	}
	path := filepath.Join(t.TempDir(), "users.json")
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func mustAdd(t *testing.T, s *Store, name string, role Role, pw string) *Added {
	t.Helper()
	a, err := s.Add(name, role, pw)
	if err != nil {
		t.Fatalf("Add %s: %v", name, err)
	}
	return a
}

func fixedBug(t *testing.T, what string) {
	t.Helper()
	t.Fatal("a fixed bug is back: " + what)
}

func TestAddAndPersist(t *testing.T) {
	s, path := openStore(t, Options{})
	a := mustAdd(t, s, "alice", Writer, "alice's password")
	if a.Password != "" || a.User.MustChange || a.TOTP == nil || a.TOTP.Secret == "" {
		t.Fatalf("Add with a password: %+v", a)
	}
	if !strings.Contains(a.TOTP.URI, "issuer=pyvnode") || !strings.Contains(a.TOTP.URI, "alice") {
		t.Fatalf("otpauth URI %q", a.TOTP.URI)
	}
	b := mustAdd(t, s, "bob", Reader, "")
	if len(b.Password) != 20 || !b.User.MustChange {
		t.Fatalf("Add without a password: %+v", b)
	}
	for _, bad := range []struct {
		name string
		role Role
		pw   string
		want error
	}{
		{"alice", Reader, "0123456789", ErrExists},
		{"", Reader, "0123456789", ErrInvalid},
		{"Alice", Reader, "0123456789", ErrInvalid},
		{"1abc", Reader, "0123456789", ErrInvalid},
		{"a/b", Reader, "0123456789", ErrInvalid},
		{"../x", Reader, "0123456789", ErrInvalid},
		{strings.Repeat("a", 33), Reader, "0123456789", ErrInvalid},
		{"carol", "root", "0123456789", ErrInvalid},
		{"carol", Reader, "012345678", ErrWeakPassword},
	} {
		if _, err := s.Add(bad.name, bad.role, bad.pw); !errors.Is(err, bad.want) {
			t.Errorf("Add(%q, %q): %v, want %v", bad.name, bad.role, err, bad.want)
		}
	}
	// The file is private, holds Argon2id hashes and no password.
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("accounts file: %v %v", fi, err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "alice's password") || strings.Contains(string(raw), b.Password) {
		t.Fatal("a password is stored in the clear")
	}
	var ff fileFormat
	if err := json.Unmarshal(raw, &ff); err != nil || len(ff.Users) != 2 {
		t.Fatalf("file: %v %d users", err, len(ff.Users))
	}
	for _, u := range ff.Users {
		if !strings.HasPrefix(u.Hash, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Fatalf("hash %q", u.Hash)
		}
	}
	// Reopened, everything is there and logins work.
	s2, err := Open(path, Options{Params: cheap})
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.List(); len(got) != 2 || got[0].Name != "alice" || got[1].Name != "bob" || !got[0].TOTP {
		t.Fatalf("List after reopen: %+v", got)
	}
	if _, err := s2.Login(context.Background(), "alice", "alice's password", "", "h", false); err != nil {
		t.Fatalf("login after reopen: %v", err)
	}
	// A damaged file is refused, not half-read.
	os.WriteFile(path, []byte(`{"users":[{"name":"Bad Name","role":"admin"}]}`), 0o600)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open with a bad user name: %v", err)
	}
	os.WriteFile(path, []byte(`{"users":[{"name":"x","role":"god"}]}`), 0o600)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open with a bad role: %v", err)
	}
	os.WriteFile(path, []byte(`{"users":`), 0o600)
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("Open of a truncated file succeeded")
	}
}

func TestLoginPasswords(t *testing.T) {
	s, _ := openStore(t, Options{MaxFailures: 100})
	ctx := context.Background()
	mustAdd(t, s, "alice", Writer, "alice's password")
	u, err := s.Login(ctx, "alice", "alice's password", "", "h", false)
	if err != nil || u.Name != "alice" || u.Role != Writer {
		t.Fatalf("Login: %+v %v", u, err)
	}
	for _, c := range []struct{ user, pw string }{
		{"alice", "wrong password"}, {"alice", ""}, {"alice", "alice's password "}, {"alice", "ALICE'S PASSWORD"},
		{"nobody", "alice's password"}, {"Alice", "alice's password"},
	} {
		if _, err := s.Login(ctx, c.user, c.pw, "", "h", false); !errors.Is(err, ErrLoginFailed) {
			t.Errorf("Login(%q, %q): %v, want ErrLoginFailed", c.user, c.pw, err)
		}
	}
	if err := s.SetEnabled("alice", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "alice", "alice's password", "", "h", false); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("disabled user: %v", err)
	}
	// A damaged hash is an error, never a login.
	s.mu.Lock()
	s.users["alice"].Enabled = true
	s.users["alice"].Hash = "$argon2id$v=19$m=64,t=1,p=1$$"
	s.mu.Unlock()
	if _, err := s.Login(ctx, "alice", "", "", "h", false); err == nil {
		t.Fatal("login against an empty hash succeeded")
	}
}

func TestTOTP(t *testing.T) {
	clk := newClock()
	s, _ := openStore(t, Options{Now: clk.Now, MaxFailures: 100})
	ctx := context.Background()
	a := mustAdd(t, s, "alice", Writer, "alice's password")
	secret := a.TOTP.Secret
	gen := func(at time.Time) string {
		c, err := totp.GenerateCode(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	login := func(code string) error {
		_, err := s.Login(ctx, "alice", "alice's password", code, "h", true)
		return err
	}
	if err := login(""); !errors.Is(err, ErrCodeRequired) {
		t.Fatalf("no code: %v", err)
	}
	if _, err := s.Login(ctx, "alice", "wrong password", "", "h", true); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("wrong password, no code: %v (code_required would confirm the password)", err)
	}
	now := clk.Now()
	for _, bad := range []string{gen(now.Add(-60 * time.Second)), gen(now.Add(60 * time.Second)), "12345", "1234567", "abcdef"} {
		if bad == gen(now) || bad == gen(now.Add(-30*time.Second)) || bad == gen(now.Add(30*time.Second)) {
			continue // a coincidence of codes
		}
		if err := login(bad); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("code %q: %v", bad, err)
		}
	}
	// The previous step's code is accepted...
	if err := login(gen(now.Add(-30 * time.Second))); err != nil {
		t.Fatalf("previous step's code: %v", err)
	}
	// ...then the current one; not the previous one again.
	if err := login(gen(now)); err != nil {
		t.Fatalf("current code: %v", err)
	}
	if err := login(gen(now)); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("replayed code: %v", err)
	}
	if c := gen(now.Add(-30 * time.Second)); c != gen(now) {
		if err := login(c); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("older code after a newer one: %v", err)
		}
	}
	// The next step's code once; then nothing until the clock moves.
	next := gen(now.Add(30 * time.Second))
	if err := login(next); err != nil {
		t.Fatalf("next step's code: %v", err)
	}
	if err := login(next); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("next step's code replayed: %v", err)
	}
	clk.Add(60 * time.Second)
	if err := login(gen(clk.Now())); err != nil {
		t.Fatalf("a later code: %v", err)
	}
	// Without requireCode (dev) the code is not needed.
	if _, err := s.Login(ctx, "alice", "alice's password", "", "h", false); err != nil {
		t.Fatalf("dev login: %v", err)
	}
	// A new secret replaces the old one.
	enr, err := s.ResetTOTP("alice")
	if err != nil || enr.Secret == secret {
		t.Fatalf("ResetTOTP: %+v %v", enr, err)
	}
	clk.Add(90 * time.Second)
	if err := login(gen(clk.Now())); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("old secret after reset: %v", err)
	}
	c, _ := totp.GenerateCode(enr.Secret, clk.Now())
	if err := login(c); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	// Codes are per user.
	b := mustAdd(t, s, "bob", Reader, "bob's password 1")
	cb, _ := totp.GenerateCode(b.TOTP.Secret, clk.Now())
	ca, _ := totp.GenerateCode(enr.Secret, clk.Now())
	if ca != cb {
		if _, err := s.Login(ctx, "bob", "bob's password 1", ca, "h", true); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("alice's code for bob: %v", err)
		}
	}
	if _, err := s.Login(ctx, "bob", "bob's password 1", cb, "h", true); err != nil {
		t.Fatalf("bob's own code: %v", err)
	}
}

func TestLockoutPerUser(t *testing.T) {
	clk := newClock()
	s, _ := openStore(t, Options{Now: clk.Now, MaxFailures: 3, Lockout: time.Minute})
	ctx := context.Background()
	mustAdd(t, s, "alice", Writer, "alice's password")
	mustAdd(t, s, "bob", Writer, "bob's password 1")
	// Each failure from a different address: only the user's count locks.
	for i, addr := range []string{"a1", "a2"} {
		if _, err := s.Login(ctx, "alice", "wrong", "", addr, false); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if _, err := s.Login(ctx, "alice", "wrong", "", "a3", false); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("third failure: %v, want ErrLockedOut", err)
	}
	if _, err := s.Login(ctx, "alice", "alice's password", "", "a4", false); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("right password while locked: %v", err)
	}
	// Other users from those addresses are fine.
	if _, err := s.Login(ctx, "bob", "bob's password 1", "", "a3", false); err != nil {
		t.Fatalf("another user: %v", err)
	}
	clk.Add(59 * time.Second)
	if _, err := s.Login(ctx, "alice", "alice's password", "", "a4", false); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("before the lockout ends: %v", err)
	}
	clk.Add(2 * time.Second)
	if _, err := s.Login(ctx, "alice", "alice's password", "", "a4", false); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
}

func TestLockoutPerAddress(t *testing.T) {
	clk := newClock()
	s, _ := openStore(t, Options{Now: clk.Now, MaxFailures: 3, Lockout: time.Minute})
	ctx := context.Background()
	for _, n := range []string{"u1", "u2", "u3", "u4"} {
		mustAdd(t, s, n, Reader, n+" password 123")
	}
	// Password spraying: one failure per user, all from one address.
	for i, u := range []string{"u1", "u2", "u3"} {
		_, err := s.Login(ctx, u, "wrong", "", "10.0.0.1", false)
		if want := map[bool]error{true: ErrLockedOut, false: ErrLoginFailed}[i == 2]; !errors.Is(err, want) {
			t.Fatalf("failure %d: %v, want %v", i+1, err, want)
		}
	}
	if _, err := s.Login(ctx, "u4", "u4 password 123", "", "10.0.0.1", false); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("right password from the locked address: %v", err)
	}
	if _, err := s.Login(ctx, "u4", "u4 password 123", "", "10.0.0.2", false); err != nil {
		t.Fatalf("from another address: %v", err)
	}
	if _, err := s.Login(ctx, "nobody", "x", "", "10.0.0.1", false); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("unknown user from the locked address: %v", err)
	}
}

func TestFailuresAreForgottenAndCleared(t *testing.T) {
	clk := newClock()
	s, _ := openStore(t, Options{Now: clk.Now, MaxFailures: 3, Lockout: time.Minute})
	ctx := context.Background()
	mustAdd(t, s, "alice", Writer, "alice's password")
	fail := func() error { _, err := s.Login(ctx, "alice", "wrong", "", "h", false); return err }
	// Two failures, then quiet longer than the lockout time: forgotten.
	fail()
	fail()
	clk.Add(61 * time.Second)
	if err := fail(); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("old failures still counted: %v", err)
	}
	// A success clears the user's count (not the address's: see
	// TestOwnLoginDoesNotResetAddressLockout), so from another address
	// alice has three tries again.
	if _, err := s.Login(ctx, "alice", "alice's password", "", "h", false); err != nil {
		t.Fatal(err)
	}
	fail2 := func() error { _, err := s.Login(ctx, "alice", "wrong", "", "h3", false); return err }
	fail2()
	if err := fail2(); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("failures before a success still counted: %v", err)
	}
	if err := fail2(); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("third failure in a row: %v", err)
	}
	// The failures of unknown users count too (no user enumeration).
	if _, err := s.Login(ctx, "ghost", "x", "", "h2", false); !errors.Is(err, ErrLoginFailed) {
		t.Fatal(err)
	}
}

func TestFailureDelay(t *testing.T) {
	const d = 40 * time.Millisecond
	s, _ := openStore(t, Options{FailureDelay: d, MaxFailures: 100})
	mustAdd(t, s, "alice", Writer, "alice's password")
	ctx := context.Background()
	timeFail := func(ctx context.Context) time.Duration {
		start := time.Now()
		if _, err := s.Login(ctx, "alice", "wrong", "", "h", false); !errors.Is(err, ErrLoginFailed) {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	if el := timeFail(ctx); el < d {
		t.Fatalf("first failure took %v, want at least %v", el, d)
	}
	if el := timeFail(ctx); el < 2*d {
		t.Fatalf("second failure took %v, want at least %v", el, 2*d)
	}
	// The delay ends early when the caller gives up.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	start := time.Now()
	s.Login(short, "alice", "wrong", "", "h", false)
	if el := time.Since(start); el > 2*d { // the full delay would be 3d
		t.Fatalf("a cancelled login waited %v", el)
	}
	// Successes are not delayed.
	start = time.Now()
	if _, err := s.Login(ctx, "alice", "alice's password", "", "h", false); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*d {
		t.Fatalf("a success took %v", el)
	}
}

// TestPasswordChecksAreBounded: every Argon2id computation (logins,
// password changes, new hashes) holds one of MaxConcurrentChecks slots; a
// login that cannot get one before its context ends gets ErrBusy.
func TestPasswordChecksAreBounded(t *testing.T) {
	s, _ := openStore(t, Options{MaxConcurrentChecks: 3})
	if cap(s.sem) != 3 {
		t.Fatalf("%d slots, want 3", cap(s.sem))
	}
	if d, _ := openStore(t, Options{}); cap(d.sem) != 2 {
		t.Fatalf("default slots %d, want 2", cap(d.sem))
	}
	mustAdd(t, s, "alice", Writer, "alice's password")
	for range 3 {
		s.sem <- struct{}{} // every slot taken
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := s.Login(ctx, "alice", "alice's password", "", "h", false)
	cancel()
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("login with no slot free: %v, want ErrBusy", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = s.ChangePassword(ctx, "alice", "alice's password", "a new password", "h")
	cancel()
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("password change with no slot free: %v, want ErrBusy", err)
	}
	// Waiting calls proceed as slots free up, never more than the bound.
	var done atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Login(context.Background(), "alice", "alice's password", "", "h", false); err != nil {
				t.Error(err)
			}
			done.Add(1)
		}()
	}
	added := make(chan error, 1)
	go func() { _, err := s.Add("bob", Reader, "bob's password 1"); added <- err }()
	time.Sleep(100 * time.Millisecond)
	if n := done.Load(); n != 0 {
		t.Fatalf("%d logins ran with every slot taken", n)
	}
	select {
	case err := <-added:
		t.Fatalf("a password was hashed with every slot taken (%v)", err)
	default:
	}
	<-s.sem // one slot: everything completes, one at a time
	wg.Wait()
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	if len(s.sem) != 2 {
		t.Fatalf("%d slots held after the calls finished, want the 2 the test holds", len(s.sem))
	}
}

func TestLastAdmin(t *testing.T) {
	s, _ := openStore(t, Options{})
	mustAdd(t, s, "root", Admin, "root password 1")
	mustAdd(t, s, "w", Writer, "writer password")
	check := func(what string, err error, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
	}
	check("delete", s.Delete("root"), ErrLastAdmin)
	check("disable", s.SetEnabled("root", false), ErrLastAdmin)
	check("demote", s.SetRole("root", Writer), ErrLastAdmin)
	if u, _ := s.Get("root"); u.Role != Admin || !u.Enabled {
		t.Fatalf("last admin changed: %+v", u)
	}
	// A disabled admin does not count as another admin.
	mustAdd(t, s, "a2", Admin, "admin2 password")
	check("disable a2", s.SetEnabled("a2", false), nil)
	check("delete with only a disabled other admin", s.Delete("root"), ErrLastAdmin)
	check("demote with only a disabled other admin", s.SetRole("root", Reader), ErrLastAdmin)
	// A disabled admin may be deleted or demoted.
	check("demote the disabled admin", s.SetRole("a2", Reader), nil)
	check("promote", s.SetRole("a2", Admin), nil)
	check("enable a2", s.SetEnabled("a2", true), nil)
	check("demote root with a2 enabled", s.SetRole("root", Writer), nil)
	check("delete a2, now the last", s.Delete("a2"), ErrLastAdmin)
	check("delete root (a writer now)", s.Delete("root"), nil)
	check("delete unknown", s.Delete("root"), ErrNoUser)
	check("role of unknown", s.SetRole("nobody", Reader), ErrNoUser)
	check("bad role", s.SetRole("w", "boss"), ErrInvalid)
	check("negative quota", s.SetQuota("w", -1), ErrInvalid)
	check("quota", s.SetQuota("w", 5), nil)
	if u, _ := s.Get("w"); u.Quota != 5 {
		t.Fatalf("quota %d", u.Quota)
	}
}

func TestPasswordChanges(t *testing.T) {
	s, _ := openStore(t, Options{})
	ctx := context.Background()
	a := mustAdd(t, s, "alice", Writer, "")
	if !a.User.MustChange {
		t.Fatal("one-time password without must_change")
	}
	if _, err := s.ChangePassword(ctx, "alice", "wrong", "a brand new password", "h"); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("wrong old password: %v", err)
	}
	if _, err := s.ChangePassword(ctx, "alice", a.Password, "short", "h"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("short new password: %v", err)
	}
	if _, err := s.ChangePassword(ctx, "alice", a.Password, a.Password, "h"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("same password: %v", err)
	}
	if _, err := s.ChangePassword(ctx, "nobody", "x", "a brand new password", "h"); !errors.Is(err, ErrNoUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := s.ChangePassword(ctx, "alice", a.Password, "a brand new password", "h"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Get("alice"); u.MustChange {
		t.Fatal("must_change still set")
	}
	if _, err := s.Login(ctx, "alice", a.Password, "", "h", false); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("old password still works: %v", err)
	}
	pw, err := s.ResetPassword("alice", "")
	if err != nil || len(pw) != 20 {
		t.Fatalf("ResetPassword: %q %v", pw, err)
	}
	if u, _ := s.Get("alice"); !u.MustChange {
		t.Fatal("reset without must_change")
	}
	if _, err := s.ResetPassword("alice", "short"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("reset to a short password: %v", err)
	}
	if _, err := s.ResetPassword("nobody", ""); !errors.Is(err, ErrNoUser) {
		t.Fatalf("reset of an unknown user: %v", err)
	}
	if u, err := s.Login(ctx, "alice", pw, "", "h", false); err != nil || !u.MustChange {
		t.Fatalf("login with the reset password: %+v %v", u, err)
	}
	if g := GeneratePassword(); len(g) != 20 || strings.ContainsAny(g, "0O1lI") || g == GeneratePassword() {
		t.Fatalf("GeneratePassword %q", g)
	}
}

// TestConcurrentGuessesRespectLockout: the lockout is checked before the
// password check and counted after it (Login: lockedUntil, then checkHash,
// then failed), so guesses started together all get their password check,
// however many there are: with max failures 3, 20 concurrent wrong
// guesses are 20 real guesses, and a right one among them logs in although
// the account is locked by then.
func TestConcurrentGuessesRespectLockout(t *testing.T) {
	s, _ := openStore(t, Options{MaxFailures: 3, Lockout: time.Minute, MaxConcurrentChecks: 1})
	mustAdd(t, s, "alice", Writer, "alice's password")
	var checked atomic.Int32
	var wg sync.WaitGroup
	s.sem <- struct{}{} // hold the only slot so the guesses queue up
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Login(context.Background(), "alice", "wrong", "", "h", false)
			if errors.Is(err, ErrLoginFailed) {
				checked.Add(1) // only a real password check answers this
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	<-s.sem
	wg.Wait()
	if n := checked.Load(); n > 3 {
		fixedBug(t, "concurrent logins are not bounded by the lockout (accounts.go Login)")
		t.Fatalf("%d guesses were checked; the lockout allows 3", n)
	}
}

// TestOwnLoginDoesNotResetAddressLockout: a successful login clears the
// failure count of the source address as well as the user's (Login, the
// delete of "addr:"+source), so anyone with an account can spray guesses
// over many users from one address without ever tripping the per-address
// lockout, by logging into their own account between guesses.
func TestOwnLoginDoesNotResetAddressLockout(t *testing.T) {
	s, _ := openStore(t, Options{MaxFailures: 3, Lockout: time.Minute})
	ctx := context.Background()
	mustAdd(t, s, "mallory", Reader, "mallory's password")
	for _, n := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
		mustAdd(t, s, n, Reader, n+" password 123")
	}
	locked := false
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
		_, err := s.Login(ctx, u, "guess", "", "10.0.0.9", false)
		if errors.Is(err, ErrLockedOut) {
			locked = true
			break
		}
		s.Login(ctx, "mallory", "mallory's password", "", "10.0.0.9", false)
	}
	if !locked {
		fixedBug(t, "a successful login resets the address's failure count (accounts.go Login)")
		t.Fatal("6 failed guesses from one address, one per user, never locked the address out")
	}
}

func TestPasswdGuessesCountAndEpochs(t *testing.T) {
	s, _ := openStore(t, Options{MaxFailures: 3, FailureDelay: -1})
	ctx := context.Background()
	mustAdd(t, s, "alice", Writer, "alice's password")
	before, _ := s.Get("alice")
	for range 2 {
		if _, err := s.ChangePassword(ctx, "alice", "wrong guess", "a new password", "h"); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("wrong old password: %v", err)
		}
	}
	if _, err := s.ChangePassword(ctx, "alice", "wrong guess", "a new password", "h"); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("third wrong guess through passwd: %v", err)
	}
	if _, err := s.ChangePassword(ctx, "alice", "alice's password", "a new password", "h2"); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("passwd while the user is locked out: %v", err)
	}
	// A new account of a deleted one's name has another epoch.
	s2, _ := openStore(t, Options{})
	mustAdd(t, s2, "bob", Admin, "bob's password")
	mustAdd(t, s2, "carol", Writer, "carol's password")
	c1, _ := s2.Get("carol")
	if err := s2.Delete("carol"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s2, "carol", Admin, "carol's new one")
	c2, _ := s2.Get("carol")
	if c1.Epoch == c2.Epoch || before.Epoch == 0 {
		t.Fatalf("epochs: %d %d %d", c1.Epoch, c2.Epoch, before.Epoch)
	}
	if _, err := s2.ResetTOTP("carol"); err != nil {
		t.Fatal(err)
	}
	if c3, _ := s2.Get("carol"); c3.Epoch == c2.Epoch {
		t.Fatal("reset-2fa kept the epoch")
	}
}

func TestInvalidLoginNamesAreNotKept(t *testing.T) {
	s, _ := openStore(t, Options{FailureDelay: -1, MaxFailures: 1 << 20})
	huge := strings.Repeat("x", 1<<20)
	for i := range 20 {
		s.Login(context.Background(), huge+string(rune('a'+i)), "pw", "", "h", false)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.fails {
		if len(k) > 64 {
			t.Fatalf("failure map keeps a %d-byte key", len(k))
		}
	}
}

// TestDisableEndsSessions: a disabled account's epoch changes, so the
// sessions it had stay ended when it is enabled again.
func TestDisableEndsSessions(t *testing.T) {
	s, _ := openStore(t, Options{})
	if _, err := s.Add("rita", Reader, "a long password"); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Get("rita")
	if err := s.SetEnabled("rita", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEnabled("rita", true); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Get("rita")
	if !after.Enabled || after.Epoch == before.Epoch {
		t.Fatalf("after disable and enable: enabled %v, epoch unchanged %v", after.Enabled, after.Epoch == before.Epoch)
	}
	if err := s.SetEnabled("rita", true); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Get("rita"); again.Epoch != after.Epoch {
		t.Fatal("enabling an enabled account changed its epoch")
	}
}
