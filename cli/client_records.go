package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol"
	ucli "github.com/urfave/cli/v2"
)

func sessionCommands() []*ucli.Command {
	return []*ucli.Command{
		{Name: "hello", Usage: "who the node is; this session's id", Action: clientAction(0, 0, false, func(s *clientSession) error {
			var r protocol.HelloResult
			return s.call("hello", nil, &r, func(w io.Writer) {
				fmt.Fprintf(w, "node      %s\nnetwork   %s\nversion   %s (protocol %d)\nsession   %s\n", r.Node, r.Network, r.Version, r.Protocol, r.Session)
				if r.User != "" {
					fmt.Fprintf(w, "user      %s\n", r.User)
				}
				if r.Dev {
					fmt.Fprintf(w, "mode      development (no TOTP)\n")
				}
			})
		})},
		{Name: "ver", Usage: "software and protocol version", Action: clientAction(0, 0, false, func(s *clientSession) error {
			var r protocol.VerResult
			return s.call("ver", nil, &r, func(w io.Writer) { fmt.Fprintf(w, "%s (protocol %d, %s)\n", r.Version, r.Protocol, r.Go) })
		})},
		{Name: "id", Usage: "node id, fingerprint and network", Action: clientAction(0, 0, false, func(s *clientSession) error {
			var r protocol.IDResult
			return s.call("id", nil, &r, func(w io.Writer) {
				fmt.Fprintf(w, "node          %s\nfingerprint   %s\nnetwork       %s (genesis %s)\nproof of work %d bits\n", r.Node, r.Fingerprint, r.Network, r.Genesis, r.PowBits)
			})
		})},
		{Name: "help", Usage: "the node's commands", ArgsUsage: "[COMMAND]", Action: clientAction(0, 1, false, func(s *clientSession) error {
			var r protocol.HelpResult
			args := map[string]string{}
			if s.c.NArg() == 1 {
				args["cmd"] = s.c.Args().First()
			}
			return s.call("help", args, &r, func(w io.Writer) {
				for _, c := range r.Commands {
					fmt.Fprintf(w, "%-22s %-22s %-7s %s\n", c.Name, c.Args, c.Role, c.Help)
				}
			})
		})},
		{Name: "rekey", Usage: "move the session to fresh keys (shows that traffic continues)", Action: clientAction(0, 0, false, func(s *clientSession) error {
			if err := s.Rekey(s.c.Context); err != nil {
				return err
			}
			var r protocol.HelloResult
			return s.call("hello", nil, &r, func(w io.Writer) { fmt.Fprintf(w, "rekeyed; session %s continues\n", r.Session) })
		})},
		{Name: "passwd", Usage: "change your password (new one from --new-password-file, PYVNODE_NEW_PASSWORD or a prompt)",
			Flags: []ucli.Flag{&ucli.StringFlag{Name: "new-password-file", Usage: "read the new password from this file"}},
			Action: clientAction(0, 0, true, func(s *clientSession) error {
				old, err := password(s.c, "password", "PYVNODE_PASSWORD", "password-file", "")
				if err != nil {
					return err
				}
				nw, err := password(s.c, "new password", "PYVNODE_NEW_PASSWORD", "new-password-file", "New password: ")
				if err != nil {
					return err
				}
				return s.call("passwd", map[string]string{"old": old, "new": nw}, nil, func(w io.Writer) { fmt.Fprintln(w, "password changed") })
			})},
	}
}

// printRecordResult shows a record the way 'chain show' does.
func printRecordResult(w io.Writer, r protocol.RecordResult) {
	pj, err := ledger.PayloadJSON(r.Payload)
	if err != nil {
		pj = []byte(fmt.Sprintf("(payload does not decode: %v)", err))
	}
	ts := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	fmt.Fprintf(w, "height       %d\nid           %s\nkind         %s\nauthor       %s\norigin       %s\ncreated      %s\nlink         %s\nreplication  %d\nsource       %s\nreceived     %s\npayload      %s\n",
		r.Height, r.ID, r.Kind, r.Author, r.Origin, ts(r.Created), r.Link, r.Replication, r.Source, ts(r.Received), pj)
}

// recordJSON is a record as --json prints it: the export line's fields.
func recordJSON(r protocol.RecordResult) map[string]any {
	pj, _ := ledger.PayloadJSON(r.Payload)
	return map[string]any{
		"height": r.Height, "id": r.ID, "link": r.Link, "replication": r.Replication, "source": r.Source,
		"received": r.Received, "record": ledger.HexBytes(r.Record), "signature": ledger.HexBytes(r.Signature),
		"kind": r.Kind, "author": r.Author, "origin": r.Origin, "created": r.Created, "nonce": r.Nonce,
		"payload": json.RawMessage(pj),
	}
}

func heightOrID(arg string) (map[string]any, error) {
	if len(arg) == 64 {
		id, err := ledger.ParseID(arg)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		return map[string]any{"id": id}, nil
	}
	h, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return nil, usagef("%q is neither a height nor a 64-hex-digit record id", arg)
	}
	return map[string]any{"height": h}, nil
}

func recordCommands() []*ucli.Command {
	return []*ucli.Command{
		{Name: "put", Usage: "append a record (payload is a JSON object)", ArgsUsage: "KIND PAYLOAD-JSON",
			Action: clientAction(2, 2, true, func(s *clientSession) error {
				kind := s.c.Args().Get(0)
				if err := ledger.CheckKind(kind); err != nil {
					return usageError{err.Error()}
				}
				payload, err := ledger.PayloadFromJSON([]byte(s.c.Args().Get(1)))
				if err != nil {
					return usageError{err.Error()}
				}
				var r protocol.PutResult
				return s.call("put", map[string]any{"kind": kind, "payload": payload}, &r, func(w io.Writer) {
					fmt.Fprintf(w, "appended %s at height %d\n", r.ID, r.Height)
				})
			})},
		{Name: "get", Usage: "one record", ArgsUsage: "HEIGHT|ID", Action: clientAction(1, 1, false, func(s *clientSession) error {
			args, err := heightOrID(s.c.Args().First())
			if err != nil {
				return err
			}
			var r protocol.RecordResult
			if err := s.Call(s.c.Context, "get", args, &r); err != nil {
				return err
			}
			if s.json {
				return writeJSON(env(s.c).Stdout, recordJSON(r))
			}
			printRecordResult(env(s.c).Stdout, r)
			return nil
		})},
		{Name: "list", Usage: fmt.Sprintf("records from a height (at most %d a page)", protocol.MaxList), ArgsUsage: "[FROM] [COUNT]",
			Action: clientAction(0, 2, false, func(s *clientSession) error {
				var from, count uint64 = 0, 20
				var err error
				if s.c.NArg() > 0 {
					if from, err = strconv.ParseUint(s.c.Args().Get(0), 10, 64); err != nil {
						return usagef("FROM must be a height")
					}
				}
				if s.c.NArg() > 1 {
					if count, err = strconv.ParseUint(s.c.Args().Get(1), 10, 64); err != nil || count < 1 || count > protocol.MaxList {
						return usagef("COUNT must be 1 to %d", protocol.MaxList)
					}
				}
				var r protocol.ListResult
				if err := s.Call(s.c.Context, "list", map[string]any{"from": from, "count": count}, &r); err != nil {
					return err
				}
				if s.json {
					out := []map[string]any{}
					for _, rec := range r.Records {
						out = append(out, recordJSON(rec))
					}
					return writeJSON(env(s.c).Stdout, map[string]any{"records": out, "next": r.Next, "size": r.Size})
				}
				w := env(s.c).Stdout
				for _, rec := range r.Records {
					pj, _ := ledger.PayloadJSON(rec.Payload)
					fmt.Fprintf(w, "%-8d %s  %-18s %-10s %s\n", rec.Height, rec.ID.String()[:16], rec.Kind, rec.Author, pj)
				}
				fmt.Fprintf(w, "(%d of %d records; next page from %d)\n", len(r.Records), r.Size, r.Next)
				return nil
			})},
		{Name: "has", Usage: "whether the chain holds a record", ArgsUsage: "ID", Action: clientAction(1, 1, false, func(s *clientSession) error {
			id, err := ledger.ParseID(s.c.Args().First())
			if err != nil {
				return usageError{err.Error()}
			}
			var r protocol.HasResult
			return s.call("has", map[string]any{"id": id}, &r, func(w io.Writer) {
				if r.Has {
					fmt.Fprintf(w, "yes, at height %d\n", r.Height)
				} else {
					fmt.Fprintln(w, "no")
				}
			})
		})},
		{Name: "head", Usage: "chain size, Merkle root, last link", Action: clientAction(0, 0, false, func(s *clientSession) error {
			var r ledger.Head
			return s.call("head", nil, &r, func(w io.Writer) { fmt.Fprintf(w, "size  %d\nroot  %s\nlink  %s\n", r.Size, r.Root, r.Link) })
		})},
		{Name: "checkpoint", Usage: "a checkpoint of the head signed by the node (checked here)", Action: clientAction(0, 0, false, func(s *clientSession) error {
			var r protocol.CheckpointResult
			if err := s.Call(s.c.Context, "checkpoint", nil, &r); err != nil {
				return err
			}
			if _, err := ledger.OpenCheckpoint([]byte(r.Checkpoint), s.Node.Node); err != nil {
				return fmt.Errorf("the node's checkpoint does not verify: %w", err)
			}
			return s.print(&r, func(w io.Writer) { fmt.Fprint(w, r.Checkpoint) })
		})},
		{Name: "proof", Usage: "Merkle proofs, checked here", Subcommands: []*ucli.Command{
			{Name: "inclusion", Usage: "prove a record is in the tree", ArgsUsage: "ID [SIZE]", Action: clientAction(1, 2, false, func(s *clientSession) error {
				id, err := ledger.ParseID(s.c.Args().First())
				if err != nil {
					return usageError{err.Error()}
				}
				args := map[string]any{"id": id}
				if s.c.NArg() == 2 {
					size, err := strconv.ParseUint(s.c.Args().Get(1), 10, 64)
					if err != nil || size == 0 {
						return usagef("SIZE must be a positive number")
					}
					args["size"] = size
				}
				var r protocol.InclusionResult
				if err := s.Call(s.c.Context, "proof.inclusion", args, &r); err != nil {
					return err
				}
				if err := ledger.VerifyInclusion(id, r.Index, r.Size, r.Proof, r.Root); err != nil {
					return fmt.Errorf("the node's proof does not verify: %w", err)
				}
				if r.Checkpoint != "" {
					cp, err := ledger.OpenCheckpoint([]byte(r.Checkpoint), s.Node.Node)
					if err != nil || cp.Root != r.Root || cp.Size != r.Size {
						return fmt.Errorf("the proof's checkpoint does not verify or does not match (%v)", err)
					}
				}
				return s.print(&r, func(w io.Writer) {
					fmt.Fprintf(w, "record %s is leaf %d of %d\nroot   %s\n", id, r.Index, r.Size, r.Root)
					for i, p := range r.Proof {
						fmt.Fprintf(w, "  %2d %x\n", i, p)
					}
					fmt.Fprintln(w, "proof verified")
				})
			})},
			{Name: "consistency", Usage: "prove the tree of NEW extends the tree of OLD", ArgsUsage: "OLD NEW", Action: clientAction(2, 2, false, func(s *clientSession) error {
				o, err1 := strconv.ParseUint(s.c.Args().Get(0), 10, 64)
				n, err2 := strconv.ParseUint(s.c.Args().Get(1), 10, 64)
				if err1 != nil || err2 != nil || o > n {
					return usagef("OLD and NEW must be sizes with OLD <= NEW")
				}
				var r protocol.ConsistencyResult
				if err := s.Call(s.c.Context, "proof.consistency", map[string]any{"old": o, "new": n}, &r); err != nil {
					return err
				}
				if err := ledger.VerifyConsistency(o, n, r.Proof, r.OldRoot, r.NewRoot); err != nil {
					return fmt.Errorf("the node's proof does not verify: %w", err)
				}
				return s.print(&r, func(w io.Writer) {
					fmt.Fprintf(w, "size %d root %s\nsize %d root %s\n", o, r.OldRoot, n, r.NewRoot)
					for i, p := range r.Proof {
						fmt.Fprintf(w, "  %2d %x\n", i, p)
					}
					fmt.Fprintln(w, "proof verified")
				})
			})},
		}},
		{Name: "verify", Usage: "have the node verify its whole chain (admin)", Action: clientAction(0, 0, true, func(s *clientSession) error {
			var r protocol.VerifyResult
			err := s.Call(s.c.Context, "verify", nil, &r)
			if pe, ok := err.(*protocol.Error); ok && pe.Code == protocol.ErrConflict.Code {
				fmt.Fprintf(env(s.c).Stdout, "DAMAGED: %s\n", pe.Message)
				return exitError{ExitDamaged, pe}
			}
			if err != nil {
				return err
			}
			return s.print(&r, func(w io.Writer) {
				fmt.Fprintf(w, "OK: %d records verified in %.2f s\nroot %s\nlink %s\n", r.Records, r.Seconds, r.Root, r.Link)
			})
		})},
	}
}
