// Package accounts keeps a node's user accounts: roles, Argon2id password
// hashes, TOTP second factors, and the delays and lockouts that slow down
// password guessing. Accounts live in one JSON file (mode 0600) in the data
// directory, rewritten atomically on every change.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/pyvnode/pyvnode/internal/fsutil"
	"golang.org/x/crypto/argon2"
)

// Role orders what a user may do: a reader reads what needs a login, a
// writer also appends records and stores files, an admin also administers
// the node. An authority (the electoral authority of the vote application)
// may do what a writer does and also make ballots, register voters and
// withdraw registrations; nobody else may, not even an admin, so running a
// node and running an election stay separate duties.
type Role string

// Roles, weakest first.
const (
	Reader    Role = "reader"
	Writer    Role = "writer"
	Authority Role = "authority"
	Admin     Role = "admin"
)

func (r Role) rank() int {
	switch r {
	case Reader:
		return 1
	case Writer, Authority:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Allows reports whether a user of role r may do what needs role need.
func (r Role) Allows(need Role) bool {
	if need == Authority {
		return r == Authority
	}
	return r.rank() >= need.rank()
}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.rank() == 0 {
		return "", fmt.Errorf("%w: role %q (use reader, writer, authority or admin)", ErrInvalid, s)
	}
	return r, nil
}

// Errors callers branch on.
var (
	ErrInvalid        = errors.New("invalid account data")
	ErrExists         = errors.New("user already exists")
	ErrNoUser         = errors.New("no such user")
	ErrLoginFailed    = errors.New("wrong user name, password or one-time code")
	ErrCodeRequired   = errors.New("a one-time code (TOTP) is required")
	ErrLockedOut      = errors.New("too many failed logins; try again later")
	ErrWeakPassword   = errors.New("password too short")
	ErrLastAdmin      = errors.New("the last enabled admin cannot be removed, disabled or demoted")
	ErrBusy           = errors.New("too many logins in progress")
	ErrPasswordChange = errors.New("password change required")
)

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 10

// DefaultQuota is a user's file quota unless set otherwise: 1 GiB.
const DefaultQuota = 1 << 30

// User is one account. Hash and TOTP are secrets and never leave the node.
type User struct {
	Name       string `json:"name"`
	Role       Role   `json:"role"`
	Hash       string `json:"hash"`
	TOTP       string `json:"totp,omitempty"` // base32 secret
	Enabled    bool   `json:"enabled"`
	MustChange bool   `json:"must_change,omitempty"`
	Quota      int64  `json:"quota"`
	// Epoch changes whenever the account's credentials change (password,
	// second factor) and differs between a deleted account and a new one
	// of the same name: sessions opened before no longer act for it.
	Epoch   uint64    `json:"epoch"`
	Created time.Time `json:"created"`
}

// Public is what may be shown about a user.
type Public struct {
	Name       string    `json:"name" cbor:"name"`
	Role       Role      `json:"role" cbor:"role"`
	Enabled    bool      `json:"enabled" cbor:"enabled"`
	TOTP       bool      `json:"totp" cbor:"totp"`
	MustChange bool      `json:"must_change" cbor:"must_change"`
	Epoch      uint64    `json:"-" cbor:"-"`
	Quota      int64     `json:"quota" cbor:"quota"`
	Created    time.Time `json:"created" cbor:"created"`
}

func (u *User) public() Public {
	return Public{Name: u.Name, Role: u.Role, Enabled: u.Enabled, TOTP: u.TOTP != "", MustChange: u.MustChange, Quota: u.Quota, Created: u.Created, Epoch: u.Epoch}
}

// Params are the Argon2id cost settings. The defaults follow OWASP's
// recommendation (19 MiB, 2 passes, 1 lane).
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultParams is the cost new hashes get.
var DefaultParams = Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

// Options configure a Store. Zero values mean defaults.
type Options struct {
	// Issuer names the node in authenticator apps (otpauth issuer).
	Issuer string
	Params Params
	// MaxConcurrentChecks bounds password hashes computed at once, so a
	// login flood cannot exhaust memory. Default 2.
	MaxConcurrentChecks int
	// MaxFailures before a lockout, and how long it lasts. Defaults 5 and
	// 5 minutes; failures older than the lockout time are forgotten.
	MaxFailures int
	Lockout     time.Duration
	// FailureDelay is added to each failed login, times the number of
	// recent failures, up to 4 s. Default 500 ms.
	FailureDelay time.Duration
	// Now is the clock; tests set it.
	Now func() time.Time
}

// Store holds the accounts of one node.
type Store struct {
	path string
	opts Options
	sem  chan struct{}

	mu    sync.Mutex
	users map[string]*User
	// failures by "user:<name>" and "addr:<ip>"
	fails    map[string]*failures
	lastCode map[string]int64 // last TOTP time step used per user
}

type failures struct {
	count  int
	last   time.Time
	locked time.Time // locked until
}

type fileFormat struct {
	Users []*User `json:"users"`
}

// Open reads the accounts file at path (it need not exist yet).
func Open(path string, opts Options) (*Store, error) {
	if opts.Params.MemoryKiB == 0 {
		opts.Params = DefaultParams
	}
	if opts.MaxConcurrentChecks <= 0 {
		opts.MaxConcurrentChecks = 2
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 5
	}
	if opts.Lockout <= 0 {
		opts.Lockout = 5 * time.Minute
	}
	if opts.FailureDelay == 0 {
		opts.FailureDelay = 500 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Issuer == "" {
		opts.Issuer = "pyvnode"
	}
	s := &Store{
		path: path, opts: opts, sem: make(chan struct{}, opts.MaxConcurrentChecks),
		users: map[string]*User{}, fails: map[string]*failures{}, lastCode: map[string]int64{},
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read accounts %s: %w", path, err)
	}
	for _, u := range f.Users {
		if err := CheckName(u.Name); err != nil {
			return nil, fmt.Errorf("read accounts %s: %w", path, err)
		}
		if _, err := ParseRole(string(u.Role)); err != nil {
			return nil, fmt.Errorf("read accounts %s: user %s: %w", path, u.Name, err)
		}
		s.users[u.Name] = u
	}
	return s, nil
}

// CheckName checks a user name: 1 to 32 of a-z 0-9 . _ - starting with a
// letter. (Record authors allow more; user names are kept simple.)
func CheckName(n string) error {
	if len(n) == 0 || len(n) > 32 {
		return fmt.Errorf("%w: user name must be 1 to 32 characters", ErrInvalid)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("%w: user name %q: use a-z 0-9 . _ - and start with a letter", ErrInvalid, n)
		}
	}
	return nil
}

// save writes the accounts atomically: temporary file, fsync, rename,
// fsync of the directory. Called with s.mu held.
func (s *Store) save() error {
	f := fileFormat{}
	for _, u := range s.users {
		f.Users = append(f.Users, u)
	}
	sort.Slice(f.Users, func(i, j int) bool { return f.Users[i].Name < f.Users[j].Name })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(s.path, append(b, '\n'), 0o600)
}

// Enrollment is what a new second factor gives its user: the otpauth URI
// an authenticator app reads (usually as a QR code).
type Enrollment struct {
	URI    string `json:"uri" cbor:"uri"`
	Secret string `json:"secret" cbor:"secret"`
}

// Added is the result of adding a user: the one-time password to hand over
// (when the node generated it) and the TOTP enrolment.
type Added struct {
	User     Public      `json:"user" cbor:"user"`
	Password string      `json:"password,omitempty" cbor:"password,omitempty"`
	TOTP     *Enrollment `json:"totp,omitempty" cbor:"totp,omitempty"`
}

// Add creates a user. An empty password makes the node generate a one-time
// password the user must change at first login.
func (s *Store) Add(name string, role Role, password string) (*Added, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	mustChange := false
	if password == "" {
		password = GeneratePassword()
		mustChange = true
	}
	if len(password) < MinPasswordLen {
		return nil, fmt.Errorf("%w: at least %d characters", ErrWeakPassword, MinPasswordLen)
	}
	hash, err := s.hash(password)
	if err != nil {
		return nil, err
	}
	enr, err := s.newTOTP(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrExists, name)
	}
	u := &User{Name: name, Role: role, Hash: hash, TOTP: enr.Secret, Enabled: true,
		MustChange: mustChange, Quota: DefaultQuota, Created: s.opts.Now().UTC().Truncate(time.Second),
		Epoch: newEpoch()}
	s.users[name] = u
	if err := s.save(); err != nil {
		delete(s.users, name)
		return nil, err
	}
	out := &Added{User: u.public(), TOTP: enr}
	if mustChange {
		out.Password = password
	}
	return out, nil
}

func (s *Store) newTOTP(name string) (*Enrollment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.Issuer, AccountName: name})
	if err != nil {
		return nil, err
	}
	return &Enrollment{URI: key.URL(), Secret: key.Secret()}, nil
}

// GeneratePassword makes a random 20-character password from an alphabet
// without look-alike characters.
func GeneratePassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	var b strings.Builder
	for range 20 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err)
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	return b.String()
}

// Get returns a user's public data.
func (s *Store) Get(name string) (Public, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return Public{}, fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	return u.public(), nil
}

// List returns every user, by name.
func (s *Store) List() []Public {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Public, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u.public())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// update changes one user under the lock and saves, restoring the old
// state if saving fails.
func (s *Store) update(name string, f func(u *User) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	old := *u
	if err := f(u); err != nil {
		*u = old
		return err
	}
	if err := s.save(); err != nil {
		*u = old
		return err
	}
	return nil
}

// enabledAdmins counts enabled admins other than name. Called with s.mu.
func (s *Store) otherAdmins(name string) int {
	n := 0
	for _, u := range s.users {
		if u.Name != name && u.Role == Admin && u.Enabled {
			n++
		}
	}
	return n
}

// Delete removes a user. The last enabled admin cannot be removed.
func (s *Store) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	if u.Role == Admin && u.Enabled && s.otherAdmins(name) == 0 {
		return ErrLastAdmin
	}
	delete(s.users, name)
	if err := s.save(); err != nil {
		s.users[name] = u
		return err
	}
	return nil
}

// SetEnabled enables or disables a user. Disabling ends the account's
// sessions for good: enabling it again does not bring them back.
func (s *Store) SetEnabled(name string, on bool) error {
	return s.update(name, func(u *User) error {
		if !on && u.Role == Admin && s.otherAdmins(name) == 0 {
			return ErrLastAdmin
		}
		if !on && u.Enabled {
			u.Epoch = newEpoch()
		}
		u.Enabled = on
		return nil
	})
}

// SetRole changes a user's role.
func (s *Store) SetRole(name string, role Role) error {
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	return s.update(name, func(u *User) error {
		if u.Role == Admin && role != Admin && u.Enabled && s.otherAdmins(name) == 0 {
			return ErrLastAdmin
		}
		u.Role = role
		return nil
	})
}

// SetQuota changes a user's file quota in bytes.
func (s *Store) SetQuota(name string, quota int64) error {
	if quota < 0 {
		return fmt.Errorf("%w: negative quota", ErrInvalid)
	}
	return s.update(name, func(u *User) error { u.Quota = quota; return nil })
}

// ResetTOTP gives a user a new second factor, returning its enrolment.
func (s *Store) ResetTOTP(name string) (*Enrollment, error) {
	enr, err := s.newTOTP(name)
	if err != nil {
		return nil, err
	}
	err = s.update(name, func(u *User) error { u.TOTP, u.Epoch = enr.Secret, newEpoch(); return nil })
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	delete(s.lastCode, name)
	s.mu.Unlock()
	return enr, nil
}

// ResetPassword sets a new one-time password (generated when empty) that
// the user must change at the next login.
func (s *Store) ResetPassword(name, password string) (string, error) {
	if password == "" {
		password = GeneratePassword()
	}
	if len(password) < MinPasswordLen {
		return "", fmt.Errorf("%w: at least %d characters", ErrWeakPassword, MinPasswordLen)
	}
	hash, err := s.hash(password)
	if err != nil {
		return "", err
	}
	err = s.update(name, func(u *User) error { u.Hash, u.MustChange, u.Epoch = hash, true, newEpoch(); return nil })
	return password, err
}

// ChangePassword replaces a user's password after checking the old one.
// The check counts as a login attempt from source (so a session cannot
// guess its account's password without limit), and the change applies only
// if the password was not changed meanwhile. It returns the account's new
// epoch.
func (s *Store) ChangePassword(ctx context.Context, name, old, new, source string) (uint64, error) {
	if len(new) < MinPasswordLen {
		return 0, fmt.Errorf("%w: at least %d characters", ErrWeakPassword, MinPasswordLen)
	}
	if old == new {
		return 0, fmt.Errorf("%w: the new password must differ from the old one", ErrWeakPassword)
	}
	if err := s.charge(name, source); err != nil {
		return 0, err
	}
	s.mu.Lock()
	u, ok := s.users[name]
	var hash string
	if ok {
		hash = u.Hash
	}
	s.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	good, err := s.checkHash(ctx, old, hash)
	if err != nil {
		s.refund(name, source, false)
		return 0, err
	}
	if !good {
		return 0, s.failed(ctx, name, source)
	}
	s.refund(name, source, false)
	nh, err := s.hash(new)
	if err != nil {
		return 0, err
	}
	epoch := newEpoch()
	err = s.update(name, func(u *User) error {
		if u.Hash != hash {
			return fmt.Errorf("%w: the password was changed meanwhile", ErrLoginFailed)
		}
		u.Hash, u.MustChange, u.Epoch = nh, false, epoch
		return nil
	})
	return epoch, err
}

// newEpoch is a random 64-bit value.
func newEpoch() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return binary.BigEndian.Uint64(b[:])
}

// Login checks a user's password and, when requireCode is set, TOTP code.
// Every attempt counts against the user and the source address before the
// password is checked, so concurrent guesses cannot outrun the lockout; a
// successful login gives back its own attempt (and clears the user's
// count, not the address's). After MaxFailures attempts either is locked
// out for the lockout time. Failures are also delayed.
func (s *Store) Login(ctx context.Context, name, password, code, source string, requireCode bool) (Public, error) {
	if CheckName(name) != nil {
		// No such account can exist: count it against the address only,
		// without keeping the (possibly huge) name.
		name = "\x00invalid"
	}
	if err := s.charge(name, source); err != nil {
		return Public{}, err
	}
	s.mu.Lock()
	u, ok := s.users[name]
	var snap User
	if ok {
		snap = *u
	}
	s.mu.Unlock()
	hash := snap.Hash
	if !ok {
		hash = dummyHash // spend the same time on unknown users
	}
	good, err := s.checkHash(ctx, password, hash)
	if err != nil {
		s.refund(name, source, false) // busy: no guess was made
		return Public{}, err
	}
	if !ok || !good || !snap.Enabled {
		return Public{}, s.failed(ctx, name, source)
	}
	if requireCode {
		if code == "" {
			// The password was right: this attempt was no guess. Give it
			// back without clearing earlier failures.
			s.refund(name, source, false)
			return Public{}, ErrCodeRequired
		}
		if !s.checkCode(name, snap.TOTP, code) {
			return Public{}, s.failed(ctx, name, source)
		}
	}
	s.refund(name, source, true)
	return snap.public(), nil
}

// checkCode validates a TOTP code, refusing one already used.
func (s *Store) checkCode(name, secret, code string) bool {
	if secret == "" {
		return false
	}
	now := s.opts.Now()
	period := int64(30)
	for _, skew := range []int64{0, -1, 1} {
		t := now.Add(time.Duration(skew*period) * time.Second)
		ok, err := totp.ValidateCustom(code, secret, t, totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil || !ok {
			continue
		}
		step := t.Unix() / period
		s.mu.Lock()
		defer s.mu.Unlock()
		if last, seen := s.lastCode[name]; seen && step <= last {
			return false // replayed
		}
		s.lastCode[name] = step
		return true
	}
	return false
}

func failKeys(name, source string) [2]string { return [2]string{"user:" + name, "addr:" + source} }

// charge counts a login attempt, refusing it when the user or the address
// is locked out.
func (s *Store) charge(name, source string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	keys := failKeys(name, source)
	for _, k := range keys {
		if f := s.fails[k]; f != nil && now.Before(f.locked) {
			return fmt.Errorf("%w (until %s)", ErrLockedOut, f.locked.UTC().Format(time.RFC3339))
		}
	}
	if len(s.fails) > 10_000 {
		s.pruneLocked(now)
	}
	for _, k := range keys {
		f := s.fails[k]
		if f == nil || now.Sub(f.last) > s.opts.Lockout {
			f = &failures{}
			s.fails[k] = f
		}
		f.count++
		f.last = now
		if f.count >= s.opts.MaxFailures {
			f.locked = now.Add(s.opts.Lockout)
		}
	}
	return nil
}

// refund takes back an attempt that was not a wrong guess. After a
// successful login (clearUser) the user also starts afresh; the address
// only ever loses this one attempt, so logging in to one's own account
// does not wipe out guesses made at others from the same address.
func (s *Store) refund(name, source string, clearUser bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := failKeys(name, source)
	if clearUser {
		delete(s.fails, keys[0])
	}
	for i, k := range keys {
		if i == 0 && clearUser {
			continue
		}
		if f := s.fails[k]; f != nil {
			if f.count--; f.count < s.opts.MaxFailures {
				f.locked = time.Time{}
			}
			if f.count <= 0 {
				delete(s.fails, k)
			}
		}
	}
}

// pruneLocked drops entries that are neither recent nor locked. Called with
// s.mu held.
func (s *Store) pruneLocked(now time.Time) {
	for k, f := range s.fails {
		if now.Sub(f.last) > s.opts.Lockout && !now.Before(f.locked) {
			delete(s.fails, k)
		}
	}
}

// failed waits the delay for a counted, failed attempt and returns the
// error to show.
func (s *Store) failed(ctx context.Context, name, source string) error {
	s.mu.Lock()
	now := s.opts.Now()
	n := 0
	locked := false
	for _, k := range failKeys(name, source) {
		if f := s.fails[k]; f != nil {
			n = max(n, f.count)
			locked = locked || now.Before(f.locked)
		}
	}
	s.mu.Unlock()
	delay := min(time.Duration(n)*s.opts.FailureDelay, 4*time.Second)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if locked {
		return ErrLockedOut
	}
	return ErrLoginFailed
}

// HasUsers reports whether any account exists.
func (s *Store) HasUsers() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users) > 0
}

// PHC-style encoding: $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
// with unpadded standard base64.
func (s *Store) hash(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	p := s.opts.Params
	sum := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum)), nil
}

// dummyHash has the default cost; checking against it takes as long as a
// real check.
var dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// checkHash compares a password with a PHC hash, holding one of the
// bounded password-check slots (waiting for one, or giving up with ErrBusy
// when ctx ends first).
func (s *Store) checkHash(ctx context.Context, password, encoded string) (bool, error) {
	var v int
	var p Params
	var saltB64, sumB64 string
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, fmt.Errorf("%w: password hash is not argon2id", ErrInvalid)
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, fmt.Errorf("%w: argon2 version %q", ErrInvalid, parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false, fmt.Errorf("%w: argon2 parameters %q", ErrInvalid, parts[3])
	}
	saltB64, sumB64 = parts[4], parts[5]
	salt, err1 := base64.RawStdEncoding.DecodeString(saltB64)
	want, err2 := base64.RawStdEncoding.DecodeString(sumB64)
	if err1 != nil || err2 != nil || len(want) == 0 || p.MemoryKiB > 1<<20 || p.Time > 16 {
		return false, fmt.Errorf("%w: malformed password hash", ErrInvalid)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ErrBusy
	}
	defer func() { <-s.sem }()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
