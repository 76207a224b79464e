package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mdp/qrterminal/v3"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// clientFlags are the flags of 'pyvnode client' that every subcommand uses.
func clientFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "server", Aliases: []string{"s"}, Value: "127.0.0.1:6666", Usage: "node address HOST:PORT", EnvVars: []string{"PYVNODE_SERVER"}},
		&ucli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "log in as this user", EnvVars: []string{"PYVNODE_USER"}},
		&ucli.StringFlag{Name: "password-file", Usage: "read the password from the first line of this file (else PYVNODE_PASSWORD, else a prompt)"},
		&ucli.StringFlag{Name: "totp", Usage: "the current one-time code (else a prompt when the node asks for one)"},
		&ucli.BoolFlag{Name: "json", Usage: "print results as JSON"},
		&ucli.StringFlag{Name: "known-nodes", Usage: "trust-on-first-use file (default: user config dir/pyvnode/known_nodes)", EnvVars: []string{"PYVNODE_KNOWN_NODES"}},
		&ucli.BoolFlag{Name: "accept-new-key", Usage: "accept and remember a node identity that changed"},
		&ucli.StringFlag{Name: "expect-node", Usage: "refuse any node but this one (node id, 64 hex digits)"},
	}
}

// session is a connected (and maybe logged-in) client for one command.
type clientSession struct {
	*protocol.Client
	c    *ucli.Context
	json bool
}

// connect dials the node and logs in when --user is given or needLogin.
func connect(c *ucli.Context, needLogin bool) (*clientSession, error) {
	opts := protocol.Options{
		KnownNodes: c.String("known-nodes"), AcceptNewKey: c.Bool("accept-new-key"),
		Software: "pyvnode-cli/" + Version,
		OnNewNode: func(addr string, n protocol.ServerIdentity, replaced *ledger.NodeID) {
			if replaced != nil {
				fmt.Fprintf(env(c).Stderr, "warning: %s changed identity from %s to %s (%s); accepted as asked\n", addr, replaced.Short(), n.Node.Short(), n.Node.Fingerprint())
				return
			}
			fmt.Fprintf(env(c).Stderr, "first contact with %s: node %s, network %q, fingerprint %s; remembered\n", addr, n.Node, n.Network, n.Node.Fingerprint())
		},
	}
	if s := c.String("expect-node"); s != "" {
		id, err := ledger.ParseNodeID(s)
		if err != nil {
			return nil, usagef("--expect-node: %v", err)
		}
		opts.ExpectNode = &id
	}
	user := c.String("user")
	if needLogin && user == "" {
		return nil, usagef("%s needs a login: give --user NAME (or PYVNODE_USER)", c.Command.HelpName)
	}
	cl, err := protocol.Dial(c.Context, c.String("server"), opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.String("server"), err)
	}
	s := &clientSession{Client: cl, c: c, json: c.Bool("json")}
	if user != "" {
		if err := s.login(user); err != nil {
			cl.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *clientSession) login(user string) error {
	pw, err := password(s.c, "password", "PYVNODE_PASSWORD", "password-file", "Password for "+user+": ")
	if err != nil {
		return err
	}
	args := map[string]string{"user": user, "password": pw}
	if code := s.c.String("totp"); code != "" {
		args["code"] = code
	}
	var lr protocol.LoginResult
	err = s.Call(s.c.Context, "login", args, &lr)
	if errors.Is(err, protocol.ErrCodeRequired) {
		code, perr := prompt(s.c, "One-time code: ", false)
		if perr != nil {
			return fmt.Errorf("%v: give --totp CODE", err)
		}
		args["code"] = code
		err = s.Call(s.c.Context, "login", args, &lr)
	}
	if err != nil {
		return fmt.Errorf("login as %s: %w", user, err)
	}
	if lr.MustChange && s.c.Command.Name != "passwd" {
		return fmt.Errorf("%s must change the one-time password first: pyvnode client --user %s passwd", user, user)
	}
	return nil
}

// password reads a secret from a file flag, an environment variable or a
// terminal prompt, in that order.
func password(c *ucli.Context, what, envVar, fileFlag, promptText string) (string, error) {
	if f := c.String(fileFlag); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("--%s: %w", fileFlag, err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	}
	if v, ok := os.LookupEnv(envVar); ok {
		return v, nil
	}
	pw, err := prompt(c, promptText, true)
	if err != nil {
		return "", usagef("no %s: give --%s FILE or %s, or run on a terminal", what, fileFlag, envVar)
	}
	return pw, nil
}

// prompt asks on the terminal; it fails when stdin is not one.
func prompt(c *ucli.Context, text string, secret bool) (string, error) {
	in, ok := env(c).Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", errors.New("not a terminal")
	}
	fmt.Fprint(env(c).Stderr, text)
	if secret {
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(env(c).Stderr)
		return string(b), err
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	return strings.TrimSpace(line), err
}

// call runs one command and prints its result: as JSON with --json,
// otherwise through show.
func (s *clientSession) call(cmd string, args, result any, show func(w io.Writer)) error {
	if err := s.Call(s.c.Context, cmd, args, result); err != nil {
		return err
	}
	return s.print(result, show)
}

func (s *clientSession) print(result any, show func(w io.Writer)) error {
	if s.json {
		if result == nil {
			result = struct{}{}
		}
		return writeJSON(env(s.c).Stdout, result)
	}
	if show != nil {
		show(env(s.c).Stdout)
	}
	return nil
}

// clientAction makes the action of a client subcommand: check the
// arguments, connect (and log in), run fn, close.
func clientAction(min, max int, needLogin bool, fn func(s *clientSession) error) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if err := wantArgs(c, min, max); err != nil {
			return err
		}
		s, err := connect(c, needLogin)
		if err != nil {
			return err
		}
		defer s.Close()
		return fn(s)
	}
}

// showEnrollment prints a TOTP enrolment: URI and, on a terminal, QR code.
func showEnrollment(w io.Writer, e *accounts.Enrollment) {
	if e == nil {
		return
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintln(w, "Scan with an authenticator app:")
		qrterminal.GenerateHalfBlock(e.URI, qrterminal.L, w)
	}
	fmt.Fprintf(w, "totp         %s\n", e.URI)
}

func clientCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "client",
		Usage: "talk to a running node over the encrypted client protocol",
		Description: "Every command of docs/PROTOCOL.md. Reading the chain needs no login; writing needs\n" +
			"--user with the writer role, administration the admin role. The node's identity is\n" +
			"remembered on first contact and checked on every later one.",
		Flags: clientFlags(),
		Subcommands: append(append(append(
			sessionCommands(), recordCommands()...), fileCommands()...), adminCommands()...),
	}
}
