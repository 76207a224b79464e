// Package node composes a pyvnode node: it owns the data directory layout,
// first-start initialisation, and the start and orderly stop of every part
// (the chain today; the client protocol, replication and the web panel as
// they arrive).
package node

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/pyvnode/pyvnode/internal/fsutil"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol/accounts"
)

// DefaultDataDir is where a node keeps its state unless told otherwise.
const DefaultDataDir = "pyvnode-data"

// DefaultNetwork names the one-node network a fresh data directory starts.
const DefaultNetwork = "local"

// Paths inside a data directory (docs/FORMAT.md §12, docs/OPERATIONS.md).
func KeyPath(dir string) string           { return filepath.Join(dir, "node.key") }
func GenesisPath(dir string) string       { return filepath.Join(dir, "genesis.json") }
func ChainDir(dir string) string          { return filepath.Join(dir, "chain") }
func UsersPath(dir string) string         { return filepath.Join(dir, "users.json") }
func FilesDir(dir string) string          { return filepath.Join(dir, "files") }
func AdminPasswordPath(dir string) string { return filepath.Join(dir, "admin-password") }

func dataPath(dir, name string) string { return filepath.Join(dir, name) }

// InitOptions describe a new data directory.
type InitOptions struct {
	// Genesis to install. Nil means a one-node network named DefaultNetwork
	// with the default proof of work.
	Genesis *ledger.Genesis
	// Identity to install. Nil means generate one (or keep the existing key).
	Identity *ledger.Identity
}

// Initialized reports whether dir already holds a genesis.
func Initialized(dir string) bool {
	_, err := os.Stat(GenesisPath(dir))
	return err == nil
}

// Init creates a data directory: its identity key (kept if one exists) and
// its genesis. It refuses to replace an existing, different genesis.
func Init(dir string, opts InitOptions) (*ledger.Identity, *ledger.Genesis, bool, error) {
	g := opts.Genesis
	if g == nil {
		g = ledger.NewGenesis(DefaultNetwork)
	}
	if err := g.Validate(); err != nil {
		return nil, nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, false, fmt.Errorf("create data directory: %w", err)
	}
	var (
		id      *ledger.Identity
		created bool
		err     error
	)
	if opts.Identity != nil {
		id = opts.Identity
		if existing, lerr := ledger.LoadIdentity(KeyPath(dir)); lerr == nil {
			if existing.ID() != id.ID() {
				return nil, nil, false, fmt.Errorf("%s already holds a different node key", KeyPath(dir))
			}
		} else if errors.Is(lerr, fs.ErrNotExist) {
			if err := id.Save(KeyPath(dir)); err != nil {
				return nil, nil, false, err
			}
			created = true
		} else {
			return nil, nil, false, lerr
		}
	} else if id, created, err = ledger.LoadOrCreateIdentity(KeyPath(dir)); err != nil {
		return nil, nil, false, err
	}
	if old, err := ledger.LoadGenesis(GenesisPath(dir)); err == nil {
		if old.Hash() != g.Hash() {
			return nil, nil, false, fmt.Errorf("%s already holds the genesis of network %q; refusing to replace it", GenesisPath(dir), old.Network)
		}
		return id, old, created, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false, err
	}
	if err := g.Save(GenesisPath(dir)); err != nil {
		return nil, nil, false, err
	}
	return id, g, created, nil
}

// Data is an opened data directory.
type Data struct {
	Dir      string
	Identity *ledger.Identity
	Genesis  *ledger.Genesis
	Store    *ledger.Store
}

// OpenData opens an initialised data directory: key, genesis and chain.
func OpenData(dir string, log *slog.Logger) (*Data, error) {
	return openData(dir, log, false, false)
}

// OpenDataReadOnly opens a data directory to read its chain alone (see
// ledger.Options.ReadOnly): quicker to open, and nothing can be appended.
func OpenDataReadOnly(dir string, log *slog.Logger) (*Data, error) {
	return openData(dir, log, false, true)
}

// RepairData opens a data directory whose last segment is damaged, cutting
// the chain at the first damaged frame (see ledger.Options.RepairTail).
func RepairData(dir string, log *slog.Logger) (*Data, error) {
	return openData(dir, log, true, false)
}

func openData(dir string, log *slog.Logger, repair, readOnly bool) (*Data, error) {
	if !Initialized(dir) {
		return nil, fmt.Errorf("%s is not a pyvnode data directory (no genesis.json); run 'pyvnode init --data %s' or 'pyvnode serve --data %s' first", dir, dir, dir)
	}
	id, err := ledger.LoadIdentity(KeyPath(dir))
	if err != nil {
		return nil, err
	}
	g, err := ledger.LoadGenesis(GenesisPath(dir))
	if err != nil {
		return nil, err
	}
	st, err := ledger.Open(ledger.Options{Dir: ChainDir(dir), Genesis: g, Logger: log, RepairTail: repair, ReadOnly: readOnly})
	if err != nil {
		if strings.Contains(err.Error(), "directory lock") {
			return nil, fmt.Errorf("%s is in use by a running node; stop it first: %w", dir, err)
		}
		return nil, err
	}
	return &Data{Dir: dir, Identity: id, Genesis: g, Store: st}, nil
}

// Close closes the chain.
func (d *Data) Close() error { return d.Store.Close() }

// OpenAccounts opens the data directory's accounts.
func OpenAccounts(dir string, g *ledger.Genesis) (*accounts.Store, error) {
	return accounts.Open(UsersPath(dir), accounts.Options{Issuer: "pyvnode " + g.Network})
}

// EnsureAdmin creates the "admin" account when the node has no accounts
// yet, with a one-time password, and writes the password and the TOTP
// enrolment to a 0600 file in the data directory. It returns nil when
// accounts already exist.
func EnsureAdmin(dir string, g *ledger.Genesis) (*accounts.Added, error) {
	st, err := OpenAccounts(dir, g)
	if err != nil {
		return nil, err
	}
	if st.HasUsers() {
		return nil, nil
	}
	added, err := st.Add("admin", accounts.Admin, "")
	if err != nil {
		return nil, err
	}
	text := fmt.Sprintf("user: admin\npassword: %s\ntotp: %s\n\n"+
		"This password works once: log in and choose a new one with 'passwd'.\n"+
		"Add the TOTP secret to an authenticator app. Then delete this file.\n",
		added.Password, added.TOTP.URI)
	if err := fsutil.WriteFileAtomic(AdminPasswordPath(dir), []byte(text), 0o600); err != nil {
		return nil, err
	}
	return added, nil
}
