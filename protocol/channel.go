// Package protocol is pyvnode's client protocol: the Noise secure channel
// bound to the node's identity, encrypted framing, CBOR request and
// response messages, the server session and its command dispatcher, and the
// Go client library the command line uses. docs/PROTOCOL.md describes every
// byte; the transcript test checks that document's test vectors.
package protocol

import (
	"bufio"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/flynn/noise"
	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/ledger"
)

// Constants of the secure channel (docs/PROTOCOL.md §1-§3).
const (
	// Prologue is mixed into the Noise handshake by both sides.
	Prologue = "pyvnode/client/1"
	// StaticKeyContext starts the message a node signs to bind its Noise
	// static key to its Ed25519 identity.
	StaticKeyContext = "pyvnode noise static key v1\n"
	// RekeyInfo is the HKDF info string of a rekey.
	RekeyInfo = "pyvnode rekey v1"
	// Version is the protocol version this code speaks.
	Version = 1
	// MaxFrame is the largest frame on the wire: the Noise message limit.
	MaxFrame = noise.MaxMsgLen
	tagSize  = 16
	// maxChunk is the message data one frame carries (one flags byte).
	maxChunk = MaxFrame - tagSize - 1
	// DefaultMaxMessage bounds a message (all its frames together).
	DefaultMaxMessage = 4 << 20
	flagFinal         = 0x01
)

var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256)

// Errors of the channel.
var (
	ErrHandshake      = errors.New("handshake failed")
	ErrNodeIdentity   = errors.New("server's identity proof does not verify")
	ErrFrameTooLarge  = errors.New("frame too large")
	ErrMessageTooLong = errors.New("message too large")
	ErrDecrypt        = errors.New("frame failed to decrypt (tampered, replayed, reordered or wrong key)")
	ErrBadFrame       = errors.New("malformed frame")
)

// serverHello is the payload of handshake message 2: who the server is.
type serverHello struct {
	Node    []byte `cbor:"node"`    // Ed25519 public key (node id)
	Sig     []byte `cbor:"sig"`     // Ed25519(StaticKeyContext || Noise static public key)
	Network string `cbor:"network"` // genesis network name
	Version uint64 `cbor:"v"`
}

// clientHello is the payload of handshake message 3.
type clientHello struct {
	Version  uint64 `cbor:"v"`
	Software string `cbor:"sw,omitempty"`
}

// ServerIdentity is what a server presents in the handshake.
type ServerIdentity struct {
	Node    ledger.NodeID
	Network string
}

// StaticKey is a server's Noise static key with the node's signature over
// it.
type StaticKey struct {
	Key     noise.DHKey
	hello   []byte // encoded serverHello
	Network string
}

// NewStaticKey makes a fresh Noise static key for a node and signs it with
// the node's identity. rand nil means crypto/rand.
func NewStaticKey(id *ledger.Identity, network string, rand io.Reader) (*StaticKey, error) {
	k, err := noise.DH25519.GenerateKeypair(rand)
	if err != nil {
		return nil, err
	}
	return staticKeyFrom(id, network, k)
}

func staticKeyFrom(id *ledger.Identity, network string, k noise.DHKey) (*StaticKey, error) {
	sig := ed25519.Sign(id.Key, staticKeyMessage(k.Public))
	hello, err := encMode.Marshal(serverHello{Node: id.Public(), Sig: sig, Network: network, Version: Version})
	if err != nil {
		return nil, err
	}
	return &StaticKey{Key: k, hello: hello, Network: network}, nil
}

func staticKeyMessage(pub []byte) []byte {
	return append([]byte(StaticKeyContext), pub...)
}

// Conn is an established secure channel. Messages are written whole under
// a lock, so several goroutines may write; one goroutine reads.
type Conn struct {
	nc         net.Conn
	r          *bufio.Reader
	maxMessage int

	wmu  sync.Mutex
	send *noise.CipherState
	wbuf []byte // encrypted frames waiting for one write
	pt   []byte // flags byte and data of the frame being encrypted

	recv *noise.CipherState
	rbuf []byte

	kmu sync.Mutex
	ck  [32]byte // rekey chaining key, starts as the handshake hash

	// writeTimeout, when set, bounds each message's write: a peer that
	// stops reading cannot hold a writer (and its session) for ever.
	writeTimeout time.Duration

	// trace, when a test sets it, sees every message in plaintext.
	trace func(sent bool, msg []byte)

	// Peer is the server's identity (client side) or empty (server side).
	Peer ServerIdentity
	// ChannelBinding is the Noise handshake hash: unique to the session.
	ChannelBinding []byte
}

// HandshakeConfig tunes a handshake. Zero values mean defaults.
type HandshakeConfig struct {
	// Rand supplies ephemeral keys; nil means crypto/rand. Only tests set it.
	Rand io.Reader
	// Static is the client's Noise static key; zero means a fresh one.
	Static noise.DHKey
	// MaxMessage bounds the messages read. Default DefaultMaxMessage.
	MaxMessage int
	// Software is sent to the server in handshake message 3.
	Software string
}

// ServerHandshake runs the responder side of Noise XX on nc, presenting
// the node's signed static key.
func ServerHandshake(nc net.Conn, sk *StaticKey, cfg HandshakeConfig) (*Conn, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: cipherSuite, Random: cfg.Rand, Pattern: noise.HandshakeXX,
		Initiator: false, Prologue: []byte(Prologue), StaticKeypair: sk.Key,
	})
	if err != nil {
		return nil, err
	}
	c := newConn(nc, cfg.MaxMessage)
	msg, err := c.readRaw()
	if err != nil {
		return nil, fmt.Errorf("%w: message 1: %v", ErrHandshake, err)
	}
	if _, _, _, err := hs.ReadMessage(nil, msg); err != nil {
		return nil, fmt.Errorf("%w: message 1: %v", ErrHandshake, err)
	}
	out, _, _, err := hs.WriteMessage(nil, sk.hello)
	if err != nil {
		return nil, fmt.Errorf("%w: message 2: %v", ErrHandshake, err)
	}
	if err := c.writeRaw(out); err != nil {
		return nil, fmt.Errorf("%w: message 2: %v", ErrHandshake, err)
	}
	msg, err = c.readRaw()
	if err != nil {
		return nil, fmt.Errorf("%w: message 3: %v", ErrHandshake, err)
	}
	payload, cs1, cs2, err := hs.ReadMessage(nil, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: message 3: %v", ErrHandshake, err)
	}
	var ch clientHello
	if err := decMode.Unmarshal(payload, &ch); err != nil || ch.Version != Version {
		return nil, fmt.Errorf("%w: client hello %x (%v)", ErrHandshake, payload, err)
	}
	c.recv, c.send = cs1, cs2
	c.finish(hs)
	return c, nil
}

// ClientHandshake runs the initiator side of Noise XX on nc and checks the
// server's identity proof. It does not decide whether that identity is the
// one wanted: the caller compares c.Peer with what it expects.
func ClientHandshake(nc net.Conn, cfg HandshakeConfig) (*Conn, error) {
	static := cfg.Static
	if static.Private == nil {
		var err error
		if static, err = noise.DH25519.GenerateKeypair(cfg.Rand); err != nil {
			return nil, err
		}
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: cipherSuite, Random: cfg.Rand, Pattern: noise.HandshakeXX,
		Initiator: true, Prologue: []byte(Prologue), StaticKeypair: static,
	})
	if err != nil {
		return nil, err
	}
	c := newConn(nc, cfg.MaxMessage)
	out, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: message 1: %v", ErrHandshake, err)
	}
	if err := c.writeRaw(out); err != nil {
		return nil, fmt.Errorf("%w: message 1: %v", ErrHandshake, err)
	}
	msg, err := c.readRaw()
	if err != nil {
		return nil, fmt.Errorf("%w: message 2: %v", ErrHandshake, err)
	}
	payload, _, _, err := hs.ReadMessage(nil, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: message 2: %v", ErrHandshake, err)
	}
	var sh serverHello
	if err := decMode.Unmarshal(payload, &sh); err != nil {
		return nil, fmt.Errorf("%w: server hello: %v", ErrHandshake, err)
	}
	if sh.Version != Version {
		return nil, fmt.Errorf("%w: server speaks protocol version %d, this client %d", ErrHandshake, sh.Version, Version)
	}
	if len(sh.Node) != ed25519.PublicKeySize || !ed25519.Verify(sh.Node, staticKeyMessage(hs.PeerStatic()), sh.Sig) {
		return nil, ErrNodeIdentity
	}
	if err := ledger.CheckNetworkName(sh.Network); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	hello, err := encMode.Marshal(clientHello{Version: Version, Software: cfg.Software})
	if err != nil {
		return nil, err
	}
	out, cs1, cs2, err := hs.WriteMessage(nil, hello)
	if err != nil {
		return nil, fmt.Errorf("%w: message 3: %v", ErrHandshake, err)
	}
	if err := c.writeRaw(out); err != nil {
		return nil, fmt.Errorf("%w: message 3: %v", ErrHandshake, err)
	}
	c.send, c.recv = cs1, cs2
	c.Peer = ServerIdentity{Node: ledger.NodeID(sh.Node), Network: sh.Network}
	c.finish(hs)
	return c, nil
}

func newConn(nc net.Conn, maxMessage int) *Conn {
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessage
	}
	return &Conn{nc: nc, r: bufio.NewReaderSize(nc, 16<<10), maxMessage: maxMessage}
}

func (c *Conn) finish(hs *noise.HandshakeState) {
	c.ChannelBinding = hs.ChannelBinding()
	copy(c.ck[:], c.ChannelBinding)
}

// readRaw reads one length-prefixed handshake message.
func (c *Conn) readRaw() ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (c *Conn) writeRaw(b []byte) error {
	if len(b) > MaxFrame {
		return ErrFrameTooLarge
	}
	out := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(out, uint16(len(b)))
	copy(out[2:], b)
	_, err := c.nc.Write(out)
	return err
}

// WriteMessage encrypts and sends one message, split into frames.
func (c *Conn) WriteMessage(msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(msg)
}

// writeThen writes a message and runs after while still holding the write
// lock: a key switch that must take effect right after this message.
func (c *Conn) writeThen(msg []byte, after func()) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writeLocked(msg); err != nil {
		return err
	}
	after()
	return nil
}

// writeBatch bounds the frames encrypted before one write call.
const writeBatch = 4

func (c *Conn) writeLocked(msg []byte) error {
	if c.trace != nil {
		c.trace(true, msg)
	}
	if len(msg) > c.maxMessage {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLong, len(msg), c.maxMessage)
	}
	if c.writeTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	frames := len(msg)/maxChunk + 1
	need := min(frames, writeBatch) * (2 + MaxFrame)
	if cap(c.wbuf) < need {
		c.wbuf = make([]byte, 0, need)
	}
	if cap(c.pt) < 1+min(len(msg), maxChunk) {
		c.pt = make([]byte, 1+min(len(msg), maxChunk), 1+maxChunk)
	}
	out := c.wbuf[:0]
	for i := 0; i < frames; i++ {
		n := min(len(msg), maxChunk)
		pt := c.pt[:1+n]
		pt[0] = 0
		if i == frames-1 {
			pt[0] = flagFinal
		}
		copy(pt[1:], msg[:n])
		msg = msg[n:]
		start := len(out)
		out = append(out, 0, 0)
		var err error
		out, err = c.send.Encrypt(out, nil, pt)
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint16(out[start:], uint16(len(out)-start-2))
		if (i+1)%writeBatch == 0 || i == frames-1 {
			if _, err := c.nc.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
	return nil
}

// ReadMessage reads the next message. Any frame that fails to decrypt ends
// the channel: the caller must close it.
func (c *Conn) ReadMessage() ([]byte, error) { return c.ReadMessageTimeout(0, 0) }

// ReadMessageTimeout reads the next message, waiting at most idle for it to
// begin and then at most frame for the whole rest of it, so a peer that
// starts a message and trickles it (slow loris) is cut off. Zero means no
// limit.
func (c *Conn) ReadMessageTimeout(idle, frame time.Duration) ([]byte, error) {
	var msg []byte
	for first := true; ; first = false {
		if first && idle > 0 {
			c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		var hdr [2]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			if msg != nil && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n < tagSize+1 {
			return nil, fmt.Errorf("%w: frame of %d bytes", ErrBadFrame, n)
		}
		if first && frame > 0 {
			c.nc.SetReadDeadline(time.Now().Add(frame))
		}
		if cap(c.rbuf) < n {
			c.rbuf = make([]byte, MaxFrame)
		}
		ct := c.rbuf[:n]
		if _, err := io.ReadFull(c.r, ct); err != nil {
			return nil, err
		}
		pt, err := c.recv.Decrypt(ct[:0], nil, ct)
		if err != nil {
			return nil, ErrDecrypt
		}
		if pt[0]&^flagFinal != 0 {
			return nil, fmt.Errorf("%w: unknown flags %#x", ErrBadFrame, pt[0])
		}
		if len(msg)+len(pt)-1 > c.maxMessage {
			return nil, fmt.Errorf("%w: limit %d", ErrMessageTooLong, c.maxMessage)
		}
		if msg == nil && pt[0]&flagFinal != 0 {
			msg = append([]byte(nil), pt[1:]...) // one-frame message
		} else {
			msg = append(msg, pt[1:]...)
		}
		if pt[0]&flagFinal != 0 {
			if c.trace != nil {
				c.trace(false, msg)
			}
			return msg, nil
		}
	}
}

// SetReadDeadline bounds the next read.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// closeGracefully ends the sending side (the peer reads everything written
// and then EOF) and discards what the peer still sends for up to wait, so
// the close that follows does not reset the connection.
func (c *Conn) closeGracefully(wait time.Duration) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(wait))
	io.Copy(io.Discard, c.nc)
}

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// rekeyDerive computes the keys that replace both directions' keys: HKDF-
// SHA256 with the current chaining key as salt and the X25519 shared secret
// of the two fresh ephemeral keys as input; 96 bytes of output give the next
// chaining key, the client-to-server key and the server-to-client key.
func (c *Conn) rekeyDerive(priv *ecdh.PrivateKey, peerPub []byte) (c2s, s2c [32]byte, err error) {
	pub, err := ecdh.X25519().NewPublicKey(peerPub)
	if err != nil {
		return c2s, s2c, fmt.Errorf("rekey: bad ephemeral key: %w", err)
	}
	dh, err := priv.ECDH(pub)
	if err != nil {
		return c2s, s2c, fmt.Errorf("rekey: %w", err)
	}
	c.kmu.Lock()
	defer c.kmu.Unlock()
	okm, err := hkdf.Key(sha256.New, dh, c.ck[:], RekeyInfo, 96)
	if err != nil {
		return c2s, s2c, err
	}
	copy(c.ck[:], okm[:32])
	copy(c2s[:], okm[32:64])
	copy(s2c[:], okm[64:96])
	return c2s, s2c, nil
}

func newCipherState(k [32]byte) *noise.CipherState {
	return noise.UnsafeNewCipherState(cipherSuite, k, 0)
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	eo := cbor.CoreDetEncOptions()
	eo.ByteArray = cbor.ByteArrayToByteSlice // ids and hashes travel as byte strings
	eo.Time = cbor.TimeRFC3339Nano
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   24,
		MaxArrayElements:  65536,
		MaxMapPairs:       4096,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// newX25519 makes an X25519 private key from 32 bytes of rnd (the key is
// those bytes, as RFC 7748 defines; clamping happens in the scalar
// multiplication).
func newX25519(rnd io.Reader) (*ecdh.PrivateKey, error) {
	var b [32]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPrivateKey(b[:])
}
