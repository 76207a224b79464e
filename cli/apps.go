package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/protocol"
	ucli "github.com/urfave/cli/v2"
)

// The application commands: vote, tally, charity, resource, uid and
// verify-receipt. Submissions go to a node over the client protocol (the
// node checks the rules); views are computed by the node, or here from a
// stopped node's data directory (--data) or from an export (--export).

// viewFlags choose where a view is computed.
func viewFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "data", Aliases: []string{"d"}, Usage: "compute from this (stopped) node's data directory instead of asking a node"},
		&ucli.StringFlag{Name: "export", Usage: "compute from a 'pyvnode chain export' file (every record's id and signature is checked)"},
	}
}

// localIndex builds an index from --data or --export; nil when neither is
// given (ask the node).
func localIndex(c *ucli.Context) (*apps.Index, error) {
	dataDir, export := c.String("data"), c.String("export")
	switch {
	case dataDir != "" && export != "":
		return nil, usagef("give --data or --export, not both")
	case dataDir != "":
		d, err := node.OpenDataReadOnly(dataDir, slog.Default())
		if err != nil {
			return nil, err
		}
		defer d.Close()
		x := apps.NewIndex(d.Genesis.Network)
		if err := x.CatchUp(c.Context, d.Store); err != nil {
			return nil, err
		}
		return x, nil
	case export != "":
		return indexFromExport(c.Context, export)
	}
	return nil, nil
}

// indexFromExport reads an export, checks every record (id, decoded fields,
// proof of work, originator rules, signature) on every core, and indexes
// the application records.
func indexFromExport(ctx context.Context, path string) (*apps.Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	er, err := ledger.NewExportReader(f)
	if err != nil {
		return nil, err
	}
	if er.Header.From != 0 {
		return nil, fmt.Errorf("%s starts at height %d: a view needs every record, so export from height 0", path, er.Header.From)
	}
	x := apps.NewIndex(er.Header.Network)
	v := &ledger.Validator{Genesis: er.Header.Genesis}
	type item struct {
		line int
		rec  *ledger.ExportRecord
	}
	work := make(chan item, 1024)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				rec, err := it.rec.SignedRecord()
				if err == nil {
					err = v.Check(rec)
				}
				if err != nil {
					fail(fmt.Errorf("%s line %d: %w", path, it.line, err))
					continue
				}
				x.Add(rec.ID, rec.Kind, rec.Created, rec.Payload)
			}
		}()
	}
	var readErr error
	for {
		if ctx.Err() != nil {
			readErr = ctx.Err()
			break
		}
		r, err := er.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		work <- item{er.Line(), r}
	}
	close(work)
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return x, nil
}

// view computes a view locally or asks the node, then prints it.
func view[T any](c *ucli.Context, cmd string, args any, local func(*apps.Index) (*T, error), show func(io.Writer, *T)) error {
	x, err := localIndex(c)
	if err != nil {
		return err
	}
	var out *T
	if x != nil {
		if out, err = local(x); err != nil {
			return err
		}
	} else {
		s, err := connect(c, false)
		if err != nil {
			return err
		}
		defer s.Close()
		out = new(T)
		if err := s.Call(c.Context, cmd, args, out); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return writeJSON(env(c).Stdout, out)
	}
	show(env(c).Stdout, out)
	return nil
}

func tallyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "tally",
		Usage:     "count a ballot and list every violation, from a node, a data directory or an export",
		ArgsUsage: "BALLOT",
		Description: "Any two sources holding the same records print the same bytes. The digest line is\n" +
			"SHA-256 over the ids of the ballot's records in canonical order: equal digests, equal inputs.",
		Flags: append(clientFlags(), viewFlags()...),
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			ballot := c.Args().First()
			return view(c, "vote.tally", map[string]string{"ballot": ballot},
				func(x *apps.Index) (*apps.Tally, error) { return x.Tally(ballot) }, apps.WriteTally)
		},
	}
}

// submitRecord puts an application record through a logged-in session.
func submitRecord(s *clientSession, kind string, payload map[string]any) (protocol.PutResult, error) {
	p, err := ledger.EncodePayload(payload)
	if err != nil {
		return protocol.PutResult{}, err
	}
	var r protocol.PutResult
	err = s.Call(s.c.Context, "put", map[string]any{"kind": kind, "payload": cbor.RawMessage(p)}, &r)
	return r, err
}

// putAndShow submits and prints the record id and height.
func putAndShow(s *clientSession, kind string, payload map[string]any) error {
	r, err := submitRecord(s, kind, payload)
	if err != nil {
		return err
	}
	return s.print(r, func(w io.Writer) { fmt.Fprintf(w, "%s %s at height %d\n", kind, r.ID, r.Height) })
}

// needString returns a required flag's value.
func needString(c *ucli.Context, name string) (string, error) {
	v := c.String(name)
	if v == "" {
		return "", usagef("%s needs --%s", c.Command.HelpName, name)
	}
	return v, nil
}

// parseWhen reads a time: RFC 3339, "now", or "+DURATION" from now.
func parseWhen(s string, now time.Time) (int64, error) {
	switch {
	case s == "now":
		return now.Unix(), nil
	case strings.HasPrefix(s, "+"):
		d, err := time.ParseDuration(s[1:])
		if err != nil {
			return 0, fmt.Errorf("%q: %v", s, err)
		}
		return now.Add(d).Unix(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, fmt.Errorf("%q: use RFC 3339 (2026-12-01T08:00:00Z), now, or +DURATION (+24h)", s)
	}
	return t.Unix(), nil
}

// fieldFlags parses repeated --field key=value into a payload.
func fieldFlags(c *ucli.Context, p map[string]any) error {
	for _, f := range c.StringSlice("field") {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return usagef("--field %q: use KEY=VALUE", f)
		}
		if _, taken := p[k]; taken {
			return usagef("--field %q: %s is set by its own flag", f, k)
		}
		p[k] = v
	}
	return nil
}

func voteCommand() *ucli.Command {
	voterFlags := []ucli.Flag{
		&ucli.StringFlag{Name: "ballot", Usage: "ballot id"},
		&ucli.StringFlag{Name: "voter", Usage: "voter id"},
		&ucli.StringFlag{Name: "eid", Usage: "the voter's electronic id (from the registration)"},
	}
	signFlags := []ucli.Flag{
		&ucli.StringFlag{Name: "key-file", Usage: "sign as the voter with this key (from 'vote keygen'); needed when the registration names a key"},
		&ucli.Uint64Flag{Name: "seq", Usage: "the voter's sequence number (default: the time in nanoseconds)"},
		&ucli.StringFlag{Name: "receipt", Usage: "write the receipt to this file (default receipt-<id>.json)"},
	}
	voterPayload := func(c *ucli.Context) (map[string]any, error) {
		p := map[string]any{}
		for _, f := range []string{"ballot", "voter", "eid"} {
			v, err := needString(c, f)
			if err != nil {
				return nil, err
			}
			p[f] = v
		}
		return p, nil
	}
	signed := func(s *clientSession, kind string, p map[string]any) error {
		if kf := s.c.String("key-file"); kf != "" {
			key, err := loadVoterKey(kf)
			if err != nil {
				return err
			}
			var hello protocol.HelloResult
			if err := s.Call(s.c.Context, "hello", nil, &hello); err != nil {
				return err
			}
			seq := s.c.Uint64("seq")
			if seq == 0 {
				seq = uint64(time.Now().UnixNano())
			}
			choice, _ := p["choice"].(string)
			msg := apps.VoterMessage(hello.Network, kind, p["ballot"].(string), p["voter"].(string), p["eid"].(string), choice, seq)
			p["seq"] = seq
			p["sig"] = ed25519.Sign(key, msg)
		}
		r, err := submitRecord(s, kind, p)
		if err != nil {
			return err
		}
		var rc apps.Receipt
		if err := s.Call(s.c.Context, "receipt", map[string]any{"id": r.ID}, &rc); err != nil {
			return fmt.Errorf("%s %s appended, but the receipt failed: %w", kind, r.ID, err)
		}
		path := s.c.String("receipt")
		if path == "" {
			path = "receipt-" + r.ID.String()[:16] + ".json"
		}
		if err := writeJSONFile(path, &rc); err != nil {
			return err
		}
		return s.print(&rc, func(w io.Writer) {
			fmt.Fprintf(w, "%s %s at height %d of node %s\nreceipt written to %s (check it with: pyvnode verify-receipt --server ANY-NODE %s)\n",
				kind, r.ID, r.Height, rc.Node.Short(), path, path)
		})
	}
	return &ucli.Command{
		Name:  "vote",
		Usage: "public voting: ballots, registrations, casts, tallies",
		Description: "Making ballots, registering voters and withdrawing registrations needs a user with the\n" +
			"authority role; casting and uncasting needs a writer. See docs/APPLICATIONS.md.",
		Flags: clientFlags(),
		Subcommands: []*ucli.Command{
			{Name: "ballot", Usage: "define a ballot (authority)", ArgsUsage: "BALLOT-ID",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "question", Usage: "the question"},
					&ucli.StringSliceFlag{Name: "choice", Usage: "a choice (repeat, 2 to 64)"},
					&ucli.StringFlag{Name: "opens", Value: "now", Usage: "when casting opens: RFC 3339, now or +DURATION"},
					&ucli.StringFlag{Name: "closes", Value: "+24h", Usage: "when casting closes: RFC 3339 or +DURATION"},
				},
				Action: clientAction(1, 1, true, func(s *clientSession) error {
					c := s.c
					q, err := needString(c, "question")
					if err != nil {
						return err
					}
					now := time.Now()
					opens, err := parseWhen(c.String("opens"), now)
					if err != nil {
						return usagef("--opens %v", err)
					}
					closes, err := parseWhen(c.String("closes"), now)
					if err != nil {
						return usagef("--closes %v", err)
					}
					choices := []any{}
					for _, ch := range c.StringSlice("choice") {
						choices = append(choices, ch)
					}
					return putAndShow(s, apps.KindBallot, map[string]any{"ballot": c.Args().First(), "question": q,
						"choices": choices, "opens": opens, "closes": closes})
				})},
			{Name: "register", Usage: "register a voter for a ballot; the node allocates the electronic id (authority)", ArgsUsage: "VOTER-ID",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "ballot", Usage: "ballot id"},
					&ucli.StringFlag{Name: "voter-key", Usage: "the voter's public key (hex, from 'vote keygen'): casts must then be signed by the voter"},
				},
				Action: clientAction(1, 1, true, func(s *clientSession) error {
					b, err := needString(s.c, "ballot")
					if err != nil {
						return err
					}
					p := map[string]any{"ballot": b, "voter": s.c.Args().First()}
					if k := s.c.String("voter-key"); k != "" {
						kb, err := hex.DecodeString(k)
						if err != nil || len(kb) != ed25519.PublicKeySize {
							return usagef("--voter-key: want %d bytes in hex", ed25519.PublicKeySize)
						}
						p["key"] = kb
					}
					r, err := submitRecord(s, apps.KindRegister, p)
					if err != nil {
						return err
					}
					var got protocol.RecordResult
					if err := s.Call(s.c.Context, "get", map[string]any{"id": r.ID}, &got); err != nil {
						return err
					}
					pm, err := ledger.DecodePayload(got.Payload)
					if err != nil {
						return err
					}
					out := map[string]any{"id": r.ID, "height": r.Height, "ballot": b, "voter": s.c.Args().First(), "eid": pm["eid"]}
					return s.print(out, func(w io.Writer) {
						fmt.Fprintf(w, "registered voter %s for ballot %s\neid     %s   (give this to the voter)\nrecord  %s at height %d\n",
							s.c.Args().First(), b, pm["eid"], r.ID, r.Height)
					})
				})},
			{Name: "cast", Usage: "cast (or replace) a voter's vote; writes a receipt", ArgsUsage: "CHOICE",
				Flags: append(append([]ucli.Flag{}, voterFlags...), signFlags...),
				Action: clientAction(1, 1, true, func(s *clientSession) error {
					p, err := voterPayload(s.c)
					if err != nil {
						return err
					}
					p["choice"] = s.c.Args().First()
					return signed(s, apps.KindCast, p)
				})},
			{Name: "uncast", Usage: "cancel a voter's counted vote; writes a receipt",
				Flags: append(append([]ucli.Flag{}, voterFlags...), signFlags...),
				Action: clientAction(0, 0, true, func(s *clientSession) error {
					p, err := voterPayload(s.c)
					if err != nil {
						return err
					}
					return signed(s, apps.KindUncast, p)
				})},
			{Name: "withdraw", Usage: "end a voter's registration (authority)",
				Flags: append(append([]ucli.Flag{}, voterFlags...), &ucli.StringFlag{Name: "reason", Usage: "why (public)"}),
				Action: clientAction(0, 0, true, func(s *clientSession) error {
					p, err := voterPayload(s.c)
					if err != nil {
						return err
					}
					if r := s.c.String("reason"); r != "" {
						p["reason"] = r
					}
					return putAndShow(s, apps.KindWithdraw, p)
				})},
			{Name: "ballots", Usage: "list the ballots",
				Action: clientAction(0, 0, false, func(s *clientSession) error {
					var r protocol.BallotsResult
					return s.call("vote.ballots", nil, &r, func(w io.Writer) {
						for _, b := range r.Ballots {
							fmt.Fprintf(w, "%-20s %s to %s  %6d records  %s\n", b.Ballot,
								time.Unix(b.Opens, 0).UTC().Format(time.RFC3339), time.Unix(b.Closes, 0).UTC().Format(time.RFC3339), b.Records, b.Question)
						}
					})
				})},
			{Name: "keygen", Usage: "make a voter key pair (the private half stays with the voter)",
				Flags: []ucli.Flag{&ucli.StringFlag{Name: "out", Value: "voter.key", Usage: "file for the private key (mode 0600; refuses to overwrite)"}},
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 0, 0); err != nil {
						return err
					}
					pub, priv, err := ed25519.GenerateKey(rand.Reader)
					if err != nil {
						return err
					}
					path := c.String("out")
					f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
					if err != nil {
						return err
					}
					if _, err := fmt.Fprintln(f, hex.EncodeToString(priv.Seed())); err != nil {
						f.Close()
						return err
					}
					if err := f.Close(); err != nil {
						return err
					}
					fmt.Fprintf(env(c).Stdout, "private key in %s\npublic key  %s   (give this to the authority: vote register --voter-key)\n", path, hex.EncodeToString(pub))
					return nil
				}},
		},
	}
}

func loadVoterKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	seed, err := hex.DecodeString(strings.TrimSpace(line))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: not a voter key (want a %d-byte seed in hex)", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func writeJSONFile(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeJSON(f, v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func charityCommand() *ucli.Command {
	money := func(c *ucli.Context, p map[string]any) error {
		a, err := needString(c, "amount")
		if err != nil {
			return err
		}
		m, err := apps.ParseMoney(a)
		if err != nil {
			return usagef("--amount: %v", err)
		}
		p["amount"] = m
		cur, err := needString(c, "currency")
		if err != nil {
			return err
		}
		p["currency"] = cur
		return fieldFlags(c, p)
	}
	moneyFlags := func(extra ...ucli.Flag) []ucli.Flag {
		return append([]ucli.Flag{
			&ucli.StringFlag{Name: "fund", Usage: "fund id"},
			&ucli.StringFlag{Name: "amount", Usage: "amount, e.g. 125.50 (kept as minor units: 12550)"},
			&ucli.StringFlag{Name: "currency", Usage: "currency code, e.g. EUR (must be the fund's)"},
			&ucli.StringSliceFlag{Name: "field", Usage: "any other field, KEY=VALUE (repeat): entity, notes, ..."},
		}, extra...)
	}
	return &ucli.Command{
		Name:  "charity",
		Usage: "charity transparency: funds, donations, disbursements, public reports",
		Description: "Amounts are integers in minor units on the chain; give them here as 125.50. Use\n" +
			"'pyvnode uid new' to put an id instead of private data (a donor's name) in a record.",
		Flags: clientFlags(),
		Subcommands: []*ucli.Command{
			{Name: "fund", Usage: "define a fund", ArgsUsage: "FUND-ID",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "name", Usage: "the fund's name"},
					&ucli.StringFlag{Name: "currency", Usage: "currency code, e.g. EUR"},
					&ucli.StringSliceFlag{Name: "field", Usage: "any other field, KEY=VALUE (repeat): purpose, operator, ..."},
				},
				Action: clientAction(1, 1, true, func(s *clientSession) error {
					p := map[string]any{"fund": s.c.Args().First()}
					for _, f := range []string{"name", "currency"} {
						v, err := needString(s.c, f)
						if err != nil {
							return err
						}
						p[f] = v
					}
					if err := fieldFlags(s.c, p); err != nil {
						return err
					}
					return putAndShow(s, apps.KindFund, p)
				})},
			{Name: "donate", Usage: "record a donation to a fund",
				Flags: moneyFlags(&ucli.StringFlag{Name: "source", Usage: "where the money came from"},
					&ucli.StringFlag{Name: "donor", Usage: "the donor (a uid keeps the name private)"}),
				Action: clientAction(0, 0, true, func(s *clientSession) error {
					f, err := needString(s.c, "fund")
					if err != nil {
						return err
					}
					p := map[string]any{"fund": f}
					for _, k := range []string{"source", "donor"} {
						if v := s.c.String(k); v != "" {
							p[k] = v
						}
					}
					if err := money(s.c, p); err != nil {
						return err
					}
					return putAndShow(s, apps.KindDonation, p)
				})},
			{Name: "disburse", Usage: "record a disbursement from a fund (refused beyond its balance)",
				Flags: moneyFlags(&ucli.StringFlag{Name: "target", Usage: "where the money went"}),
				Action: clientAction(0, 0, true, func(s *clientSession) error {
					f, err := needString(s.c, "fund")
					if err != nil {
						return err
					}
					p := map[string]any{"fund": f}
					if v := s.c.String("target"); v != "" {
						p["target"] = v
					}
					if err := money(s.c, p); err != nil {
						return err
					}
					return putAndShow(s, apps.KindDisbursement, p)
				})},
			{Name: "funds", Usage: "list the funds",
				Action: clientAction(0, 0, false, func(s *clientSession) error {
					var r protocol.FundsResult
					return s.call("charity.funds", nil, &r, func(w io.Writer) {
						for _, f := range r.Funds {
							fmt.Fprintln(w, f)
						}
					})
				})},
			{Name: "report", Usage: "a fund's public report", ArgsUsage: "FUND-ID", Flags: viewFlags(),
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 1, 1); err != nil {
						return err
					}
					fund := c.Args().First()
					return view(c, "charity.report", map[string]string{"fund": fund},
						func(x *apps.Index) (*apps.FundReport, error) { return x.FundReport(fund) }, apps.WriteFundReport)
				}},
		},
	}
}

func resourceCommand() *ucli.Command {
	amount := func(c *ucli.Context, p map[string]any) error {
		a := c.Uint64("amount")
		if a == 0 {
			return usagef("%s needs --amount (a positive integer)", c.Command.HelpName)
		}
		p["amount"] = a
		if n := c.String("note"); n != "" {
			p["note"] = n
		}
		return nil
	}
	amountFlags := func(extra ...ucli.Flag) []ucli.Flag {
		return append([]ucli.Flag{
			&ucli.Uint64Flag{Name: "amount", Usage: "how much (a positive integer, in the account's unit)"},
			&ucli.StringFlag{Name: "note", Usage: "a note"},
		}, extra...)
	}
	accountOp := func(kind string) ucli.ActionFunc {
		return clientAction(0, 0, true, func(s *clientSession) error {
			a, err := needString(s.c, "account")
			if err != nil {
				return err
			}
			p := map[string]any{"account": a}
			if err := amount(s.c, p); err != nil {
				return err
			}
			return putAndShow(s, kind, p)
		})
	}
	return &ucli.Command{
		Name:  "resource",
		Usage: "internal resource accounting: accounts, allocations, use, transfers, reports",
		Flags: clientFlags(),
		Subcommands: []*ucli.Command{
			{Name: "account", Usage: "open an account", ArgsUsage: "ACCOUNT-ID",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "unit", Usage: "what it counts, e.g. cpu-hours or EUR"},
					&ucli.BoolFlag{Name: "overdraft", Usage: "allow the balance to go below zero"},
					&ucli.StringFlag{Name: "note", Usage: "a note"},
				},
				Action: clientAction(1, 1, true, func(s *clientSession) error {
					u, err := needString(s.c, "unit")
					if err != nil {
						return err
					}
					p := map[string]any{"account": s.c.Args().First(), "unit": u}
					if s.c.Bool("overdraft") {
						p["overdraft"] = true
					}
					if n := s.c.String("note"); n != "" {
						p["note"] = n
					}
					return putAndShow(s, apps.KindAccount, p)
				})},
			{Name: "allocate", Usage: "add to an account", Flags: amountFlags(&ucli.StringFlag{Name: "account", Usage: "account id"}), Action: accountOp(apps.KindAllocate)},
			{Name: "use", Usage: "record use from an account (refused beyond its balance unless it allows overdraft)", Flags: amountFlags(&ucli.StringFlag{Name: "account", Usage: "account id"}), Action: accountOp(apps.KindUse)},
			{Name: "transfer", Usage: "move an amount between two accounts of the same unit",
				Flags: amountFlags(&ucli.StringFlag{Name: "from", Usage: "account id"}, &ucli.StringFlag{Name: "to", Usage: "account id"}),
				Action: clientAction(0, 0, true, func(s *clientSession) error {
					p := map[string]any{}
					for _, f := range []string{"from", "to"} {
						v, err := needString(s.c, f)
						if err != nil {
							return err
						}
						p[f] = v
					}
					if err := amount(s.c, p); err != nil {
						return err
					}
					return putAndShow(s, apps.KindTransfer, p)
				})},
			{Name: "report", Usage: "balances and usage per period",
				Flags: append(viewFlags(),
					&ucli.StringFlag{Name: "period", Value: "month", Usage: "usage per day, month or year (UTC)"},
					&ucli.StringFlag{Name: "account", Usage: "only this account"}),
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 0, 0); err != nil {
						return err
					}
					period, account := c.String("period"), c.String("account")
					if err := apps.CheckPeriod(period); err != nil {
						return usagef("--period: %v", err)
					}
					return view(c, "resource.report", map[string]string{"period": period, "account": account},
						func(x *apps.Index) (*apps.ResourceReport, error) { return x.ResourceReport(period, account) }, apps.WriteResourceReport)
				}},
		},
	}
}

func defaultUIDSecret() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "uid.secret"
	}
	return filepath.Join(dir, "pyvnode", "uid.secret")
}

func uidCommand() *ucli.Command {
	flags := func() []ucli.Flag {
		return []ucli.Flag{
			&ucli.StringFlag{Name: "secret", Value: defaultUIDSecret(), Usage: "the publisher's secret (made on first 'uid new'; keep it and back it up)", EnvVars: []string{"PYVNODE_UID_SECRET"}},
			&ucli.StringFlag{Name: "reveal", Usage: "the encrypted reveal file (default: the secret's path with .reveal)"},
		}
	}
	revealPath := func(c *ucli.Context) string {
		if r := c.String("reveal"); r != "" {
			return r
		}
		return strings.TrimSuffix(c.String("secret"), ".secret") + ".reveal"
	}
	return &ucli.Command{
		Name:  "uid",
		Usage: "unique ids that stand for private data in records (HMAC-SHA-256 under your secret)",
		Subcommands: []*ucli.Command{
			{Name: "new", Usage: "derive the id of a private text and remember it in the encrypted reveal file", ArgsUsage: "TEXT", Flags: flags(),
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 1, 1); err != nil {
						return err
					}
					path := c.String("secret")
					secret, err := apps.LoadUIDSecret(path)
					if errors.Is(err, os.ErrNotExist) {
						if secret, err = apps.NewUIDSecret(path); err == nil {
							fmt.Fprintf(env(c).Stderr, "made a new uid secret in %s (mode 0600): back it up; without it no id can be revealed\n", path)
						}
					}
					if err != nil {
						return err
					}
					id, err := apps.NewUID(secret, revealPath(c), c.Args().First())
					if err != nil {
						return err
					}
					fmt.Fprintln(env(c).Stdout, id)
					return nil
				}},
			{Name: "reveal", Usage: "turn an id back into its text (needs the secret that made it)", ArgsUsage: "ID", Flags: flags(),
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 1, 1); err != nil {
						return err
					}
					if err := apps.CheckUID(c.Args().First()); err != nil {
						return usagef("%v", err)
					}
					secret, err := apps.LoadUIDSecret(c.String("secret"))
					if err != nil {
						return err
					}
					text, err := apps.RevealUID(secret, revealPath(c), c.Args().First())
					if err != nil {
						return err
					}
					fmt.Fprintln(env(c).Stdout, text)
					return nil
				}},
		},
	}
}

func verifyReceiptCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "verify-receipt",
		Usage:     "check a receipt against any node holding the record, with proofs checked here",
		ArgsUsage: "RECEIPT-FILE",
		Description: "Checks the receipt's signed checkpoint and inclusion proof, fetches the record and an\n" +
			"inclusion proof under a checkpoint the server signs now, and, when the server is the node\n" +
			"that issued the receipt, a consistency proof from the receipt's checkpoint. Exits 0 when\n" +
			"every check passes, 3 when one fails.",
		Flags: clientFlags(),
		Action: clientAction(1, 1, false, func(s *clientSession) error {
			b, err := os.ReadFile(s.c.Args().First())
			if err != nil {
				return err
			}
			r, err := apps.ParseReceipt(b)
			if err != nil {
				return err
			}
			start := time.Now()
			chk, err := protocol.VerifyReceipt(s.c.Context, s.Client, r)
			if err != nil {
				return exitError{code: 3, err: fmt.Errorf("receipt does not verify: %w", err)}
			}
			took := time.Since(start)
			return s.print(chk, func(w io.Writer) {
				fmt.Fprintf(w, "record      %s (%s)\npayload     %s\n", chk.Record, chk.Kind, chk.Payload)
				fmt.Fprintf(w, "issued      by node %s: height %d in its signed checkpoint of %d records  ok\n", chk.Issuer.Short(), chk.Height, chk.Size)
				fmt.Fprintf(w, "held        by node %s: height %d in the checkpoint of %d records it signed now  ok\n", chk.Server.Short(), chk.ServerHeight, chk.ServerSize)
				if chk.Consistent {
					fmt.Fprintf(w, "consistent  the issuer's chain extends the receipt's checkpoint  ok\n")
				} else {
					fmt.Fprintf(w, "consistent  not checked: only the issuing node (%s) can prove its own chain extends the checkpoint\n", chk.Issuer.Short())
				}
				fmt.Fprintf(w, "checked in  %s\n", roundDuration(took))
			})
		}),
	}
}
