// Package testnet runs a local pyvnode network: N real node processes on
// loopback, one genesis, peered with each other. 'pyvnode testnet' is
// built on it, and so are the tests that need real processes: start, stop,
// kill and restart a node, cut the network into groups and heal it, wait
// until every node holds the same records.
package testnet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pyvnode/pyvnode/internal/fsutil"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/p2p"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/protocol/accounts"
)

// ClusterFile is the name of the file that describes a testnet.
const ClusterFile = "cluster.json"

// Options describe a testnet to start.
type Options struct {
	// Nodes is how many nodes to run. Default 3.
	Nodes int
	// Dir holds the testnet: DIR/cluster.json, DIR/genesis.json and a data
	// directory per node (DIR/node1 ...).
	Dir string
	// Command runs pyvnode: the executable and any arguments before the
	// pyvnode arguments. Default: this program (os.Executable()).
	Command []string
	// Env is added to the environment of the node processes.
	Env []string
	// Topology is "mesh" (default: every node dials every other) or "ring"
	// (each node dials the next; the last dials the first).
	Topology string
	// Network names the testnet's network. Default "testnet".
	Network string
	// PowBits is the proof of work of the genesis. Default 8.
	PowBits int
	// SyncInterval is each node's reconciliation period. Default 5 s.
	SyncInterval time.Duration
	// Wait bounds how long Up and Start wait for nodes. Default 60 s.
	Wait time.Duration
	// ExtraArgs are added to every node's 'serve' command line.
	ExtraArgs []string
}

func (o *Options) setDefaults() error {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 64 {
		return fmt.Errorf("testnet: %d nodes; want 1 to 64", o.Nodes)
	}
	if o.Dir == "" {
		return errors.New("testnet: no directory given")
	}
	if len(o.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Command = []string{exe}
	}
	switch o.Topology {
	case "":
		o.Topology = "mesh"
	case "mesh", "ring":
	default:
		return fmt.Errorf("testnet: topology %q; want mesh or ring", o.Topology)
	}
	if o.Network == "" {
		o.Network = "testnet"
	}
	if o.PowBits == 0 {
		o.PowBits = 8
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = 5 * time.Second
	}
	if o.Wait == 0 {
		o.Wait = 60 * time.Second
	}
	return nil
}

// Node describes one node of a testnet (an entry of cluster.json).
type Node struct {
	Name              string   `json:"name"`
	DataDir           string   `json:"data_dir"`
	ClientAddr        string   `json:"client_addr"`
	P2PAddrs          []string `json:"p2p_addrs"` // with /p2p/<peer id>
	HTTPAddr          string   `json:"http_addr"` // control panel and read API
	NodeID            string   `json:"node_id"`
	PeerID            string   `json:"peer_id"`
	AdminPasswordFile string   `json:"admin_password_file"`
	LogFile           string   `json:"log_file"`
	PID               int      `json:"pid"`
	Args              []string `json:"args"` // the command line that runs it

	proc *exec.Cmd
	done chan struct{}
}

// File is the content of cluster.json.
type File struct {
	Network  string    `json:"network"`
	Genesis  string    `json:"genesis"`
	Topology string    `json:"topology"`
	Created  time.Time `json:"created"`
	Nodes    []*Node   `json:"nodes"`
}

// Cluster is a running (or described) testnet.
type Cluster struct {
	Dir     string
	File    File
	opts    Options
	mu      sync.Mutex
	clients map[int]*protocol.Client
}

// Up creates a testnet in opts.Dir, starts every node and returns once
// each is serving and connected to the peers it dials.
func Up(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, ClusterFile)); err == nil {
		return nil, fmt.Errorf("testnet: %s already holds a testnet (run 'pyvnode testnet down --dir %s' first, or pick another directory)", dir, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	g := ledger.NewGenesis(opts.Network)
	g.PowBits = opts.PowBits
	if err := g.Validate(); err != nil {
		return nil, err
	}
	gpath := filepath.Join(dir, "genesis.json")
	if err := g.Save(gpath); err != nil {
		return nil, err
	}
	ports, err := freePorts(3 * opts.Nodes)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, opts: opts, File: File{Network: g.Network, Genesis: gpath, Topology: opts.Topology, Created: time.Now().UTC()}}
	for i := range opts.Nodes {
		nd, err := prepare(dir, i, g, ports[3*i], ports[3*i+1], ports[3*i+2])
		if err != nil {
			return nil, err
		}
		c.File.Nodes = append(c.File.Nodes, nd)
	}
	for i, nd := range c.File.Nodes {
		nd.Args = []string{"serve", "--data", nd.DataDir, "--listen", nd.ClientAddr, "--http", nd.HTTPAddr, "--dev",
			"--p2p-listen", strings.Split(nd.P2PAddrs[0], "/p2p/")[0],
			"--sync-interval", opts.SyncInterval.String()}
		for _, j := range c.dials(i) {
			nd.Args = append(nd.Args, "--peer", c.File.Nodes[j].P2PAddrs[0])
		}
		nd.Args = append(nd.Args, opts.ExtraArgs...)
	}
	for i := range c.File.Nodes {
		if err := c.spawn(i); err != nil {
			c.Down(context.Background())
			return nil, err
		}
	}
	if err := c.save(); err != nil {
		c.Down(context.Background())
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, opts.Wait)
	defer cancel()
	for i := range c.File.Nodes {
		if err := c.waitReady(wctx, i, true); err != nil {
			c.Down(context.Background())
			return nil, err
		}
	}
	return c, nil
}

// dials lists the nodes node i dials.
func (c *Cluster) dials(i int) []int {
	n := len(c.File.Nodes)
	var out []int
	if c.File.Topology == "ring" {
		if n > 1 {
			out = append(out, (i+1)%n)
		}
		return out
	}
	for j := range n {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

// expectedPeers is how many peers node i has once the testnet is up.
func (c *Cluster) expectedPeers(i int) int {
	n := len(c.File.Nodes)
	if c.File.Topology == "ring" {
		return min(n-1, 2)
	}
	return n - 1
}

// prepare creates node i's data directory, identity and admin account.
func prepare(dir string, i int, g *ledger.Genesis, clientPort, p2pPort, httpPort int) (*Node, error) {
	name := fmt.Sprintf("node%d", i+1)
	data := filepath.Join(dir, name)
	id, _, _, err := node.Init(data, node.InitOptions{Genesis: g})
	if err != nil {
		return nil, err
	}
	st, err := node.OpenAccounts(data, g)
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 18)
	rand.Read(pw)
	password := base64.RawURLEncoding.EncodeToString(pw)
	if !st.HasUsers() {
		if _, err := st.Add("admin", accounts.Admin, password); err != nil {
			return nil, err
		}
	}
	pwFile := node.AdminPasswordPath(data)
	text := password + "\n\nThe password of user admin on this testnet node (first line).\n" +
		"Testnet nodes run with --dev: logins need no TOTP code.\n"
	if err := fsutil.WriteFileAtomic(pwFile, []byte(text), 0o600); err != nil {
		return nil, err
	}
	pid, err := p2p.PeerID(id)
	if err != nil {
		return nil, err
	}
	return &Node{
		Name: name, DataDir: data,
		ClientAddr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort)),
		P2PAddrs:          []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", p2pPort, pid)},
		HTTPAddr:          net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		NodeID:            id.ID().String(),
		PeerID:            pid.String(),
		AdminPasswordFile: pwFile,
		LogFile:           filepath.Join(data, "node.log"),
	}, nil
}

// freePorts finds loopback ports nobody listens on now.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// spawn starts node i's process, its output appended to its log file. The
// process gets its own process group, so it outlives the program that
// started it ('pyvnode testnet up' returns, the nodes keep running).
func (c *Cluster) spawn(i int) error {
	nd := c.File.Nodes[i]
	logf, err := os.OpenFile(nd.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append(append([]string{}, c.opts.Command[1:]...), nd.Args...)
	cmd := exec.Command(c.opts.Command[0], args...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = logf, logf, nil
	cmd.Env = append(os.Environ(), c.opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", nd.Name, err)
	}
	nd.proc, nd.PID, nd.done = cmd, cmd.Process.Pid, make(chan struct{})
	go func() {
		cmd.Wait()
		close(nd.done)
	}()
	return nil
}

func (c *Cluster) save() error {
	b, err := json.MarshalIndent(c.File, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(c.Dir, ClusterFile), append(b, '\n'), 0o600)
}

// Load reads a testnet's cluster.json (for status and down).
func Load(dir string) (*Cluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(abs, ClusterFile))
	if err != nil {
		return nil, fmt.Errorf("testnet: %w (is there a testnet in %s?)", err, abs)
	}
	c := &Cluster{Dir: abs}
	if err := json.Unmarshal(b, &c.File); err != nil {
		return nil, fmt.Errorf("testnet: %s: %w", filepath.Join(abs, ClusterFile), err)
	}
	return c, nil
}

// Nodes returns the nodes' descriptions.
func (c *Cluster) Nodes() []*Node { return c.File.Nodes }

// password reads a node's admin password.
func (nd *Node) password() (string, error) {
	b, err := os.ReadFile(nd.AdminPasswordFile)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}

// Client connects to node i and logs in as its admin.
func (c *Cluster) Client(ctx context.Context, i int) (*protocol.Client, error) {
	pw, err := c.File.Nodes[i].password()
	if err != nil {
		return nil, err
	}
	return c.ClientAs(ctx, i, "admin", pw)
}

// ClientAs connects to node i (its identity pinned) and logs in as user;
// an empty user stays logged out. The testnet runs with --dev: no TOTP.
func (c *Cluster) ClientAs(ctx context.Context, i int, user, password string) (*protocol.Client, error) {
	nd := c.File.Nodes[i]
	id, err := ledger.ParseNodeID(nd.NodeID)
	if err != nil {
		return nil, err
	}
	cl, err := protocol.Dial(ctx, nd.ClientAddr, protocol.Options{ExpectNode: &id, Software: "pyvnode-testnet", DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	if user == "" {
		return cl, nil
	}
	var lr protocol.LoginResult
	if err := cl.Call(ctx, "login", map[string]string{"user": user, "password": password}, &lr); err != nil {
		cl.Close()
		return nil, fmt.Errorf("%s: login as %s: %w", nd.Name, user, err)
	}
	return cl, nil
}

// Status is what one node says of itself.
type Status struct {
	Node    *Node
	Up      bool
	Err     string
	Status  protocol.StatusResult
	Network protocol.NetworkStatus
}

// Status asks node i for its status and its network side's.
func (c *Cluster) Status(ctx context.Context, i int) Status {
	st := Status{Node: c.File.Nodes[i]}
	if err := c.call(ctx, i, "status", nil, &st.Status); err != nil {
		st.Err = err.Error()
		return st
	}
	if err := c.call(ctx, i, "peer.status", nil, &st.Network); err != nil {
		st.Err = err.Error()
		return st
	}
	st.Up = true
	return st
}

func readyPeers(ns protocol.NetworkStatus) int {
	k := 0
	for _, p := range ns.Peers {
		if p.Ready {
			k++
		}
	}
	return k
}

// waitReady waits until node i serves clients and, when connected is set,
// has every peer it should have.
func (c *Cluster) waitReady(ctx context.Context, i int, connected bool) error {
	nd := c.File.Nodes[i]
	var last string
	for {
		if nd.done != nil {
			select {
			case <-nd.done:
				return fmt.Errorf("%s exited during start; see %s:\n%s", nd.Name, nd.LogFile, tail(nd.LogFile, 20))
			default:
			}
		}
		st := c.Status(ctx, i)
		if st.Up {
			if !connected || readyPeers(st.Network) >= c.expectedPeers(i) {
				return nil
			}
			last = fmt.Sprintf("%d of %d peers connected", readyPeers(st.Network), c.expectedPeers(i))
		} else {
			last = st.Err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (%s); see %s", nd.Name, last, nd.LogFile)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Stop stops node i cleanly (SIGTERM), waiting up to 30 s before killing it.
func (c *Cluster) Stop(i int) error { return c.signal(i, syscall.SIGTERM, 30*time.Second) }

// Kill kills node i at once (SIGKILL): no clean shutdown.
func (c *Cluster) Kill(i int) error { return c.signal(i, syscall.SIGKILL, 10*time.Second) }

func (c *Cluster) signal(i int, sig syscall.Signal, wait time.Duration) error {
	c.dropClient(i)
	nd := c.File.Nodes[i]
	if nd.done != nil {
		select {
		case <-nd.done: // exited and reaped: its pid may be another's now
			nd.PID = 0
			return nil
		default:
		}
	}
	if nd.PID == 0 || !c.ours(nd) {
		nd.PID = 0
		return nil
	}
	send := func(s syscall.Signal) {
		if nd.proc != nil {
			nd.proc.Process.Signal(s) // by pidfd where the system has them
		} else {
			syscall.Kill(nd.PID, s)
		}
	}
	send(sig)
	deadline := time.Now().Add(wait)
	for c.alive(nd) {
		if time.Now().After(deadline) {
			if sig == syscall.SIGKILL {
				return fmt.Errorf("%s (pid %d) does not die", nd.Name, nd.PID)
			}
			send(syscall.SIGKILL)
			sig, deadline = syscall.SIGKILL, time.Now().Add(10*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	nd.PID = 0
	return nil
}

// alive says whether node's process still runs.
func (c *Cluster) alive(nd *Node) bool {
	if nd.done != nil {
		select {
		case <-nd.done:
			return false
		default:
			return true
		}
	}
	// Not our child: it was checked to be the node's before it was
	// signalled. While it exits its command line reads empty, so only ask
	// whether the pid still runs (a zombie has finished).
	return syscall.Kill(nd.PID, 0) == nil && !zombie(nd.PID)
}

// zombie says whether a process has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	st := b[i+2]
	return st == 'Z' || st == 'X'
}

// ours checks, where the system tells, that a pid is still the node's
// process and not another that reused the number.
func (c *Cluster) ours(nd *Node) bool {
	if nd.done != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", nd.PID))
	if err != nil {
		return syscall.Kill(nd.PID, 0) == nil && !errors.Is(err, os.ErrNotExist)
	}
	return strings.Contains(string(b), nd.DataDir)
}

// Start starts node i again and waits until it serves clients.
func (c *Cluster) Start(ctx context.Context, i int) error {
	if c.opts.Command == nil {
		return errors.New("testnet: only the program that started the testnet can start its nodes")
	}
	if err := c.spawn(i); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, c.opts.Wait)
	defer cancel()
	return c.waitReady(wctx, i, false)
}

// Restart stops node i cleanly and starts it again.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.Stop(i); err != nil {
		return err
	}
	return c.Start(ctx, i)
}

// Down stops every node (SIGTERM, then SIGKILL after 30 s) and removes
// cluster.json; the data directories stay.
func (c *Cluster) Down(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.File.Nodes))
	for i := range c.File.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Stop(i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(c.Dir, ClusterFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// call runs one admin command on node i, on a session kept open for the
// next call (a login costs an Argon2id hash).
func (c *Cluster) call(ctx context.Context, i int, cmd string, args, res any) error {
	c.mu.Lock()
	cl := c.clients[i]
	c.mu.Unlock()
	if cl == nil {
		var err error
		if cl, err = c.Client(ctx, i); err != nil {
			return err
		}
		c.mu.Lock()
		if c.clients == nil {
			c.clients = map[int]*protocol.Client{}
		}
		if old := c.clients[i]; old != nil {
			old.Close()
		}
		c.clients[i] = cl
		c.mu.Unlock()
	}
	err := cl.Call(ctx, cmd, args, res)
	var pe *protocol.Error
	if err != nil && !errors.As(err, &pe) {
		c.dropClient(i) // the session broke: the next call opens another
	}
	return err
}

func (c *Cluster) dropClient(i int) {
	c.mu.Lock()
	if cl := c.clients[i]; cl != nil {
		cl.Close()
		delete(c.clients, i)
	}
	c.mu.Unlock()
}

// Partition cuts the libp2p connections between the groups (node indexes)
// and keeps them cut: each node blocks every node of the other groups.
func (c *Cluster) Partition(ctx context.Context, groups ...[]int) error {
	group := map[int]int{}
	for g, members := range groups {
		for _, i := range members {
			group[i] = g
		}
	}
	for i := range c.File.Nodes {
		for j := range c.File.Nodes {
			gi, ok1 := group[i]
			gj, ok2 := group[j]
			if i == j || !ok1 || !ok2 || gi == gj {
				continue
			}
			if err := c.call(ctx, i, "peer.block", map[string]string{"peer": c.File.Nodes[j].PeerID}, nil); err != nil {
				return fmt.Errorf("%s: block %s: %w", c.File.Nodes[i].Name, c.File.Nodes[j].Name, err)
			}
		}
	}
	return nil
}

// Heal lifts every block Partition made; the nodes reconnect and reconcile.
func (c *Cluster) Heal(ctx context.Context) error {
	for i := range c.File.Nodes {
		for j := range c.File.Nodes {
			if i == j {
				continue
			}
			if err := c.call(ctx, i, "peer.unblock", map[string]string{"peer": c.File.Nodes[j].PeerID}, nil); err != nil {
				return fmt.Errorf("%s: unblock %s: %w", c.File.Nodes[i].Name, c.File.Nodes[j].Name, err)
			}
		}
	}
	return nil
}

// Put makes a record on node i (as its admin) and returns its id.
func (c *Cluster) Put(ctx context.Context, i int, kind string, payload any) (ledger.ID, error) {
	var r protocol.PutResult
	err := c.call(ctx, i, "put", map[string]any{"kind": kind, "payload": payload}, &r)
	return r.ID, err
}

// Digest is node i's record-set size and fingerprint.
func (c *Cluster) Digest(ctx context.Context, i int) (int, string, error) {
	var ns protocol.NetworkStatus
	if err := c.call(ctx, i, "peer.status", nil, &ns); err != nil {
		return 0, "", err
	}
	return ns.SetSize, ns.SetFingerprint, nil
}

// WaitConverged waits until the given nodes (all when none are given)
// hold the same record set, of at least min records, and returns its size.
func (c *Cluster) WaitConverged(ctx context.Context, atLeast int, nodes ...int) (int, error) {
	if len(nodes) == 0 {
		for i := range c.File.Nodes {
			nodes = append(nodes, i)
		}
	}
	var last string
	for {
		sizes := map[string]int{}
		var parts []string
		ok := true
		for _, i := range nodes {
			size, fp, err := c.Digest(ctx, i)
			if err != nil {
				ok = false
				parts = append(parts, fmt.Sprintf("%s: %v", c.File.Nodes[i].Name, err))
				continue
			}
			sizes[fp] = size
			parts = append(parts, fmt.Sprintf("%s: %d", c.File.Nodes[i].Name, size))
		}
		last = strings.Join(parts, ", ")
		if ok && len(sizes) == 1 {
			for _, size := range sizes {
				if size >= atLeast {
					return size, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("testnet: not converged (%s): %w", last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Call runs one command on node i as its admin.
func (c *Cluster) Call(ctx context.Context, i int, cmd string, args, res any) error {
	return c.call(ctx, i, cmd, args, res)
}

// Verify has node i verify its whole chain.
func (c *Cluster) Verify(ctx context.Context, i int) (protocol.VerifyResult, error) {
	var r protocol.VerifyResult
	err := c.call(ctx, i, "verify", nil, &r)
	return r, err
}
