package protocol

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/flynn/noise"
	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	"github.com/pyvnode/pyvnode/protocol/files"
)

var update = flag.Bool("update", false, "rewrite testdata/transcript.json")

// detRand is a deterministic byte stream: SHA-256(label || counter).
type detRand struct {
	label string
	n     uint64
	buf   []byte
	reads []string // what each Read returned, in hex: the private keys made
}

func (r *detRand) Read(p []byte) (int, error) {
	defer func() { r.reads = append(r.reads, hex.EncodeToString(p)) }()
	for len(r.buf) < len(p) {
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], r.n)
		r.n++
		sum := sha256.Sum256(append([]byte(r.label), c[:]...))
		r.buf = append(r.buf, sum[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// recorder keeps what crosses a connection, one entry per Write.
type recorder struct {
	net.Conn
	mu     sync.Mutex
	events *[]Event
	dir    string
}

// Event is one write on the wire in the transcript.
type Event struct {
	Dir  string `json:"dir"` // "c2s" or "s2c"
	What string `json:"what"`
	Hex  string `json:"hex"`
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	*r.events = append(*r.events, Event{Dir: r.dir, Hex: hex.EncodeToString(b)})
	r.mu.Unlock()
	return r.Conn.Write(b)
}

type fakeBackend struct {
	id *ledger.Identity
	g  *ledger.Genesis
	st *ledger.Store
}

func (f *fakeBackend) Identity() *ledger.Identity { return f.id }
func (f *fakeBackend) Genesis() *ledger.Genesis   { return f.g }
func (f *fakeBackend) Store() *ledger.Store       { return f.st }
func (f *fakeBackend) Put(ctx context.Context, kind string, payload cbor.RawMessage, author string) (*ledger.SignedRecord, ledger.Entry, error) {
	panic("not used")
}

type noPeers struct{}

func (noPeers) List() []string      { return nil }
func (noPeers) Add(string) error    { return nil }
func (noPeers) Remove(string) error { return nil }

// Transcript is the recorded session docs/PROTOCOL.md shows.
type Transcript struct {
	NodeSeed        string  `json:"node_seed"`
	NodeID          string  `json:"node_id"`
	ServerStatic    string  `json:"server_static_public"`
	ClientStatic    string  `json:"client_static_public"`
	StaticSignature string  `json:"static_signature"`
	ServerHello     string  `json:"server_hello_payload"`
	ClientHello     string  `json:"client_hello_payload"`
	HandshakeHash   string  `json:"handshake_hash"`
	Events          []Event `json:"events"`
	Plain           []Event `json:"plaintexts"`
	RekeyC2S        string  `json:"rekey_c2s_key"`
	RekeyS2C        string  `json:"rekey_s2c_key"`
	RekeyCK         string  `json:"rekey_chaining_key"`
	// The private keys, in the order each side drew them: static,
	// handshake ephemeral, rekey ephemeral.
	ServerPrivate []string `json:"server_private_keys"`
	ClientPrivate []string `json:"client_private_keys"`
}

func transcript(t *testing.T) *Transcript {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	id := &ledger.Identity{Key: ed25519.NewKeyFromSeed(seed)}
	g := ledger.NewGenesis("vectors")
	g.PowBits = 0
	dir := t.TempDir()
	st, err := ledger.Open(ledger.Options{Dir: dir + "/chain", Genesis: g, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acc, _ := accounts.Open(dir+"/users.json", accounts.Options{})
	fs, _ := files.Open(dir+"/files", func(string) int64 { return 0 })
	srvRand := &detRand{label: "server"}
	srv, err := NewServer(Config{Backend: &fakeBackend{id, g, st}, Accounts: acc, Files: fs, Peers: noPeers{},
		Version: "vectors", Rand: srvRand, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var events []Event
	cn, sn := net.Pipe()
	go srv.handle(&recorder{Conn: sn, events: &events, dir: "s2c"})

	cliRand := &detRand{label: "client"}
	static, _ := noise.DH25519.GenerateKeypair(cliRand)
	conn, err := ClientHandshake(&recorder{Conn: cn, events: &events, dir: "c2s"}, HandshakeConfig{Rand: cliRand, Static: static, Software: "vectors"})
	if err != nil {
		t.Fatal(err)
	}
	var plain []Event
	conn.trace = func(sent bool, msg []byte) {
		d := "s2c"
		if sent {
			d = "c2s"
		}
		plain = append(plain, Event{Dir: d, Hex: hex.EncodeToString(msg)})
	}
	c := newClient(conn, "pipe")
	c.rand = cliRand
	defer c.Close()
	ctx := context.Background()
	call := func(cmd string, args any) {
		var out any
		err := c.Call(ctx, cmd, args, &out)
		if err != nil && cmd != "put" {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	call("id", nil)
	call("head", nil)
	call("put", map[string]any{"kind": "note.text", "payload": map[string]any{"text": "hi"}}) // refused: not logged in
	if err := c.Rekey(ctx); err != nil {
		t.Fatal(err)
	}
	call("head", nil)

	// Label the wire events.
	labels := []string{"handshake 1 (e)", "handshake 2 (e, ee, s, es, server hello)", "handshake 3 (s, se, client hello)",
		"request 1: id", "response 1", "request 2: head", "response 2", "request 3: put (anonymous)", "response 3: unauthorized",
		"request 4: rekey", "response 4: rekey", "request 5: head (new keys)", "response 5 (new keys)"}
	if len(events) != len(labels) {
		t.Fatalf("%d wire events, want %d", len(events), len(labels))
	}
	for i := range events {
		events[i].What = labels[i]
	}
	if len(plain) != len(labels)-3 {
		t.Fatalf("%d plaintext messages, want %d", len(plain), len(labels)-3)
	}
	for i := range plain {
		plain[i].What = labels[i+3]
	}
	sk := srv.static
	var sh serverHello
	decMode.Unmarshal(sk.hello, &sh)
	tr := &Transcript{
		NodeSeed: hex.EncodeToString(seed), NodeID: id.ID().String(),
		ServerStatic: hex.EncodeToString(sk.Key.Public), ClientStatic: hex.EncodeToString(static.Public),
		StaticSignature: hex.EncodeToString(sh.Sig), ServerHello: hex.EncodeToString(sk.hello),
		ClientHello:   hex.EncodeToString(mustEncode(clientHello{Version: Version, Software: "vectors"})),
		HandshakeHash: hex.EncodeToString(conn.ChannelBinding), Events: events, Plain: plain,
	}
	tr.RekeyCK = hex.EncodeToString(conn.ck[:])
	tr.ServerPrivate, tr.ClientPrivate = srvRand.reads, cliRand.reads
	tr.RekeyC2S = hex.EncodeToString(func() []byte { k := conn.send.UnsafeKey(); return k[:] }())
	tr.RekeyS2C = hex.EncodeToString(func() []byte { k := conn.recv.UnsafeKey(); return k[:] }())
	return tr
}

// TestTranscript replays a whole session with fixed keys and compares every
// byte with testdata/transcript.json and with docs/PROTOCOL.md.
func TestTranscript(t *testing.T) {
	got := transcript(t)
	path := "testdata/transcript.json"
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want Transcript
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Fatalf("transcript changed (go test ./protocol -run TestTranscript -update if intended, then update docs/PROTOCOL.md):\n got %s\nwant %s", gj, wj)
	}
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(wj, &m)
	var check func(name string, v any)
	check = func(name string, v any) {
		switch x := v.(type) {
		case string:
			if len(x) >= 16 && !strings.Contains(string(doc), x) {
				t.Errorf("docs/PROTOCOL.md does not quote %s: %s", name, x)
			}
		case []any:
			for _, e := range x {
				check(name, e)
			}
		case map[string]any:
			if h, ok := x["hex"].(string); ok {
				check(name+"."+x["what"].(string), h)
			}
		}
	}
	for k, v := range m {
		check(k, v)
	}
}
