package p2p

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// HelloVersion is the version of the hello exchange.
const HelloVersion = 1

// Hello is what two nodes tell each other on every new connection, so a
// node of another network (another genesis) is refused at once.
type Hello struct {
	Version  uint64 `cbor:"1,keyasint"`
	Network  string `cbor:"2,keyasint"`
	Genesis  []byte `cbor:"3,keyasint"` // SHA-256 of the genesis
	Software string `cbor:"4,keyasint"`
}

const maxHello = 1024

var (
	helloEnc cbor.EncMode
	helloDec cbor.DecMode
)

func init() {
	var err error
	if helloEnc, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if helloDec, err = (cbor.DecOptions{MaxNestedLevels: 4, MaxArrayElements: 16, MaxMapPairs: 16,
		DupMapKey: cbor.DupMapKeyEnforcedAPF, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}).DecMode(); err != nil {
		panic(err)
	}
}

func (n *Network) hello() Hello {
	g := n.chain.Genesis().Hash()
	return Hello{Version: HelloVersion, Network: n.chain.Genesis().Network, Genesis: g[:], Software: n.cfg.Version}
}

// EncodeHello is the body of a hello frame.
func EncodeHello(h Hello) []byte {
	b, err := helloEnc.Marshal(h)
	if err != nil {
		panic(err) // strings and bytes cannot fail
	}
	return b
}

// DecodeHello parses the body of a hello frame.
func DecodeHello(b []byte) (Hello, error) {
	var h Hello
	if len(b) > maxHello {
		return h, fmt.Errorf("%w: hello of %d bytes", errFrame, len(b))
	}
	if err := helloDec.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%w: hello: %v", errFrame, err)
	}
	return h, nil
}

var errOtherNetwork = errors.New("peer belongs to another network")

// checkHello compares a peer's hello with ours.
func (n *Network) checkHello(h Hello) error {
	ours := n.hello()
	if h.Version != HelloVersion {
		return fmt.Errorf("peer speaks hello version %d, this node %d", h.Version, HelloVersion)
	}
	if h.Network != ours.Network || string(h.Genesis) != string(ours.Genesis) {
		return fmt.Errorf("%w: its network is %q with genesis %s, ours is %q with genesis %s",
			errOtherNetwork, h.Network, hexShort(h.Genesis), ours.Network, hexShort(ours.Genesis))
	}
	return nil
}

func hexShort(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		s = s[:16]
	}
	return s
}

// sayHello runs the dialling side of the hello exchange on a new
// connection, then starts the first reconciliation with the peer.
func (n *Network) sayHello(p peer.ID) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	s, err := n.host.NewStream(network.WithNoDial(network.WithAllowLimitedConn(ctx, "hello"), "hello"), p, HelloProtocol)
	if err != nil {
		n.log.Debug("hello: open stream", "peer", p.String(), "err", err)
		return
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := writeFrame(s, frameHello, EncodeHello(n.hello())); err != nil {
		s.Reset()
		return
	}
	h, err := readHello(bufio.NewReader(s))
	if err != nil {
		n.log.Warn("hello failed", "peer", p.String(), "err", err)
		s.Reset()
		return
	}
	if !n.acceptHello(p, h, 0) {
		return
	}
	if !n.track() {
		return
	}
	go func() {
		defer n.wg.Done()
		if _, err := n.SyncWith(n.ctx, p); err != nil && n.ctx.Err() == nil {
			n.rlog.Info("sync after connect", "peer", p.String(), "err", err)
		}
	}()
}

func readHello(r *bufio.Reader) (Hello, error) {
	typ, body, _, err := readFrame(r, maxHello+1)
	if err != nil {
		return Hello{}, err
	}
	if typ != frameHello {
		return Hello{}, fmt.Errorf("%w: type %#x where hello was expected", errFrame, typ)
	}
	return DecodeHello(body)
}

// acceptHello records a peer's hello; a peer of another network is
// refused, disconnected and kept out for a while.
func (n *Network) acceptHello(p peer.ID, h Hello, closeAfter time.Duration) bool {
	if err := n.checkHello(h); err != nil {
		n.log.Warn("refusing peer: "+err.Error(), "peer", p.String())
		n.gater.ban(p, refuseFor, "another network")
		n.peersMu.Lock()
		n.peerLocked(p) // known, so Peers lists it as refused once it is gone
		n.peersMu.Unlock()
		time.AfterFunc(closeAfter, func() { n.host.Network().ClosePeer(p) })
		return false
	}
	n.peersMu.Lock()
	st := n.peerLocked(p)
	if !st.ready {
		st.ready = true
		st.software = h.Software
		st.since = time.Now()
	}
	n.peersMu.Unlock()
	return true
}

// handleHello answers the hello of a peer that dialled us.
func (n *Network) handleHello(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	p := s.Conn().RemotePeer()
	h, err := readHello(bufio.NewReader(s))
	if err != nil {
		n.log.Warn("hello failed", "peer", p.String(), "err", err)
		s.Reset()
		return
	}
	// Take the peer in before answering: once it has the answer it starts
	// reconciling, and a session from a peer not yet taken in is refused.
	// A refused peer still gets the answer, and a moment to read why
	// before the connection goes.
	n.acceptHello(p, h, time.Second)
	if _, err := writeFrame(s, frameHello, EncodeHello(n.hello())); err != nil {
		s.Reset()
		return
	}
	s.CloseWrite()
}
