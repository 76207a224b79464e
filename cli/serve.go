package cli

import (
	"log/slog"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pyvnode/pyvnode/p2p"

	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/nodelog"
	"github.com/pyvnode/pyvnode/web"
	ucli "github.com/urfave/cli/v2"
)

func serveCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "serve",
		Usage: "run the node (initialises the data directory on first start)",
		Description: "With no flags, serve keeps its state in ./pyvnode-data, creating it on first start\n" +
			"(identity key, genesis of a one-node network, an admin account whose one-time password\n" +
			"is printed once and kept in DATA/admin-password), and serves the encrypted client\n" +
			"protocol on 127.0.0.1:6666, the control panel and read API on http://127.0.0.1:6680,\n" +
			"and libp2p replication on /ip4/127.0.0.1/tcp/6667, dialling\n" +
			"the --peer addresses and those in DATA/peers.json. SIGINT or SIGTERM stop it cleanly.",
		Flags: []ucli.Flag{
			dataFlag(),
			&ucli.StringFlag{Name: "listen", Value: node.DefaultListen, Usage: "client protocol address (\"-\" for none)", EnvVars: []string{"PYVNODE_LISTEN"}},
			&ucli.StringFlag{Name: "http", Value: web.DefaultListen, Usage: "control panel, read API and /metrics address (\"\" turns HTTP off)", EnvVars: []string{"PYVNODE_HTTP"}},
			&ucli.StringSliceFlag{Name: "http-host", Usage: "a host name the panel is reached by through a proxy, repeatable (loopback names are always accepted)", EnvVars: []string{"PYVNODE_HTTP_HOSTS"}},
			&ucli.BoolFlag{Name: "dev", Usage: "development mode: logins need no TOTP code"},
			&ucli.StringSliceFlag{Name: "p2p-listen", Value: ucli.NewStringSlice(p2p.DefaultListen), Usage: "libp2p listen multiaddr, repeatable (\"-\" turns replication off)", EnvVars: []string{"PYVNODE_P2P_LISTEN"}},
			&ucli.StringSliceFlag{Name: "peer", Usage: "peer to dial and keep connected, repeatable: /ip4/HOST/tcp/PORT/p2p/PEER-ID", EnvVars: []string{"PYVNODE_PEERS"}},
			&ucli.DurationFlag{Name: "sync-interval", Value: 30 * time.Second, Usage: "how often each peer is reconciled"},
			memoryLimitFlag(),
			&ucli.BoolFlag{Name: "log-files", Value: true, Usage: "also write the node and replication logs to DATA/logs, rotated (read them with 'pyvnode logs')"},
		},
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			if err := applyMemoryLimit(c); err != nil {
				return err
			}
			for _, a := range c.StringSlice("peer") {
				if _, err := peer.AddrInfoFromString(a); err != nil {
					return usagef("--peer %q: want /ip4/HOST/tcp/PORT/p2p/PEER-ID: %v", a, err)
				}
			}
			if a := c.String("http"); a != "" && a != "-" {
				if _, _, err := net.SplitHostPort(a); err != nil {
					return usagef("--http %q: want HOST:PORT, e.g. 127.0.0.1:6680 (\"\" turns HTTP off): %v", a, err)
				}
			}
			if c.Duration("sync-interval") < time.Second {
				return usagef("--sync-interval must be at least 1s")
			}
			logs, err := openLogs(c)
			if err != nil {
				return err
			}
			defer logs.Close()
			prev := slog.Default()
			slog.SetDefault(logs.Node)
			defer slog.SetDefault(prev)
			n, err := node.Start(c.Context, node.Config{
				DataDir: c.String("data"), Listen: c.String("listen"), HTTP: c.String("http"), HTTPHosts: c.StringSlice("http-host"), Dev: c.Bool("dev"),
				P2PListen: c.StringSlice("p2p-listen"), Peers: c.StringSlice("peer"), SyncInterval: c.Duration("sync-interval"),
				Version: Version, Out: env(c).Stdout,
				Logger: logs.Node, Replication: logs.Replication, LogHub: logs.Hub,
			})
			if err != nil {
				return err
			}
			return n.Run(c.Context)
		},
	}
}

// serveLogCapacity is how many recent entries the control panel can show.
const serveLogCapacity = 5000

// openLogs makes serve's node and replication loggers from the global
// --log-format and --log-level flags (already checked by the app's
// Before) and serve's --log-files.
func openLogs(c *ucli.Context) (*nodelog.Logs, error) {
	level, err := parseLevel(c.String("log-level"))
	if err != nil {
		return nil, err
	}
	return nodelog.Open(c.String("data"), serveLogCapacity, nodelog.Options{
		Stderr: env(c).Stderr, Format: c.String("log-format"), Level: level, NoFiles: !c.Bool("log-files"),
	})
}
