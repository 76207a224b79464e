package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pyvnode/pyvnode/testnet"
	ucli "github.com/urfave/cli/v2"
)

func testnetCommand() *ucli.Command {
	dirFlag := &ucli.StringFlag{Name: "dir", Value: "pyvnode-testnet", Usage: "directory of the testnet (cluster.json, genesis, one data directory per node)"}
	return &ucli.Command{
		Name:  "testnet",
		Usage: "run a local network of nodes on loopback",
		Subcommands: []*ucli.Command{
			{
				Name:  "up",
				Usage: "start N nodes of one new network in the background, peered with each other",
				Description: "Creates DIR with one genesis and a data directory per node, starts each node as its own\n" +
					"process on 127.0.0.1 (client protocol and libp2p on free ports, --dev so logins need no\n" +
					"TOTP code), waits until every node is up and connected, writes DIR/cluster.json and\n" +
					"returns. The nodes keep running until 'pyvnode testnet down'.",
				Flags: []ucli.Flag{
					dirFlag,
					&ucli.IntFlag{Name: "nodes", Aliases: []string{"n"}, Value: 3, Usage: "how many nodes (1-64)"},
					&ucli.StringFlag{Name: "topology", Value: "mesh", Usage: "mesh (every node dials every other) or ring"},
					&ucli.StringFlag{Name: "network", Value: "testnet", Usage: "network name of the new genesis"},
					&ucli.IntFlag{Name: "pow-bits", Value: 8, Usage: "proof of work of the new genesis"},
					&ucli.DurationFlag{Name: "sync-interval", Value: 5 * time.Second, Usage: "each node's reconciliation period"},
					&ucli.BoolFlag{Name: "json", Usage: "print cluster.json instead of a table"},
				},
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 0, 0); err != nil {
						return err
					}
					if n := c.Int("nodes"); n < 1 || n > 64 {
						return usagef("--nodes must be 1 to 64")
					}
					if t := c.String("topology"); t != "mesh" && t != "ring" {
						return usagef("--topology must be mesh or ring")
					}
					if c.Duration("sync-interval") < time.Second {
						return usagef("--sync-interval must be at least 1s")
					}
					cl, err := testnet.Up(c.Context, testnet.Options{
						Nodes: c.Int("nodes"), Dir: c.String("dir"), Topology: c.String("topology"),
						Network: c.String("network"), PowBits: c.Int("pow-bits"), SyncInterval: c.Duration("sync-interval"),
					})
					if err != nil {
						return err
					}
					out := env(c).Stdout
					if c.Bool("json") {
						return printJSON(out, cl.File)
					}
					fmt.Fprintf(out, "testnet %q up in %s: %d nodes (%s)\n\n", cl.File.Network, cl.Dir, len(cl.Nodes()), cl.File.Topology)
					printCluster(out, cl)
					n1 := cl.Nodes()[0]
					fmt.Fprintf(out, "\nTry:\n  pyvnode client --server %s --user admin --password-file %s put note.text '{\"text\":\"hello\"}'\n",
						n1.ClientAddr, n1.AdminPasswordFile)
					fmt.Fprintf(out, "  pyvnode testnet status --dir %s\n  pyvnode testnet down --dir %s\n", cl.Dir, cl.Dir)
					return nil
				},
			},
			{
				Name:  "status",
				Usage: "each node's height, record count, peers and record-set fingerprint",
				Flags: []ucli.Flag{dirFlag, &ucli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 0, 0); err != nil {
						return err
					}
					cl, err := testnet.Load(c.String("dir"))
					if err != nil {
						return err
					}
					type row struct {
						Name       string `json:"name"`
						Up         bool   `json:"up"`
						Error      string `json:"error,omitempty"`
						ClientAddr string `json:"client_addr"`
						PeerID     string `json:"peer_id"`
						Height     uint64 `json:"height"`
						Records    int    `json:"records"`
						Peers      int    `json:"peers"`
						SetFP      string `json:"set_fingerprint"`
					}
					var rows []row
					for i, nd := range cl.Nodes() {
						st := cl.Status(c.Context, i)
						r := row{Name: nd.Name, Up: st.Up, Error: st.Err, ClientAddr: nd.ClientAddr, PeerID: nd.PeerID}
						if st.Up {
							r.Height, r.Records, r.Peers, r.SetFP = st.Status.Height, st.Network.SetSize, st.Status.Peers, st.Network.SetFingerprint
						}
						rows = append(rows, r)
					}
					out := env(c).Stdout
					if c.Bool("json") {
						return printJSON(out, rows)
					}
					tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "NODE\tSTATE\tHEIGHT\tRECORDS\tPEERS\tRECORD SET\tCLIENT")
					fps := map[string]bool{}
					for _, r := range rows {
						if !r.Up {
							fmt.Fprintf(tw, "%s\tdown\t-\t-\t-\t-\t%s\n", r.Name, r.ClientAddr)
							continue
						}
						fps[r.SetFP] = true
						fmt.Fprintf(tw, "%s\tup\t%d\t%d\t%d\t%s\t%s\n", r.Name, r.Height, r.Records, r.Peers, r.SetFP[:12], r.ClientAddr)
					}
					tw.Flush()
					switch len(fps) {
					case 0:
					case 1:
						fmt.Fprintln(out, "\nall running nodes hold the same records")
					default:
						fmt.Fprintf(out, "\nthe running nodes hold %d different record sets (still replicating, or partitioned)\n", len(fps))
					}
					return nil
				},
			},
			{
				Name:  "down",
				Usage: "stop every node of the testnet (the data directories stay)",
				Flags: []ucli.Flag{dirFlag},
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 0, 0); err != nil {
						return err
					}
					cl, err := testnet.Load(c.String("dir"))
					if err != nil {
						return err
					}
					if err := cl.Down(c.Context); err != nil {
						return err
					}
					fmt.Fprintf(env(c).Stdout, "stopped %d nodes; data kept in %s\n", len(cl.Nodes()), cl.Dir)
					return nil
				},
			},
		},
	}
}

func printCluster(w io.Writer, cl *testnet.Cluster) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCLIENT\tPANEL\tP2P\tNODE ID\tADMIN PASSWORD FILE")
	for _, nd := range cl.Nodes() {
		panel := "-"
		if nd.HTTPAddr != "" {
			panel = "http://" + nd.HTTPAddr + "/"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", nd.Name, nd.ClientAddr, panel, strings.Join(nd.P2PAddrs, " "), nd.NodeID[:16], nd.AdminPasswordFile)
	}
	tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
