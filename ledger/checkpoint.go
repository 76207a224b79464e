package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a node's signed statement of its chain's tip, in the C2SP
// tlog-checkpoint form:
//
//	pyvnode/<network>/<node id hex>      origin: names this node's log
//	<size>                               decimal
//	<root>                               base64 Merkle root
//	link <hex>                           link of the last entry
//	time <RFC 3339 UTC>                  when the node signed it
//
// followed by a blank line and the signed-note signature line made with the
// node's Ed25519 identity key under the key name <origin>.
type Checkpoint struct {
	Network string
	Node    NodeID
	Size    uint64
	Root    Hash
	Link    Hash
	Time    time.Time
}

// CheckpointOrigin is the origin line of a node's checkpoints.
func CheckpointOrigin(network string, node NodeID) string {
	return "pyvnode/" + network + "/" + node.String()
}

// Text returns the checkpoint body (what the signature covers).
func (c *Checkpoint) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%d\n%s\n", CheckpointOrigin(c.Network, c.Node), c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
	fmt.Fprintf(&b, "link %s\ntime %s\n", c.Link, c.Time.UTC().Format(time.RFC3339Nano))
	return b.String()
}

// noteSigner adapts a node identity to the signed-note library: it builds
// the library's own encoded private key string from the Ed25519 seed, so
// hashing and signing are the library's.
func noteSigner(name string, key ed25519.PrivateKey) (note.Signer, error) {
	vkey, err := note.NewEd25519VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	// vkey is "<name>+<8 hex digits of key hash>+<base64(0x01 || public
	// key)>"; the base64 part may itself contain '+'.
	hash := vkey[len(name)+1 : len(name)+9]
	skey := "PRIVATE+KEY+" + name + "+" + hash + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...))
	return note.NewSigner(skey)
}

// NoteVerifierKey returns the signed-note verifier key for a node's
// checkpoints on a network ("<origin>+<hash>+<key>"), for tools that speak
// signed notes.
func NoteVerifierKey(network string, node NodeID) (string, error) {
	return note.NewEd25519VerifierKey(CheckpointOrigin(network, node), ed25519.PublicKey(node[:]))
}

// SignCheckpoint signs the checkpoint with the node's identity; c.Node must
// be that identity.
func SignCheckpoint(c *Checkpoint, id *Identity) ([]byte, error) {
	if c.Node != id.ID() {
		return nil, errors.New("checkpoint node is not the signing identity")
	}
	if err := CheckNetworkName(c.Network); err != nil {
		return nil, err
	}
	s, err := noteSigner(CheckpointOrigin(c.Network, c.Node), id.Key)
	if err != nil {
		return nil, fmt.Errorf("checkpoint signer: %w", err)
	}
	return note.Sign(&note.Note{Text: c.Text()}, s)
}

// OpenCheckpoint verifies a signed checkpoint and parses it. The signer is
// the node named in the origin line; when want is not the zero NodeID the
// checkpoint must come from that node.
func OpenCheckpoint(msg []byte, want NodeID) (*Checkpoint, error) {
	// The origin line names the node, which gives the key to check with.
	first, _, ok := bytes.Cut(msg, []byte("\n"))
	if !ok {
		return nil, errors.New("checkpoint: no origin line")
	}
	network, node, err := parseOrigin(string(first))
	if err != nil {
		return nil, err
	}
	if want != (NodeID{}) && node != want {
		return nil, fmt.Errorf("checkpoint is from node %s, want %s", node.Short(), want.Short())
	}
	vkey, err := NoteVerifierKey(network, node)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("checkpoint signature: %w", err)
	}
	return parseCheckpointText(n.Text)
}

func parseOrigin(line string) (string, NodeID, error) {
	rest, ok := strings.CutPrefix(line, "pyvnode/")
	i := strings.LastIndexByte(rest, '/')
	if !ok || i < 0 {
		return "", NodeID{}, fmt.Errorf("checkpoint origin %q is not pyvnode/<network>/<node id>", line)
	}
	network := rest[:i]
	if err := CheckNetworkName(network); err != nil {
		return "", NodeID{}, fmt.Errorf("checkpoint origin: %w", err)
	}
	node, err := ParseNodeID(rest[i+1:])
	if err != nil {
		return "", NodeID{}, fmt.Errorf("checkpoint origin: %w", err)
	}
	return network, node, nil
}

func parseCheckpointText(text string) (*Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 5 {
		return nil, fmt.Errorf("checkpoint has %d lines, want at least 5", len(lines))
	}
	c := &Checkpoint{}
	var err error
	if c.Network, c.Node, err = parseOrigin(lines[0]); err != nil {
		return nil, err
	}
	if c.Size, err = strconv.ParseUint(lines[1], 10, 64); err != nil || strconv.FormatUint(c.Size, 10) != lines[1] {
		return nil, fmt.Errorf("checkpoint size %q is not a decimal number", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return nil, fmt.Errorf("checkpoint root %q is not 32 bytes of base64", lines[2])
	}
	copy(c.Root[:], root)
	link, ok := strings.CutPrefix(lines[3], "link ")
	if !ok || c.Link.UnmarshalText([]byte(link)) != nil {
		return nil, fmt.Errorf("checkpoint line 4 %q is not \"link <hex>\"", lines[3])
	}
	ts, ok := strings.CutPrefix(lines[4], "time ")
	if c.Time, err = time.Parse(time.RFC3339Nano, ts); !ok || err != nil {
		return nil, fmt.Errorf("checkpoint line 5 %q is not \"time <RFC 3339>\"", lines[4])
	}
	return c, nil
}

// Checkpoint returns the current head as a checkpoint, unsigned.
func (s *Store) Checkpoint(node NodeID, now time.Time) *Checkpoint {
	h := s.Head()
	return &Checkpoint{Network: s.opts.Genesis.Network, Node: node, Size: h.Size, Root: h.Root, Link: h.Link, Time: now}
}

// timeNow is the clock used for checkpoints; a variable for tests.
var timeNow = time.Now
