package cli

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
	ucli "github.com/urfave/cli/v2"
)

func initCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "init",
		Usage: "create a data directory: identity key and network genesis",
		Description: "Creates DIR/node.key (unless it exists) and DIR/genesis.json. To start a new network\n" +
			"give --network and its rules; to join an existing one give --genesis with the file\n" +
			"the other nodes use.",
		Flags: []ucli.Flag{
			dataFlag(),
			&ucli.StringFlag{Name: "network", Value: node.DefaultNetwork, Usage: "name of a new network"},
			&ucli.IntFlag{Name: "pow-bits", Value: ledger.DefaultPowBits, Usage: "leading zero bits every record id needs (0-32)"},
			&ucli.IntFlag{Name: "replication-limit", Value: ledger.DefaultReplicationLimit, Usage: "re-publish reconciled records while their replication count is below this"},
			&ucli.StringSliceFlag{Name: "originator", Usage: "KIND=NODEID: only the listed nodes may originate KIND (or PREFIX.*); repeatable"},
			&ucli.StringFlag{Name: "genesis", Usage: "join the network of this genesis file instead of starting a new one"},
			&ucli.StringFlag{Name: "key", Usage: "install this key file (from 'pyvnode keygen --out') instead of generating one"},
		},
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			g, err := genesisFromFlags(c)
			if err != nil {
				return err
			}
			var id *ledger.Identity
			if k := c.String("key"); k != "" {
				if id, err = ledger.LoadIdentity(k); err != nil {
					return err
				}
			}
			dir := c.String("data")
			id, g, _, err = node.Init(dir, node.InitOptions{Genesis: g, Identity: id})
			if err != nil {
				return err
			}
			gh := g.Hash()
			out := env(c).Stdout
			fmt.Fprintf(out, "data directory  %s\n", dir)
			fmt.Fprintf(out, "network         %s (genesis %x)\n", g.Network, gh[:])
			fmt.Fprintf(out, "proof of work   %d bits\n", g.PowBits)
			fmt.Fprintf(out, "node id         %s\n", id.ID())
			fmt.Fprintf(out, "fingerprint     %s\n", id.ID().Fingerprint())
			return nil
		},
	}
}

func genesisFromFlags(c *ucli.Context) (*ledger.Genesis, error) {
	if path := c.String("genesis"); path != "" {
		for _, f := range []string{"network", "pow-bits", "replication-limit", "originator"} {
			if c.IsSet(f) {
				return nil, usagef("--genesis and --%s exclude each other: the genesis file fixes the network's rules", f)
			}
		}
		return ledger.LoadGenesis(path)
	}
	g := ledger.NewGenesis(c.String("network"))
	g.PowBits = c.Int("pow-bits")
	g.ReplicationLimit = c.Int("replication-limit")
	for _, o := range c.StringSlice("originator") {
		kind, ids, ok := strings.Cut(o, "=")
		if !ok {
			return nil, usagef("--originator %q: want KIND=NODEID[,NODEID...]", o)
		}
		if g.Originators == nil {
			g.Originators = map[string][]ledger.NodeID{}
		}
		for _, s := range strings.Split(ids, ",") {
			nid, err := ledger.ParseNodeID(strings.TrimSpace(s))
			if err != nil {
				return nil, usagef("--originator %q: %v", o, err)
			}
			g.Originators[kind] = append(g.Originators[kind], nid)
		}
	}
	if err := g.Validate(); err != nil {
		return nil, usageError{err.Error()}
	}
	return g, nil
}

func keygenCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "keygen",
		Usage: "create a node identity key and print its id and fingerprint",
		Flags: []ucli.Flag{
			dataFlag(),
			&ucli.StringFlag{Name: "out", Usage: "write the key to this file instead of DATA/node.key"},
		},
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			path := c.String("out")
			if path == "" {
				path = node.KeyPath(c.String("data"))
			}
			id, err := ledger.GenerateIdentity()
			if err != nil {
				return err
			}
			if err := id.Save(path); err != nil {
				return err
			}
			abs, _ := filepath.Abs(path)
			out := env(c).Stdout
			fmt.Fprintf(out, "key file     %s (mode 0600)\n", abs)
			fmt.Fprintf(out, "node id      %s\n", id.ID())
			fmt.Fprintf(out, "fingerprint  %s\n", id.ID().Fingerprint())
			return nil
		},
	}
}
