package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	ucli "github.com/urfave/cli/v2"
)

// userOps is account administration, done either on a stopped node's data
// directory or over the protocol as an admin.
type userOps interface {
	Add(name string, role accounts.Role, password string) (*accounts.Added, error)
	Delete(name string) error
	SetEnabled(name string, on bool) error
	SetRole(name string, role accounts.Role) error
	SetQuota(name string, quota int64) error
	ResetTOTP(name string) (*accounts.Enrollment, error)
	ResetPassword(name, password string) (string, error)
	List() ([]accounts.Public, error)
}

// localUsers works on the accounts file of a stopped node.
type localUsers struct{ *accounts.Store }

func (l localUsers) List() ([]accounts.Public, error) { return l.Store.List(), nil }

// remoteUsers works through an admin session.
type remoteUsers struct {
	ctx context.Context
	c   *protocol.Client
}

func (r remoteUsers) call(cmd string, args map[string]any, res any) error {
	return r.c.Call(r.ctx, cmd, args, res)
}

func (r remoteUsers) Add(name string, role accounts.Role, pw string) (*accounts.Added, error) {
	var out accounts.Added
	return &out, r.call("user.add", map[string]any{"name": name, "role": string(role), "password": pw}, &out)
}
func (r remoteUsers) Delete(name string) error {
	return r.call("user.del", map[string]any{"name": name}, nil)
}
func (r remoteUsers) SetEnabled(name string, on bool) error {
	cmd := "user.disable"
	if on {
		cmd = "user.enable"
	}
	return r.call(cmd, map[string]any{"name": name}, nil)
}
func (r remoteUsers) SetRole(name string, role accounts.Role) error {
	return r.call("user.role", map[string]any{"name": name, "role": string(role)}, nil)
}
func (r remoteUsers) SetQuota(name string, q int64) error {
	return r.call("user.quota", map[string]any{"name": name, "quota": q}, nil)
}
func (r remoteUsers) ResetTOTP(name string) (*accounts.Enrollment, error) {
	var e accounts.Enrollment
	return &e, r.call("user.reset-2fa", map[string]any{"name": name}, &e)
}
func (r remoteUsers) ResetPassword(name, pw string) (string, error) {
	var out map[string]string
	err := r.call("user.reset-password", map[string]any{"name": name, "password": pw}, &out)
	return out["password"], err
}
func (r remoteUsers) List() ([]accounts.Public, error) {
	var out protocol.UsersResult
	return out.Users, r.call("user.list", nil, &out)
}

// userCommands builds the account commands on top of open, which gives the
// operations and a function that releases them.
func userCommands(open func(c *ucli.Context) (userOps, bool, func(), error)) []*ucli.Command {
	act := func(min, max int, f func(c *ucli.Context, ops userOps, jsonOut bool) error) ucli.ActionFunc {
		return func(c *ucli.Context) error {
			if err := wantArgs(c, min, max); err != nil {
				return err
			}
			if name := c.Args().First(); name != "" {
				if err := accounts.CheckName(name); err != nil {
					return usageError{err.Error()}
				}
			}
			ops, jsonOut, done, err := open(c)
			if err != nil {
				return err
			}
			defer done()
			return f(c, ops, jsonOut)
		}
	}
	simple := func(name, usage string, f func(ops userOps, user string) error, said string) *ucli.Command {
		return &ucli.Command{Name: name, Usage: usage, ArgsUsage: "NAME", Action: act(1, 1, func(c *ucli.Context, ops userOps, jsonOut bool) error {
			if err := f(ops, c.Args().First()); err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(env(c).Stdout, map[string]string{"user": c.Args().First(), "done": name})
			}
			fmt.Fprintf(env(c).Stdout, "%s %s\n", c.Args().First(), said)
			return nil
		})}
	}
	return []*ucli.Command{
		{Name: "add", Usage: "add a user; with no password a one-time one is made and shown", ArgsUsage: "NAME",
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "role", Value: "writer", Usage: "reader, writer, authority or admin"},
				&ucli.StringFlag{Name: "new-password-file", Usage: "set this password (first line) instead of a one-time one"},
			},
			Action: act(1, 1, func(c *ucli.Context, ops userOps, jsonOut bool) error {
				role, err := accounts.ParseRole(c.String("role"))
				if err != nil {
					return usageError{err.Error()}
				}
				pw := ""
				if c.String("new-password-file") != "" {
					if pw, err = password(c, "new password", "PYVNODE_NEW_PASSWORD", "new-password-file", ""); err != nil {
						return err
					}
				}
				a, err := ops.Add(c.Args().First(), role, pw)
				if err != nil {
					return err
				}
				if jsonOut {
					return writeJSON(env(c).Stdout, a)
				}
				w := env(c).Stdout
				fmt.Fprintf(w, "added %s (%s)\n", a.User.Name, a.User.Role)
				if a.Password != "" {
					fmt.Fprintf(w, "password     %s   (one-time: to be changed at first login)\n", a.Password)
				}
				showEnrollment(w, a.TOTP)
				return nil
			})},
		simple("del", "delete a user (their files stay)", userOps.Delete, "deleted"),
		simple("enable", "enable a user", func(o userOps, n string) error { return o.SetEnabled(n, true) }, "enabled"),
		simple("disable", "disable a user", func(o userOps, n string) error { return o.SetEnabled(n, false) }, "disabled"),
		{Name: "role", Usage: "change a user's role", ArgsUsage: "NAME ROLE", Action: act(2, 2, func(c *ucli.Context, ops userOps, jsonOut bool) error {
			role, err := accounts.ParseRole(c.Args().Get(1))
			if err != nil {
				return usageError{err.Error()}
			}
			if err := ops.SetRole(c.Args().First(), role); err != nil {
				return err
			}
			fmt.Fprintf(env(c).Stdout, "%s is now %s\n", c.Args().First(), role)
			return nil
		})},
		{Name: "quota", Usage: "set a user's file quota (e.g. 500MiB, 2GiB)", ArgsUsage: "NAME SIZE", Action: act(2, 2, func(c *ucli.Context, ops userOps, jsonOut bool) error {
			q, err := humanize.ParseBytes(c.Args().Get(1))
			if err != nil {
				return usagef("SIZE %q: %v", c.Args().Get(1), err)
			}
			if err := ops.SetQuota(c.Args().First(), int64(q)); err != nil {
				return err
			}
			fmt.Fprintf(env(c).Stdout, "%s may now store %s\n", c.Args().First(), humanize.IBytes(q))
			return nil
		})},
		{Name: "reset-2fa", Usage: "give a user a new TOTP secret", ArgsUsage: "NAME", Action: act(1, 1, func(c *ucli.Context, ops userOps, jsonOut bool) error {
			e, err := ops.ResetTOTP(c.Args().First())
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(env(c).Stdout, e)
			}
			showEnrollment(env(c).Stdout, e)
			return nil
		})},
		{Name: "reset-password", Usage: "set a one-time password the user must change", ArgsUsage: "NAME", Action: act(1, 1, func(c *ucli.Context, ops userOps, jsonOut bool) error {
			pw, err := ops.ResetPassword(c.Args().First(), "")
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(env(c).Stdout, map[string]string{"user": c.Args().First(), "password": pw})
			}
			fmt.Fprintf(env(c).Stdout, "password     %s   (one-time)\n", pw)
			return nil
		})},
		{Name: "list", Usage: "list users", Action: act(0, 0, func(c *ucli.Context, ops userOps, jsonOut bool) error {
			us, err := ops.List()
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(env(c).Stdout, us)
			}
			w := env(c).Stdout
			fmt.Fprintf(w, "%-16s %-7s %-8s %-5s %-11s %s\n", "NAME", "ROLE", "ENABLED", "TOTP", "QUOTA", "CREATED")
			for _, u := range us {
				note := ""
				if u.MustChange {
					note = "  (one-time password)"
				}
				fmt.Fprintf(w, "%-16s %-7s %-8s %-5s %-11s %s%s\n", u.Name, u.Role, strconv.FormatBool(u.Enabled),
					strconv.FormatBool(u.TOTP), humanize.IBytes(uint64(u.Quota)), u.Created.Format("2006-01-02"), note)
			}
			return nil
		})},
	}
}

// userCommand is 'pyvnode user': on a stopped node's data directory, or,
// with --server, remotely as an admin.
func userCommand() *ucli.Command {
	// Here --server must be given explicitly: PYVNODE_SERVER in the
	// environment must not send an offline command to a running node.
	flags := []ucli.Flag{dataFlag()}
	for _, f := range clientFlags() {
		if sf, ok := f.(*ucli.StringFlag); ok && sf.Name == "server" {
			f = &ucli.StringFlag{Name: "server", Aliases: sf.Aliases, Usage: "manage the users of this running node instead (HOST:PORT)"}
		}
		flags = append(flags, f)
	}
	return &ucli.Command{
		Name:  "user",
		Usage: "manage accounts: on a stopped node's data directory (--data) or remotely (--server, as an admin)",
		Flags: flags,
		Subcommands: userCommands(func(c *ucli.Context) (userOps, bool, func(), error) {
			if c.IsSet("server") {
				s, err := connect(c, true)
				if err != nil {
					return nil, false, nil, err
				}
				return remoteUsers{c.Context, s.Client}, s.json, func() { s.Close() }, nil
			}
			// Opening the chain takes the directory lock, so this fails
			// clearly while the node runs.
			d, err := node.OpenData(c.String("data"), slog.Default())
			if err != nil {
				if strings.Contains(err.Error(), "in use") {
					err = fmt.Errorf("%w; manage a running node's users with --server", err)
				}
				return nil, false, nil, err
			}
			st, err := node.OpenAccounts(d.Dir, d.Genesis)
			if err != nil {
				d.Close()
				return nil, false, nil, err
			}
			return localUsers{st}, c.Bool("json"), func() { d.Close() }, nil
		}),
	}
}

// adminCommands are the client's administration commands.
func adminCommands() []*ucli.Command {
	var peers protocol.PeersResult
	peerCmd := func(name, usage, cmd string, nargs int) *ucli.Command {
		au := ""
		if nargs == 1 {
			au = "MULTIADDR"
		}
		return &ucli.Command{Name: name, Usage: usage, ArgsUsage: au, Action: clientAction(nargs, nargs, true, func(s *clientSession) error {
			args := map[string]any{}
			if nargs == 1 {
				args["addr"] = s.c.Args().First()
			}
			return s.call(cmd, args, &peers, func(w io.Writer) {
				for _, p := range peers.Peers {
					fmt.Fprintln(w, p)
				}
				if len(peers.Peers) == 0 {
					fmt.Fprintln(w, "(no peers)")
				}
			})
		})}
	}
	return []*ucli.Command{
		{Name: "user", Usage: "manage accounts (admin)", Subcommands: userCommands(func(c *ucli.Context) (userOps, bool, func(), error) {
			s, err := connect(c, true)
			if err != nil {
				return nil, false, nil, err
			}
			return remoteUsers{c.Context, s.Client}, s.json, func() { s.Close() }, nil
		})},
		{Name: "peer", Usage: "replication peers (admin)", Subcommands: []*ucli.Command{
			peerCmd("add", "add a peer", "peer.add", 1),
			peerCmd("del", "remove a peer", "peer.del", 1),
			peerCmd("list", "list the configured peers (peers.json)", "peer.list", 0),
			{Name: "status", Usage: "this node's p2p addresses, every known peer and the replication counters", Action: clientAction(0, 0, true, func(s *clientSession) error {
				var r protocol.NetworkStatus
				return s.call("peer.status", nil, &r, func(w io.Writer) { printNetworkStatus(w, &r) })
			})},
			peerBlockCmd("block", "cut a peer off until unblocked (until restart)", "peer.block"),
			peerBlockCmd("unblock", "let a blocked or banned peer back in", "peer.unblock"),
		}},
		{Name: "sync", Usage: "reconcile with a peer now (PEER-ID), or with every connected peer (admin)", ArgsUsage: "[PEER-ID]",
			Action: clientAction(0, 1, true, func(s *clientSession) error {
				args := map[string]any{}
				if s.c.NArg() == 1 {
					args["peer"] = s.c.Args().First()
				}
				var r protocol.SyncResults
				return s.call("sync", args, &r, func(w io.Writer) {
					if len(r.Results) == 0 {
						fmt.Fprintln(w, "(no connected peers)")
					}
					for _, x := range r.Results {
						fmt.Fprintf(w, "%s  sent %d, received %d, rejected %d, %d rounds, %s out, %s in, %.3f s",
							x.Peer, x.Sent, x.Received, x.Rejected, x.Rounds, humanize.IBytes(uint64(x.BytesOut)), humanize.IBytes(uint64(x.BytesIn)), x.Seconds)
						if x.Error != "" {
							fmt.Fprintf(w, "  error: %s", x.Error)
						}
						fmt.Fprintln(w)
					}
				})
			})},
		{Name: "limits", Usage: "show or change connection and rate limits (admin)", ArgsUsage: "[NAME=VALUE ...]",
			Action: clientAction(0, 32, true, func(s *clientSession) error {
				var cur protocol.Limits
				if err := s.Call(s.c.Context, "limits", nil, &cur); err != nil {
					return err
				}
				args := map[string]any{}
				if s.c.NArg() > 0 {
					set, err := applyLimitArgs(cur, s.c.Args().Slice())
					if err != nil {
						return err
					}
					args["set"] = set
				}
				var r protocol.Limits
				return s.call("limits", args, &r, func(w io.Writer) {
					fmt.Fprintf(w, "max_conns          %d\nmax_conns_per_addr %d\nconn_rate          %g/s (burst %d)\nhandshake_seconds  %g\nidle_seconds       %g (max %g)\nframe_seconds      %g\nmax_message        %d\nmax_inflight       %d\nmax_file_chunk     %d\n",
						r.MaxConns, r.MaxConnsPerAddr, r.ConnRate, r.ConnBurst, r.HandshakeSeconds, r.IdleSeconds, r.MaxIdleSeconds, r.FrameSeconds, r.MaxMessage, r.MaxInflight, r.MaxFileChunk)
				})
			})},
		{Name: "status", Usage: "uptime, connections, chain height, memory (admin)", Action: clientAction(0, 0, true, func(s *clientSession) error {
			var r protocol.StatusResult
			return s.call("status", nil, &r, func(w io.Writer) {
				fmt.Fprintf(w, "node        %s (%s)\nversion     %s\nuptime      %.0f s\nheight      %d\nroot        %s\nsessions    %d (accepted %d, refused %d, failed handshakes %d)\nlogins      %d (failed %d)\nbytes       in %d, out %d\nmemory      heap %s, from the OS %s\ngoroutines  %d\npeers       %d connected\npeer id     %s\n",
					r.Node.Short(), r.Network, r.Version, r.UptimeSeconds, r.Height, r.Root,
					r.Connections.Sessions, r.Connections.Accepted, r.Connections.Refused, r.Connections.HandshakeFailures,
					r.Connections.Logins, r.Connections.LoginFailures, r.Connections.BytesIn, r.Connections.BytesOut,
					humanize.IBytes(r.HeapBytes), humanize.IBytes(r.SysBytes), r.Goroutines, r.Peers, r.PeerID)
			})
		})},
		{Name: "timeout", Usage: "set the session's idle timeout (for scripts holding a session)", ArgsUsage: "SECONDS",
			Action: clientAction(1, 1, false, func(s *clientSession) error {
				secs, err := strconv.ParseFloat(s.c.Args().First(), 64)
				if err != nil {
					return usagef("SECONDS must be a number")
				}
				var r protocol.TimeoutResult
				return s.call("timeout", map[string]any{"seconds": secs}, &r, func(w io.Writer) { fmt.Fprintf(w, "idle timeout %g s\n", r.Seconds) })
			})},
	}
}

func peerBlockCmd(name, usage, cmd string) *ucli.Command {
	return &ucli.Command{Name: name, Usage: usage, ArgsUsage: "PEER-ID", Action: clientAction(1, 1, true, func(s *clientSession) error {
		var r struct{}
		return s.call(cmd, map[string]any{"peer": s.c.Args().First()}, &r, func(w io.Writer) { fmt.Fprintln(w, "ok") })
	})}
}

func printNetworkStatus(w io.Writer, r *protocol.NetworkStatus) {
	fmt.Fprintf(w, "peer id     %s\n", r.PeerID)
	for _, a := range r.Addrs {
		fmt.Fprintf(w, "address     %s\n", a)
	}
	fmt.Fprintf(w, "gossip      accepted %d, duplicates %d, published %d, re-published %d\n", r.GossipAccepted, r.GossipIgnored, r.Published, r.Republished)
	fmt.Fprintf(w, "sync        %d sessions (%d failed), %d rounds, records in %d out %d, bytes in %s out %s\n",
		r.SyncSessions, r.SyncFailed, r.SyncRounds, r.SyncRecordsIn, r.SyncRecordsOut, humanize.IBytes(r.SyncBytesIn), humanize.IBytes(r.SyncBytesOut))
	for k, v := range r.Rejected {
		fmt.Fprintf(w, "rejected    %s: %d\n", k, v)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSTATE\tSINCE\tLAST SYNC\tIN\tOUT\tADDRESS")
	for _, p := range r.Peers {
		state := "disconnected"
		switch {
		case p.Refused != "":
			state = "refused (" + p.Refused + ")"
		case p.Ready:
			state = "ready"
		case p.Connected:
			state = "connected"
		}
		since, last := "-", "-"
		if !p.Since.IsZero() && p.Ready {
			since = p.Since.Local().Format("15:04:05")
		}
		if !p.LastSync.IsZero() {
			last = p.LastSync.Local().Format("15:04:05")
		}
		addr := "-"
		if len(p.Addrs) > 0 {
			addr = p.Addrs[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.ID, state, since, last, p.RecordsIn, p.RecordsOut, addr)
	}
	tw.Flush()
}

// applyLimitArgs applies NAME=VALUE pairs to the current limits.
func applyLimitArgs(l protocol.Limits, pairs []string) (protocol.Limits, error) {
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return l, usagef("limit %q: want NAME=VALUE", p)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return l, usagef("limit %s: %q is not a non-negative number", k, v)
		}
		switch k {
		case "max_conns":
			l.MaxConns = int(f)
		case "max_conns_per_addr":
			l.MaxConnsPerAddr = int(f)
		case "conn_rate":
			l.ConnRate = f
		case "conn_burst":
			l.ConnBurst = int(f)
		case "handshake_seconds":
			l.HandshakeSeconds = f
		case "idle_seconds":
			l.IdleSeconds = f
		case "max_idle_seconds":
			l.MaxIdleSeconds = f
		case "frame_seconds":
			l.FrameSeconds = f
		case "max_message":
			l.MaxMessage = int(f)
		case "max_inflight":
			l.MaxInflight = int(f)
		case "max_file_chunk":
			l.MaxFileChunk = int(f)
		default:
			return l, usagef("unknown limit %q", k)
		}
	}
	return l, nil
}
